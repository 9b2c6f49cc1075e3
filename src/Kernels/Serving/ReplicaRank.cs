using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Generation;
using Orleans.MoE.Kernels.Model;
using Orleans.MoE.Kernels.Routing;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Serving;

/// <summary>
/// One rank of a serving replica running the engine's forwards in lockstep. Rank 0 (the leader, where the engine
/// schedules) broadcasts each forward's plan (slots, tokens, length); every rank runs it on its sliced model. The
/// tensor-slicing group g takes the slots s with s mod G = g, so a slot's KV cache always lives on one group's ranks;
/// a group with none of them runs one scratch token instead (every rank must join every collective of the forward).
/// Each group's last-position logits reach every rank by one all-gather; the leader samples from them.
/// </summary>
public sealed class ReplicaRank : IDisposable
{
    const long Stop = 0, Run = 1, Ping = 2;

    readonly GptModel model;
    readonly ServingGroups groups;
    readonly ICommunicator replica;
    readonly Device device;
    readonly SlotKvCache cache;
    readonly int scratch;

    /// <param name="slots">The engine's slots; one more is kept for the scratch token.</param>
    public ReplicaRank(GptModel sliced, ServingGroups groups, ICommunicator replica, Device device, int slots)
    {
        if (replica.Size != groups.Layout.WorldSize)
            throw new ArgumentException($"the replica communicator has {replica.Size} ranks, the layout {groups.Layout.WorldSize}", nameof(replica));
        model = sliced;
        this.groups = groups;
        this.replica = replica;
        this.device = device;
        sliced.PrepareForInference();
        scratch = slots;
        cache = new SlotKvCache(sliced.Config.Layers, slots + 1, sliced.Config.ContextLength);
    }

    public bool IsLeader => replica.Rank == 0;
    public int ContextLength => model.Config.ContextLength;
    public int VocabSize => model.VocabSize;

    public long LengthOf(int slot) => cache.LengthOf(slot);

    /// <summary>
    /// The leader's forward: the plan goes to every rank, then this rank runs its part. A plan is one broadcast of a
    /// fixed-size message (command, rows, length, fresh, the slots, and the tokens when they fit, as in every decode
    /// step); a prefill's longer tokens follow in a second one.
    /// </summary>
    public Tensor Lead(int[] slots, long[] tokens, int length, bool fresh)
    {
        if (!IsLeader) throw new InvalidOperationException($"rank {replica.Rank} follows; only rank 0 leads");
        var plan = new long[PlanLength];
        (plan[0], plan[1], plan[2], plan[3]) = (Run, slots.Length, length, fresh ? 1 : 0);
        for (int i = 0; i < slots.Length; i++) plan[4 + i] = slots[i];
        bool inline = tokens.Length <= scratch;
        if (inline) tokens.CopyTo(plan, 4 + scratch);
        Send(plan);
        if (!inline)
        {
            using var planTokens = torch.tensor(tokens, device: device);
            replica.Broadcast(planTokens, 0);
        }
        return Forward(slots, tokens, length, fresh);
    }

    /// <summary>A follower's loop: runs every plan the leader broadcasts until it says stop.</summary>
    public void Follow()
    {
        while (true)
        {
            long[] plan;
            using (var received = torch.zeros(PlanLength, ScalarType.Int64, device: device))
            {
                replica.Broadcast(received, 0);
                plan = received.cpu().data<long>().ToArray();
            }
            if (plan[0] == Stop) return;
            if (plan[0] == Ping) continue;
            int rows = (int)plan[1], length = (int)plan[2];
            long[] tokens;
            if (rows * (long)length <= scratch)
            {
                tokens = plan.AsSpan(4 + scratch, rows * length).ToArray();
            }
            else
            {
                using var planTokens = torch.zeros(rows * (long)length, ScalarType.Int64, device: device);
                replica.Broadcast(planTokens, 0);
                tokens = planTokens.cpu().data<long>().ToArray();
            }
            using var noGrad = torch.no_grad();
            using var scope = torch.NewDisposeScope();
            Forward(plan.Skip(4).Take(rows).Select(s => (int)s).ToArray(), tokens, length, plan[3] == 1);
        }
    }

    /// <summary>
    /// The leader's word while no request comes: a collective waited on for longer than the data plane's timeout (minutes)
    /// would abort the replica, so an idle leader pings its followers well within it.
    /// </summary>
    public void KeepAlive() => Send([Ping]);

    /// <summary>The leader ends the followers' loops (when the engine is disposed).</summary>
    public void StopFollowers() => Send([Stop]);

    /// <summary>The plan message: 4 header words, a slot id per slot, and as many inline tokens.</summary>
    int PlanLength => 4 + 2 * scratch;

    void Send(long[] plan)
    {
        if (plan.Length < PlanLength) Array.Resize(ref plan, PlanLength);
        using var tensor = torch.tensor(plan, device: device);
        replica.Broadcast(tensor, 0);
    }

    Tensor Forward(int[] slots, long[] tokens, int length, bool fresh)
    {
        int experts = groups.Layout.ExpertParallel, group = groups.ExpertRank, l = groups.Layout.TensorSlicing;
        var byGroup = Enumerable.Range(0, experts).Select(g => Enumerable.Range(0, slots.Length).Where(i => slots[i] % experts == g).ToArray()).ToArray();
        var mine = byGroup[group];
        int[] rows = mine.Length > 0 ? mine.Select(i => slots[i]).ToArray() : [scratch];
        long[] ids = mine.Length > 0 ? mine.SelectMany(i => tokens.Skip(i * length).Take(length)).ToArray() : [0];
        int t = mine.Length > 0 ? length : 1;
        if (fresh || mine.Length == 0)
            foreach (int slot in rows) cache.Clear(slot);
        var input = torch.tensor(ids, device: device).view(rows.Length, t);
        var logits = model.Forward(input, RoutingContext.Inference, null, cache.Rows(rows)).select(1, -1);

        // Every group's logits in blocks of the largest group's row count, from the first rank of each group.
        int share = Math.Max(1, byGroup.Max(g => g.Length));
        var send = torch.zeros(share, logits.shape[1], dtype: logits.dtype, device: device);
        if (mine.Length > 0) send.narrow(0, 0, mine.Length).copy_(logits);
        var all = torch.empty(replica.Size * (long)share, logits.shape[1], dtype: logits.dtype, device: device);
        replica.AllGather(send, all);
        var result = torch.empty(slots.Length, logits.shape[1], dtype: logits.dtype, device: device);
        for (int g = 0; g < experts; g++)
        {
            if (byGroup[g].Length == 0) continue;
            using var index = torch.tensor(byGroup[g].Select(i => (long)i).ToArray(), device: device);
            result.index_copy_(0, index, all.narrow(0, g * l * (long)share, byGroup[g].Length));
        }
        return result;
    }

    public void Dispose() => cache.Dispose();
}
