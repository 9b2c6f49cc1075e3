using System.Collections.Concurrent;
using Orleans.Runtime;
using Orleans.Serialization;
using Orleans.Storage;

namespace Orleans.MoE.ControlPlane.Tests;

/// <summary>
/// Grain storage that outlives the silos of an in-process cluster, as PostgreSQL does for real silos: Orleans' memory
/// storage keeps state in grains that die with a killed silo, which would take a job's record with it. States are
/// deep-copied in and out, and the etag is a version number checked on every write.
/// </summary>
internal sealed class ProcessWideGrainStorage(ConcurrentDictionary<(string, GrainId), (object State, long Version)> records, DeepCopier copier) : IGrainStorage
{
    public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        if (records.TryGetValue((stateName, grainId), out var record))
        {
            grainState.State = copier.Copy((T)record.State);
            grainState.ETag = record.Version.ToString(System.Globalization.CultureInfo.InvariantCulture);
            grainState.RecordExists = true;
        }
        return Task.CompletedTask;
    }

    public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var key = (stateName, grainId);
        lock (records)
        {
            long current = records.TryGetValue(key, out var record) ? record.Version : 0;
            if ((grainState.ETag ?? "0") != current.ToString(System.Globalization.CultureInfo.InvariantCulture))
                throw new InconsistentStateException($"etag {grainState.ETag} is stale: the record is at version {current}", current.ToString(System.Globalization.CultureInfo.InvariantCulture), grainState.ETag);
            records[key] = (copier.Copy(grainState.State)!, current + 1);
            grainState.ETag = (current + 1).ToString(System.Globalization.CultureInfo.InvariantCulture);
            grainState.RecordExists = true;
        }
        return Task.CompletedTask;
    }

    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        records.TryRemove((stateName, grainId), out _);
        grainState.ETag = null;
        grainState.RecordExists = false;
        return Task.CompletedTask;
    }
}
