using Orleans.MoE.Kernels.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Generation;

/// <summary>
/// Keys and values for a fixed number of sequence slots, each at its own length, preallocated per layer as
/// [slots, H, capacity, D]: continuous batching keeps each running request in a slot, and a decode step appends one
/// position to every running slot at once however long each request already is.
/// </summary>
public sealed class SlotKvCache(int layerCount, int slots, int capacity) : IDisposable
{
    readonly (Tensor Keys, Tensor Values)?[] layers = new (Tensor, Tensor)?[layerCount];
    readonly long[] lengths = new long[slots];

    public int Slots => slots;

    /// <summary>Positions a slot can hold (the model's context length).</summary>
    public int Capacity => capacity;

    public long LengthOf(int slot) => lengths[slot];

    /// <summary>Frees a slot for the next request (its stale entries are never read: lengths bound what is seen).</summary>
    public void Clear(int slot) => lengths[slot] = 0;

    /// <summary>Counts one more position in a slot, after a <see cref="Window"/> forward wrote it.</summary>
    public void Extend(int slot)
    {
        if (lengths[slot] >= capacity) throw new ArgumentOutOfRangeException(nameof(slot), $"slot {slot} already holds {capacity} positions");
        lengths[slot]++;
    }

    /// <summary>
    /// One decode token for each of the first <paramref name="rows"/> slots as a forward of fixed shapes over fixed
    /// tensors, which a captured CUDA graph can replay: row i writes its new key and value at
    /// <paramref name="positions"/>[i] (int64 on the device, refilled by the caller between steps) and attends over
    /// the first <paramref name="window"/> positions up to its own. Rows of free slots compute along harmlessly (a slot
    /// is prefilled from position 0 when it is next taken); lengths are the caller's to <see cref="Extend"/>.
    /// The layers' storage must exist (a prefill made it).
    /// </summary>
    public IKvCache Window(int rows, Tensor positions, long window)
    {
        if (rows < 1 || rows > slots) throw new ArgumentOutOfRangeException(nameof(rows), $"{rows} rows are not in 1..{slots}");
        if (window < 1 || window > capacity) throw new ArgumentOutOfRangeException(nameof(window), $"a window of {window} positions is not in 1..{capacity}");
        return new WindowRows(this, rows, positions, window);
    }

    /// <summary>The cache a forward over these slots' rows (in this order) reads and appends to.</summary>
    public IKvCache Rows(IReadOnlyList<int> rows)
    {
        foreach (int slot in rows)
            if (slot < 0 || slot >= slots) throw new ArgumentOutOfRangeException(nameof(rows), $"slot {slot} is not in 0..{slots - 1}");
        return new SlotRows(this, rows.ToArray());
    }

    (Tensor Keys, Tensor Values) Storage(int layer, Tensor like)
    {
        if (layers[layer] is { } existing) return existing;
        long heads = like.shape[1], d = like.shape[3];
        var keys = torch.zeros(slots, heads, capacity, d, dtype: like.dtype, device: like.device).DetachFromDisposeScope();
        var values = torch.zeros(slots, heads, capacity, d, dtype: like.dtype, device: like.device).DetachFromDisposeScope();
        layers[layer] = (keys, values);
        return (keys, values);
    }

    public void Dispose()
    {
        foreach (var entry in layers)
        {
            entry?.Keys.Dispose();
            entry?.Values.Dispose();
        }
        Array.Clear(layers);
    }

    sealed class WindowRows(SlotKvCache cache, int rows, Tensor positions, long window) : IKvCache
    {
        Tensor? visible;

        public long End(long newTokens) => window;

        public Tensor Positions(long newTokens, Device device) =>
            newTokens == 1 ? positions.view(rows, 1) : throw new ArgumentException($"a window forward decodes one token per row, not {newTokens}");

        public AttentionHistory Append(int layer, Tensor keys, Tensor values)
        {
            var stored = cache.layers[layer] ?? throw new InvalidOperationException($"layer {layer} has no cached keys yet: prefill before decoding");
            var at = positions.view(rows, 1, 1, 1).expand(rows, keys.shape[1], 1, keys.shape[3]);
            var storedKeys = stored.Keys.narrow(0, 0, rows).scatter_(2, at, keys);
            var storedValues = stored.Values.narrow(0, 0, rows).scatter_(2, at, values);
            visible ??= torch.arange(window, device: keys.device).view(1, 1, 1, window).le(positions.view(rows, 1, 1, 1));
            return new AttentionHistory(storedKeys.narrow(2, 0, window), storedValues.narrow(2, 0, window), visible, false);
        }

        public void Advance(long newTokens)
        {
        }
    }

    /// <summary>One forward's view: the rows are slots, each appending at its own length.</summary>
    sealed class SlotRows(SlotKvCache cache, int[] rows) : IKvCache
    {
        Tensor? rowIndex;
        Tensor? rowLength;

        public long End(long newTokens) => rows.Max(slot => cache.lengths[slot]) + newTokens;

        public Tensor Positions(long newTokens, Device device) =>
            Lengths(device).unsqueeze(1) + torch.arange(newTokens, device: device).unsqueeze(0);

        public AttentionHistory Append(int layer, Tensor keys, Tensor values)
        {
            var (storedKeys, storedValues) = cache.Storage(layer, keys);
            long t = keys.shape[2];
            long end = End(t);
            if (end > cache.Capacity) throw new ArgumentException($"positions up to {end - 1} exceed the cache's {cache.Capacity}");
            if (rows.Length == 1)
            {
                // One row (a prefill, or a batch of one): views of its slot, no gather.
                int slot = rows[0];
                long length = cache.lengths[slot];
                storedKeys[slot].narrow(1, length, t).copy_(keys[0]);
                storedValues[slot].narrow(1, length, t).copy_(values[0]);
                var k = storedKeys.narrow(0, slot, 1).narrow(2, 0, end);
                var v = storedValues.narrow(0, slot, 1).narrow(2, 0, end);
                if (length == 0 || t == 1) return new AttentionHistory(k, v, null, t > 1);
                return new AttentionHistory(k, v, torch.ones(t, end, dtype: ScalarType.Bool, device: keys.device).tril(length), false);
            }
            var index = RowIndex(keys.device);
            if (t == 1)
            {
                // A decode step: one scatter per layer writes every row's new position.
                var at = Lengths(keys.device);
                storedKeys.index_put_(keys.select(2, 0), TensorIndex.Tensor(index), TensorIndex.Colon, TensorIndex.Tensor(at));
                storedValues.index_put_(values.select(2, 0), TensorIndex.Tensor(index), TensorIndex.Colon, TensorIndex.Tensor(at));
            }
            else if (rows.All(slot => cache.lengths[slot] == cache.lengths[rows[0]]))
            {
                // Rows at one length (prompts of one length prefilled together): one scatter per layer, not one per row.
                long length = cache.lengths[rows[0]];
                storedKeys.narrow(2, length, t).index_copy_(0, index, keys);
                storedValues.narrow(2, length, t).index_copy_(0, index, values);
            }
            else
            {
                for (int i = 0; i < rows.Length; i++)
                {
                    storedKeys[rows[i]].narrow(1, cache.lengths[rows[i]], t).copy_(keys[i]);
                    storedValues[rows[i]].narrow(1, cache.lengths[rows[i]], t).copy_(values[i]);
                }
            }
            var gatheredKeys = storedKeys.index_select(0, index).narrow(2, 0, end);
            var gatheredValues = storedValues.index_select(0, index).narrow(2, 0, end);
            // Row i's new token j sees the row's own positions up to length_i + j; a shorter row's tail is masked.
            var visible = torch.arange(end, device: keys.device).view(1, 1, 1, end)
                .le(Positions(t, keys.device).view(rows.Length, 1, t, 1));
            return new AttentionHistory(gatheredKeys, gatheredValues, visible, false);
        }

        public void Advance(long newTokens)
        {
            foreach (int slot in rows) cache.lengths[slot] += newTokens;
            rowLength = null;
        }

        Tensor RowIndex(Device device) => rowIndex ??= torch.tensor(rows.Select(r => (long)r).ToArray(), device: device);

        Tensor Lengths(Device device) => rowLength ??= torch.tensor(rows.Select(r => cache.lengths[r]).ToArray(), device: device);
    }
}
