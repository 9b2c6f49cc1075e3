using System.Collections.Concurrent;

namespace Orleans.MoE.Kernels.Comm;

/// <summary>
/// Where ranks that live in one process (silos of an in-process cluster) find each other's shared-memory group:
/// the first rank to arrive under a key (job and plan generation) creates it, the last one to join removes the
/// key, so a later generation with the same members starts a fresh group. A group can be aborted by its key
/// while ranks are joining or running (a member was lost), so they fail at once instead of at the barrier timeout.
/// </summary>
public static class SharedMemoryRendezvous
{
    static readonly ConcurrentDictionary<string, (SharedMemoryGroup Group, int[] Joined)> joining = new();

    // Groups by key for Abort; weak, so a generation whose ranks have all closed is collected with its tensors.
    static readonly ConcurrentDictionary<string, WeakReference<SharedMemoryGroup>> live = new();

    // Keys aborted before any rank joined (a member was lost while the others were still on their way): a rank that
    // joins later fails at once. Keys name a job's plan generation and are never reused.
    static readonly ConcurrentDictionary<string, Exception> abortedEarly = new();

    public static ICommunicator Join(string key, int size, int rank, TimeSpan? timeout = null)
    {
        if (abortedEarly.TryGetValue(key, out var cause)) throw new CommunicatorAbortedException(cause.Message, cause);
        // GetOrAdd may build a group more than once when ranks arrive together; only the one it keeps is registered
        // for Abort, by every rank that joins it (registering inside the factory could register a discarded one).
        var (group, joined) = joining.GetOrAdd(key, _ => (new SharedMemoryGroup(size, timeout), new int[1]));
        Register(key, group);
        // An abort that found no group while this rank was registering it.
        if (abortedEarly.TryGetValue(key, out var late)) group.Abort(late);
        if (group.Size != size) throw new ArgumentException($"shared-memory group '{key}' has {group.Size} ranks, rank {rank} expects {size}");
        if (Interlocked.Increment(ref joined[0]) == size) joining.TryRemove(key, out _);
        return group.Join(rank);
    }

    /// <summary>
    /// Aborts the group under <paramref name="key"/> (every rank's current and next collective throws
    /// <see cref="CommunicatorAbortedException"/> with <paramref name="cause"/>); false when no such group lives yet,
    /// in which case ranks that join under the key later fail at once.
    /// </summary>
    public static bool Abort(string key, Exception cause)
    {
        if (!live.TryGetValue(key, out var weak) || !weak.TryGetTarget(out var group))
        {
            abortedEarly[key] = cause;
            return false;
        }
        group.Abort(cause);
        return true;
    }

    static void Register(string key, SharedMemoryGroup group)
    {
        foreach (var (k, w) in live)
            if (!w.TryGetTarget(out _)) live.TryRemove(k, out _);
        live[key] = new WeakReference<SharedMemoryGroup>(group);
    }
}
