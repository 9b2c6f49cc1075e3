using System.Diagnostics;
using Orleans.MoE.Kernels.Comm;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.CommConformance;

/// <summary>
/// The same checks of every collective for every backend: each rank of a group calls <see cref="RunAll"/> with its
/// communicator and the device its tensors live on, and gets one result per check. Values are small integers
/// wherever a result must be exact in bfloat16, or in any summation order.
/// </summary>
public static class CommunicatorChecks
{
    static readonly (string Name, Action<ICommunicator, Device> Run)[] Checks =
    [
        ("all-to-all, equal rows, float32", (c, d) => AllToAllEqual(c, d, ScalarType.Float32)),
        ("all-to-all, equal rows, bfloat16", (c, d) => AllToAllEqual(c, d, ScalarType.BFloat16)),
        ("all-to-all, variable rows with empty chunks", AllToAllVariable),
        ("all-reduce sum: same bits on every rank, close to the local sum", AllReduceSumRandom),
        ("all-reduce sum of integers: exact", AllReduceSumExact),
        ("all-reduce sum, bfloat16", AllReduceSumBFloat16),
        ("all-reduce max", AllReduceMax),
        ("all-gather", AllGather),
        ("reduce-scatter sum", ReduceScatter),
        ("broadcast from the last rank", Broadcast),
        ("send/receive around a ring", SendReceiveRing),
        ("split into two groups, collectives on each", Split),
        ("barrier", (c, _) => c.Barrier()),
    ];

    public static IReadOnlyList<string> Names => Checks.Select(c => c.Name).ToList();

    public static List<CheckResult> RunAll(ICommunicator comm, Device device)
    {
        var results = new List<CheckResult>();
        foreach (var (name, run) in Checks)
        {
            var clock = Stopwatch.StartNew();
            string? error = null;
            try
            {
                using var scope = torch.NewDisposeScope();
                run(comm, device);
            }
            catch (Exception e)
            {
                error = $"{e.GetType().Name}: {e.Message}";
            }
            results.Add(new CheckResult(name, comm.Rank, error, clock.Elapsed.TotalMilliseconds));
        }
        return results;
    }

    /// <summary>
    /// The last rank makes an invalid call (row counts that do not add up); the others wait in a barrier. Passes when
    /// the failing rank gets its error and every other rank gets <see cref="CommunicatorAbortedException"/> within
    /// <paramref name="limit"/>. Leaves the group aborted.
    /// </summary>
    public static CheckResult AbortWhenOneRankFails(ICommunicator comm, Device device, TimeSpan limit)
    {
        const string name = "one rank fails: the others get CommunicatorAbortedException";
        var clock = Stopwatch.StartNew();
        using var scope = torch.NewDisposeScope();
        try
        {
            if (comm.Rank == comm.Size - 1)
            {
                var rows = torch.zeros(comm.Size, 2, device: device);
                comm.AllToAll(rows, rows.clone(), Enumerable.Repeat(2L, comm.Size).ToArray());
            }
            else
            {
                comm.Barrier();
                comm.Barrier();
            }
            return new CheckResult(name, comm.Rank, "no exception: the failure was not noticed", clock.Elapsed.TotalMilliseconds);
        }
        catch (Exception e) when (comm.Rank == comm.Size - 1 ? e is ArgumentException or CommunicatorAbortedException : e is CommunicatorAbortedException)
        {
            double ms = clock.Elapsed.TotalMilliseconds;
            return new CheckResult(name, comm.Rank, ms <= limit.TotalMilliseconds ? null : $"took {ms:0} ms", ms);
        }
        catch (Exception e)
        {
            return new CheckResult(name, comm.Rank, $"unexpected {e.GetType().Name}: {e.Message}", clock.Elapsed.TotalMilliseconds);
        }
    }

    /// <summary>The value of row <paramref name="row"/> that <paramref name="source"/> sends to <paramref name="destination"/>.</summary>
    static float Value(int size, int source, int destination, int row) => ((source * size) + destination) * 3 + row;

    static void AllToAllEqual(ICommunicator comm, Device device, ScalarType type)
    {
        const int rowsPerChunk = 2, columns = 3;
        int n = comm.Size;
        var send = Rows(Enumerable.Range(0, n).SelectMany(to => Enumerable.Range(0, rowsPerChunk).Select(r => Value(n, comm.Rank, to, r))), columns, device, type);
        var receive = torch.zeros([n * rowsPerChunk, columns], type, device);
        comm.AllToAll(send, receive);
        var expected = Enumerable.Range(0, n).SelectMany(from => Enumerable.Range(0, rowsPerChunk).Select(r => Value(n, from, comm.Rank, r)));
        ExpectRows(receive, expected, "all-to-all");
    }

    static void AllToAllVariable(ICommunicator comm, Device device)
    {
        const int columns = 4;
        int n = comm.Size;
        long Count(int from, int to) => (from + to) % 3;
        var sendRows = Enumerable.Range(0, n).Select(to => Count(comm.Rank, to)).ToArray();
        var receiveRows = Enumerable.Range(0, n).Select(from => Count(from, comm.Rank)).ToArray();
        var send = Rows(Enumerable.Range(0, n).SelectMany(to => Enumerable.Range(0, (int)sendRows[to]).Select(r => Value(n, comm.Rank, to, r))), columns, device, ScalarType.Float32);
        var receive = torch.full([receiveRows.Sum(), columns], -1f, device: device);
        comm.AllToAll(send, receive, sendRows, receiveRows);
        var expected = Enumerable.Range(0, n).SelectMany(from => Enumerable.Range(0, (int)receiveRows[from]).Select(r => Value(n, from, comm.Rank, r)));
        ExpectRows(receive, expected, "variable all-to-all");
    }

    static Tensor RandomInput(int rank) => torch.randn(1000, generator: new Generator(1000 + (ulong)rank));

    static void AllReduceSumRandom(ICommunicator comm, Device device)
    {
        var tensor = RandomInput(comm.Rank).to(device);
        comm.AllReduce(tensor);
        var local = Enumerable.Range(0, comm.Size).Select(RandomInput).Aggregate((a, b) => a + b);
        var result = tensor.cpu();
        Expect(result.allclose(local, rtol: 1e-5, atol: 1e-5), "the all-reduced sum differs from the sum computed locally");
        var everyone = torch.zeros([comm.Size, 1000], device: device);
        comm.AllGather(tensor.reshape(1, 1000), everyone);
        var rows = everyone.cpu();
        for (int r = 0; r < comm.Size; r++)
            Expect(Same(rows[r], result), $"rank {r}'s all-reduced sum has different bits than rank {comm.Rank}'s");
    }

    static Tensor Integers(int rank, int count) => torch.arange(count, dtype: ScalarType.Float32) % 7 + rank;

    static void AllReduceSumExact(ICommunicator comm, Device device)
    {
        var tensor = Integers(comm.Rank, 999).to(device);
        comm.AllReduce(tensor);
        var expected = Enumerable.Range(0, comm.Size).Select(r => Integers(r, 999)).Aggregate((a, b) => a + b);
        Expect(Same(tensor.cpu(), expected), "the all-reduced sum of integers is not exact");
    }

    static void AllReduceSumBFloat16(ICommunicator comm, Device device)
    {
        var tensor = Integers(comm.Rank, 64).to(device).to_type(ScalarType.BFloat16);
        comm.AllReduce(tensor);
        var expected = Enumerable.Range(0, comm.Size).Select(r => Integers(r, 64)).Aggregate((a, b) => a + b);
        Expect(Same(tensor.cpu().to_type(ScalarType.Float32), expected), "the bfloat16 all-reduced sum is wrong");
    }

    static void AllReduceMax(ICommunicator comm, Device device)
    {
        var tensor = RandomInput(comm.Rank).to(device);
        comm.AllReduce(tensor, ReduceOperation.Max);
        var expected = Enumerable.Range(0, comm.Size).Select(RandomInput).Aggregate((a, b) => torch.maximum(a, b));
        Expect(Same(tensor.cpu(), expected), "the all-reduced maximum is wrong");
    }

    static void AllGather(ICommunicator comm, Device device)
    {
        const int rows = 2;
        var send = Rows(Enumerable.Range(0, rows).Select(r => Value(comm.Size, comm.Rank, 0, r)), 5, device, ScalarType.Float32);
        var receive = torch.zeros([comm.Size * rows, 5], device: device);
        comm.AllGather(send, receive);
        ExpectRows(receive, Enumerable.Range(0, comm.Size).SelectMany(from => Enumerable.Range(0, rows).Select(r => Value(comm.Size, from, 0, r))), "all-gather");
    }

    static void ReduceScatter(ICommunicator comm, Device device)
    {
        const int rows = 2;
        int n = comm.Size;
        var send = Rows(Enumerable.Range(0, n).SelectMany(to => Enumerable.Range(0, rows).Select(r => Value(n, comm.Rank, to, r))), 3, device, ScalarType.Float32);
        var receive = torch.zeros([rows, 3], device: device);
        comm.ReduceScatter(send, receive);
        ExpectRows(receive, Enumerable.Range(0, rows).Select(r => Enumerable.Range(0, n).Sum(from => Value(n, from, comm.Rank, r))), "reduce-scatter");
    }

    static void Broadcast(ICommunicator comm, Device device)
    {
        int root = comm.Size - 1;
        var tensor = Rows(Enumerable.Range(0, 3).Select(r => Value(comm.Size, comm.Rank, 0, r)), 2, device, ScalarType.Float32);
        comm.Broadcast(tensor, root);
        ExpectRows(tensor, Enumerable.Range(0, 3).Select(r => Value(comm.Size, root, 0, r)), "broadcast");
    }

    /// <summary>Even ranks send first and odd ranks receive first, so no backend needs to buffer a message.</summary>
    static void SendReceiveRing(ICommunicator comm, Device device)
    {
        int next = (comm.Rank + 1) % comm.Size, previous = (comm.Rank + comm.Size - 1) % comm.Size;
        var outgoing = torch.full([4, 2], 10f * comm.Rank + 1, device: device);
        var incoming = torch.zeros([4, 2], device: device);
        if (comm.Rank % 2 == 0)
        {
            comm.Send(outgoing, next);
            comm.Receive(incoming, previous);
        }
        else
        {
            comm.Receive(incoming, previous);
            comm.Send(outgoing, next);
        }
        ExpectRows(incoming, Enumerable.Repeat(10f * previous + 1, 4), "ring receive");
    }

    /// <summary>Colour by parity, keys reversed: the new ranks run in descending order of the old ones.</summary>
    static void Split(ICommunicator comm, Device device)
    {
        int color = comm.Rank % 2;
        var members = Enumerable.Range(0, comm.Size).Where(r => r % 2 == color).OrderByDescending(r => r).ToList();
        using var half = comm.Split(color, -comm.Rank);
        Expect(half.Size == members.Count && half.Rank == members.IndexOf(comm.Rank),
            $"rank {comm.Rank} became rank {half.Rank} of {half.Size}, expected {members.IndexOf(comm.Rank)} of {members.Count}");
        var sum = torch.full([3], (float)comm.Rank, device: device);
        half.AllReduce(sum);
        ExpectRows(sum.reshape(3, 1), Enumerable.Repeat((float)members.Sum(), 3), "all-reduce in the split group");
        AllToAllEqual(half, device, ScalarType.Float32);
        half.Barrier();
    }

    static Tensor Rows(IEnumerable<float> values, int columns, Device device, ScalarType type)
    {
        var column = torch.tensor(values.ToArray()).reshape(-1, 1);
        return column.expand(column.shape[0], columns).contiguous().to_type(type).to(device);
    }

    static void ExpectRows(Tensor actual, IEnumerable<float> rowValues, string what)
    {
        var expected = rowValues.ToArray();
        var rows = actual.cpu().to_type(ScalarType.Float32);
        Expect(rows.shape[0] == expected.Length, $"{what}: {rows.shape[0]} rows, expected {expected.Length}");
        var want = torch.tensor(expected).reshape(-1, 1).expand(rows.shape[0], RowWidth(rows)).reshape(rows.shape);
        if (!Same(rows, want))
            throw new InvalidOperationException($"{what}: got rows [{string.Join(", ", rows.reshape(rows.shape[0], -1).select(1, 0).data<float>().ToArray())}], expected [{string.Join(", ", expected)}]");
    }

    /// <summary>Same shape and equal elements (for floats without NaN: the same bits, up to the sign of zero).</summary>
    static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    static long RowWidth(Tensor rows) => rows.dim() <= 1 ? 1 : rows.shape.Skip(1).Aggregate(1L, (a, b) => a * b);

    static void Expect(bool condition, string message)
    {
        if (!condition) throw new InvalidOperationException(message);
    }
}
