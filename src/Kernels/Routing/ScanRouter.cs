using Orleans.MoE.Kernels.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Routing;

/// <summary>
/// The short routing path for deterministic routing (no noise, no random token selection): top-k on the
/// softmax, then every expert's slots from one running count (a cumulative sum over choices ordered by
/// group, choice rank and position, [tokens·k × E], never [tokens × E × C]). Gives exactly the table of
/// <see cref="TopKRouter"/>'s sort-based path in about half the kernel launches. Dropless routing can lay the
/// buffer out packed (expert segments without padding), reading the segment sizes back to the host once or, for the
/// grouped GEMM, keeping the group ends on the device; or padded with room for every token of a group in every expert.
/// The last two read nothing back (a captured CUDA graph).
/// </summary>
public static class ScanRouter
{
    /// <param name="roomForEveryToken">Dropless only: pad every expert to the group's token count instead of reading the
    /// largest load back to the host (no token can take an expert's slot twice, so none is dropped).</param>
    /// <param name="groupAlignment">Dropless packed only: 0 reads the segment sizes back to the host; n ≥ 1 keeps the
    /// group ends on the device (<see cref="RoutingTable.SegmentEnds"/>) and starts each expert's rows at a multiple of n.</param>
    public static RoutingTable Route(Tensor x, Tensor weight, GateSettings settings, int groups, bool training, bool packDropless, bool roomForEveryToken = false, int groupAlignment = 0)
    {
        long n = x.shape[0];
        int g = (int)(n / groups), e = settings.Experts, k = settings.TopK;
        // One routing group on a GPU routes with the slot kernels, whose table links the dispatch's backward to the gate's.
        var (logits, probs, gates, chosen, link) = Gate(x, weight, settings, linkDispatch: groups == 1);
        if (groups == 1 && RouteWithKernel(settings, training, packDropless, roomForEveryToken, groupAlignment, logits, probs, gates, chosen, link) is { } fused)
            return fused;

        // Choices ordered (group, choice rank, position): all first choices queue before any second choice.
        var ordered = k == 1 ? chosen.view(groups, g) : chosen.view(groups, g, k).transpose(1, 2).reshape(groups, (long)k * g);
        // Scan along the innermost dimension ([G, E, k·g]): a scan across rows of [G, k·g, E] costs milliseconds on
        // CUDA at 16k tokens, the innermost one tens of microseconds.
        var running = nn.functional.one_hot(ordered, e).transpose(1, 2).contiguous().cumsum(-1);   // [G, E, k·g]
        var slotOrdered = running.gather(1, ordered.unsqueeze(1)).squeeze(1) - 1;                  // [G, k·g]
        var slot = k == 1 ? slotOrdered.view(n, 1) : slotOrdered.view(groups, k, g).transpose(1, 2).reshape(n, k);
        var counts = running.select(2, (long)k * g - 1);                                           // [G, E]

        int capacity;
        Tensor destination, weights;
        long[]? sizes = null;
        Tensor? ends = null;
        long? packedRows = null;
        var layout = ExpertBufferLayout.Padded;
        if (settings.DropTokens)
        {
            capacity = CapacityOf(settings, g, training);
            var dropped = slot.ge(capacity);
            weights = CombineWeights(gates, dropped, k);
            long rows = (long)e * groups * capacity;
            destination = PaddedRow(chosen, slot, groups, g, capacity).masked_fill_(dropped, rows).flatten();
        }
        else
        {
            weights = CombineWeights(gates, null, k);
            if (roomForEveryToken)
            {
                capacity = g;
                destination = PaddedRow(chosen, slot, groups, g, capacity).flatten();
            }
            else if (packDropless)
            {
                layout = ExpertBufferLayout.Packed;
                var perExpert = counts.sum(dim: 0);                                          // [E]
                Tensor expertStart;
                if (groupAlignment > 0)
                {
                    // Group ends stay on the device for the grouped GEMM: nothing is read back, so the layer can be
                    // captured in a CUDA graph. Each expert's rows start at a multiple of the alignment.
                    var room = groupAlignment == 1 ? perExpert
                        : (perExpert + (groupAlignment - 1)).div(groupAlignment, rounding_mode: RoundingMode.floor) * groupAlignment;
                    var expertEnds = room.cumsum(0);
                    expertStart = expertEnds - room;
                    ends = expertEnds.to_type(ScalarType.Int32);
                    packedRows = AlignedPackedRows(n, k, e, groupAlignment);
                    capacity = 0;
                }
                else
                {
                    expertStart = perExpert.cumsum(0) - perExpert;
                    sizes = perExpert.cpu().data<long>().ToArray();
                    capacity = (int)sizes.Max();
                }
                if (groups == 1)
                {
                    destination = expertStart.index_select(0, chosen.flatten()) + slot.flatten();
                }
                else
                {
                    // Inside an expert's rows, group g's tokens follow those of the groups before it.
                    var perExpertGroup = counts.t();                                         // [E, G]
                    var start = perExpertGroup.cumsum(1) - perExpertGroup + expertStart.unsqueeze(1);
                    var bucket = chosen * groups + GroupOf(n, g, x.device).unsqueeze(1);
                    destination = start.reshape(-1).index_select(0, bucket.flatten()) + slot.flatten();
                }
            }
            else
            {
                capacity = Math.Max(1, (int)counts.max().item<long>());
                destination = PaddedRow(chosen, slot, groups, g, capacity).flatten();
            }
        }

        return new RoutingTable
        {
            Experts = chosen,
            Destination = destination,
            Weights = weights,
            ExpertCount = e,
            TopK = k,
            Groups = groups,
            Capacity = capacity,
            Layout = layout,
            SegmentSizes = sizes,
            SegmentEnds = ends,
            PackedRows = packedRows,
            LoadSource = () => counts.sum(dim: 0),
            KeptSource = () => !settings.DropTokens ? counts.sum(dim: 0) : counts.clamp_max(capacity).sum(dim: 0),
            AuxLossSource = () => LoadBalancingLoss.Compute(probs,
                k == 2 ? nn.functional.one_hot(chosen.select(1, 0).view(groups, g), e).sum(1) : counts, groups, k),
            ZLossSource = () => ZLoss(logits),
        };
    }

    /// <summary>
    /// One routing group on a GPU: slots, buffer rows, counts and the buffer's row sources from two kernels
    /// (<see cref="RoutingKernels.Slots"/>) instead of the one-hot scan's dozen. Null where the kernels do not apply:
    /// none here, or a dropless layout that reads the sizes back.
    /// </summary>
    static RoutingTable? RouteWithKernel(GateSettings settings, bool training, bool packDropless, bool roomForEveryToken, int groupAlignment,
        Tensor logits, Tensor probs, Tensor gates, Tensor chosen, DispatchGradientLink? link)
    {
        int e = settings.Experts, k = settings.TopK, capacity;
        if (!RoutingKernels.SupportsSlots(chosen, e)) return null;
        long n = chosen.shape[0], rows;
        var layout = ExpertBufferLayout.Padded;
        if (settings.DropTokens)
        {
            capacity = CapacityOf(settings, (int)n, training);
            rows = (long)e * capacity;
        }
        else if (roomForEveryToken)
        {
            capacity = (int)n;
            rows = e * n;
        }
        else if (packDropless && groupAlignment > 0)
        {
            layout = ExpertBufferLayout.Packed;
            capacity = 0;
            rows = AlignedPackedRows(n, k, e, groupAlignment);
        }
        else
        {
            return null;
        }
        // Where a gradient can reach them (training), the slot kernels also finish the load-balancing loss and, for one
        // choice with a capacity, the combine weights; elsewhere (inference) both are made only if something reads them.
        bool finish = probs.requires_grad;
        var slots = RoutingKernels.Slots(chosen, e, capacity, groupAlignment, rows, LoadBalancingLoss.Scale(e, 1, n, k),
            finish ? probs : null, finish && settings.DropTokens ? gates : null);
        Tensor? dropped = settings.DropTokens ? slots.Dropped : null;
        var all = slots.Counts;
        return new RoutingTable
        {
            Experts = chosen,
            Destination = slots.Destination,
            WeightsSource = () => slots.Weights is { } masked
                ? AttachedGradient.Apply(gates, masked, KeptOnly(dropped!))
                : CombineWeights(gates, dropped, k),
            // The fused combine skips dropped choices and gives their weights no gradient: one choice needs no mask.
            CombineGates = k == 1 ? gates : null,
            ExpertCount = e,
            TopK = k,
            Groups = 1,
            Capacity = capacity,
            Layout = layout,
            SegmentEnds = slots.Ends,
            PackedRows = layout == ExpertBufferLayout.Packed ? rows : null,
            RowSource = slots.RowSource,
            GradientLink = link is null || !gates.requires_grad ? null : (link, gates),
            LoadSource = () => all,
            KeptSource = () => settings.DropTokens ? all.clamp_max(capacity) : all,
            // Its gradient is balance[e] · the loss's for every token: one row, broadcast (the gate's backward reads it so).
            AuxLossSource = () => slots.AuxLoss is { } aux
                ? AttachedGradient.Apply(probs, aux, Broadcast(slots.Balance, n))
                : LoadBalancingLoss.FromWeighted(probs, slots.Balance),
            ZLossSource = () => ZLoss(logits),
        };
    }

    // The gradients attached to the slot kernels' values capture only what they need: a lambda written inline would
    // share the method's closure, which holds the values themselves, and their autograd nodes would keep it (a cycle
    // that no collection frees).
    static Func<Tensor, Tensor> KeptOnly(Tensor dropped) => gradient => gradient.masked_fill(dropped, 0);

    static Func<Tensor, Tensor> Broadcast(Tensor balance, long n) => gradient => (balance * gradient).expand(n, balance.shape[0]);

    /// <summary>Slots per expert in a routing group of <paramref name="groupTokens"/> tokens.</summary>
    static int CapacityOf(GateSettings settings, int groupTokens, bool training) =>
        Routing.Capacity.Compute(groupTokens, settings.Experts, settings.TopK, training ? settings.CapacityFactor : settings.EvalCapacityFactor,
            settings.MinCapacity, settings.CapacityAlignment);

    /// <summary>
    /// The gates [N, k] as combine weights: dropped choices ([N, k] bool, null when none can be) weigh 0, and for
    /// k ≥ 2 the kept ones are renormalised to sum to 1.
    /// </summary>
    static Tensor CombineWeights(Tensor gates, Tensor? dropped, int k)
    {
        var kept = dropped is null ? gates : gates.masked_fill(dropped, 0);
        if (k == 1) return kept;
        var total = kept.sum(1, keepdim: true);
        return kept / (dropped is null ? total : total.clamp_min(1.1920929e-07));
    }

    /// <summary>Rows of a packed buffer whose experts each start at a multiple of <paramref name="alignment"/>: room for
    /// every choice plus the most padding the alignment can add.</summary>
    static long AlignedPackedRows(long n, int k, int e, int alignment) => n * k + (long)(alignment - 1) * e;

    /// <summary>Mean squared log-sum-exp of the logits, in their accumulation type (the fused gate keeps bf16 logits).</summary>
    static Tensor ZLoss(Tensor logits) => logits.to_type(logits.AccumulationType()).logsumexp(-1).square().mean();

    /// <summary>
    /// Dropless top-k without a mapping table: each token's k experts and combine weights (renormalised over the k
    /// choices), for callers that run every token through its own experts' weights.
    /// </summary>
    public static (Tensor Weights, Tensor Chosen) Choose(Tensor x, Tensor weight, GateSettings settings)
    {
        int k = settings.TopK;
        var (_, _, gates, chosen, _) = Gate(x, weight, settings);
        return (k == 1 ? gates : gates / gates.sum(1, keepdim: true), chosen);
    }

    /// <summary>
    /// Logits x·Wᵀ and their softmax in fp32, and the top-k of it: one fused kernel on a GPU (<see cref="FusedGate"/>). With
    /// <paramref name="linkDispatch"/>, when the router multiplies x itself, its backward also takes the dispatch's
    /// gradient of x through the link it returns (else null).
    /// </summary>
    static (Tensor Logits, Tensor Probs, Tensor Gates, Tensor Chosen, DispatchGradientLink? Link) Gate(Tensor x, Tensor weight, GateSettings settings, bool linkDispatch = false)
    {
        int k = settings.TopK;
        var input = RouterInput.Of(x, settings);
        if (RoutingKernels.Supports(input, settings.Experts, k))
        {
            var cast = weight.to_type(input.dtype);
            // The same GEMM as the linear layer's; its gradients are the fused gate's.
            Tensor product;
            using (torch.no_grad()) product = RouterInput.Product(input, cast);
            // Linked only when a backward can run and the router multiplies the tokens themselves (a cast has its own).
            var link = linkDispatch && torch.is_grad_enabled() && ReferenceEquals(input, x) ? new DispatchGradientLink(x) : null;
            var (fusedLogits, fusedProbs, fusedGates, fusedChosen) = FusedGate.Apply(product, input, cast, k, link);
            return (fusedLogits, fusedProbs, fusedGates, fusedChosen, link);
        }
        var logits = RouterInput.Logits(input, weight);
        var probs = logits.softmax(-1);
        // One choice is a max: one reduction where top-k launches a radix select (13 µs at 4k tokens on an H200).
        var (gates, chosen) = k == 1 ? probs.max(1, keepdim: true) : probs.topk(k, dim: 1);
        return (logits, probs, gates, chosen, null);
    }

    static Tensor PaddedRow(Tensor chosen, Tensor slot, int groups, int g, int capacity)
    {
        // slot + (groups·C)·chosen in one kernel.
        var row = slot.add(chosen, (long)groups * capacity);
        return groups == 1 ? row : row + GroupOf(chosen.shape[0], g, chosen.device).unsqueeze(1) * capacity;
    }

    static Tensor GroupOf(long n, int g, Device device) =>
        torch.arange(n, device: device).div(g, rounding_mode: RoundingMode.floor);
}
