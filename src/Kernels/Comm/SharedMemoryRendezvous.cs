using System.Collections.Concurrent;

namespace Orleans.MoE.Kernels.Comm;

/// <summary>
/// Where ranks that live in one process (silos of an in-process cluster) find each other's shared-memory group:
/// the first rank to arrive under a key (job and plan generation) creates it, the last one to join removes the
/// key, so a later generation with the same members starts a fresh group.
/// </summary>
public static class SharedMemoryRendezvous
{
    static readonly ConcurrentDictionary<string, (SharedMemoryGroup Group, int[] Joined)> groups = new();

    public static ICommunicator Join(string key, int size, int rank, TimeSpan? timeout = null)
    {
        var (group, joined) = groups.GetOrAdd(key, _ => (new SharedMemoryGroup(size, timeout), new int[1]));
        if (group.Size != size) throw new ArgumentException($"shared-memory group '{key}' has {group.Size} ranks, rank {rank} expects {size}");
        if (Interlocked.Increment(ref joined[0]) == size) groups.TryRemove(key, out _);
        return group.Join(rank);
    }
}
