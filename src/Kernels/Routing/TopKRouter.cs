using Orleans.MoE.Kernels.Layers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Routing;

/// <summary>
/// Learned top-k gate with every DeepSpeed-MoE option: logits = x·Wᵀ in fp32, optional jitter or Gumbel noise,
/// top-k choice, capacity slots by a sort over (group, expert, choice rank, priority) keys so that random token
/// selection is one more key, and the mapping table. No host synchronisation unless tokens are never dropped
/// (then the capacity is the largest expert load, which must be read back). Routing without noise or random
/// selection takes the shorter <see cref="ScanRouter"/> path, which gives the same table.
/// </summary>
public sealed class TopKRouter : nn.Module
{
    readonly Parameter weight;
    readonly GateSettings settings;
    readonly int layerIndex;

    public TopKRouter(int dModel, GateSettings settings, int layerIndex, Generator? init = null) : base("router")
    {
        this.settings = settings;
        this.layerIndex = layerIndex;
        weight = nn.Parameter(torch.empty(settings.Experts, dModel));
        ParameterInit.Normal(weight, 0.02, init);
        RegisterComponents();
    }

    public GateSettings Settings => settings;

    public Parameter Weight => weight;

    /// <summary>Lay dropless buffers out packed (grouped expert GEMMs) rather than padded to the largest load.</summary>
    public bool PackDropless { get; set; } = true;

    /// <summary>
    /// Serving routes every token to its experts, whatever the configured capacity: with a capacity, which tokens drop
    /// depends on the other tokens in the call, so a request's output would change with what it is batched with.
    /// </summary>
    public bool NeverDrop { get; set; }

    /// <summary>Tests turn this off to compare the general sort-based path with the scan path.</summary>
    internal bool AllowScanPath { get; set; } = true;

    /// <summary>Routes N tokens [N, M] split into <paramref name="groups"/> equal routing groups.</summary>
    /// <param name="groupAlignment">Dropless packed buffers: keep the group ends on the device, each expert's rows
    /// starting at a multiple of this (0 reads the sizes back; see <see cref="ScanRouter.Route"/>).</param>
    public RoutingTable Route(Tensor x, int groups, RoutingContext context, int groupAlignment = 0)
    {
        long n = x.shape[0];
        if (n % groups != 0) throw new ArgumentException($"{n} tokens do not split into {groups} routing groups");
        if (NeverDrop && !training) return ScanRouter.Route(x, weight, settings with { DropTokens = false }, groups, false, PackDropless, context.SyncFree, groupAlignment);
        bool random = training && settings.RandomWhileTraining;
        if (!random && AllowScanPath) return ScanRouter.Route(x, weight, settings, groups, training, PackDropless, groupAlignment: groupAlignment);
        return RouteWithSort(x, groups, context);
    }

    RoutingTable RouteWithSort(Tensor x, int groups, RoutingContext context)
    {
        long n = x.shape[0];
        int g = (int)(n / groups);
        int e = settings.Experts, k = settings.TopK;
        bool noisy = training && settings.Noise != RouterNoise.None;
        bool sampleSecond = training && k == 2 && settings.SecondExpertSampling;
        var device = x.device;

        var groupNoise = training && (noisy || sampleSecond || (settings.DropTokens && settings.UseRts))
            ? DrawNoise(groups, g, x.shape[1], device, context)
            : null;

        var input = RouterInput.Of(x, settings);
        if (training && settings.Noise == RouterNoise.Jitter) input = input * groupNoise!.Jitter!.to_type(input.dtype);
        var logits = RouterInput.Logits(input, weight);
        var probs = logits.softmax(-1);

        var scores = training && settings.Noise == RouterNoise.RSample ? logits + groupNoise!.Gumbel! : logits;
        Tensor chosen;
        if (sampleSecond)
        {
            // DeepSpeed's top-2: the second expert is the argmax of Gumbel-perturbed logits with the first masked out.
            var first = scores.argmax(-1, keepdim: true);
            var excluded = torch.full(first.shape, double.NegativeInfinity, dtype: logits.dtype, device: device);
            var second = (logits + groupNoise!.SecondGumbel!).scatter(1, first, excluded).argmax(-1, keepdim: true);
            chosen = torch.cat([first, second], 1);
        }
        else
        {
            chosen = scores.topk(k, dim: 1).indexes;
        }
        var gates = probs.gather(1, chosen);

        var groupOfToken = torch.arange(n, device: device).div(g, rounding_mode: RoundingMode.floor);
        var auxLoss = LoadBalancingLoss.Compute(probs, RoutedCounts(chosen, groupOfToken, groups), groups, k);
        var zLoss = logits.logsumexp(-1).square().mean();

        // Slot order inside each (group, expert): every first choice before any second choice (GShard),
        // then by position in the group, or by a random priority when random token selection is on.
        var priority = groupNoise?.Priority ?? torch.arange(n, device: device).remainder(g);
        var rank = torch.arange(k, device: device).unsqueeze(0);
        var bucket = groupOfToken.unsqueeze(1) * e + chosen;                         // [N, k]
        var key = ((bucket * k + rank) * g + priority.unsqueeze(1)).flatten();
        var order = key.argsort(0, false);
        var bucketFlat = bucket.flatten();
        var counts = bucketFlat.bincount(null, (long)groups * e);
        var starts = counts.cumsum(0) - counts;
        var sortedBucket = bucketFlat.index_select(0, order);
        var slotSorted = torch.arange(n * k, device: device) - starts.index_select(0, sortedBucket);
        var slot = torch.empty_like(slotSorted).index_copy_(0, order, slotSorted).view(n, k);

        int capacity = settings.DropTokens
            ? Routing.Capacity.Compute(g, e, k, training ? settings.CapacityFactor : settings.EvalCapacityFactor, settings.MinCapacity, settings.CapacityAlignment)
            : Math.Max(1, (int)counts.max().item<long>());
        var keep = slot.lt(capacity);
        var keptGates = gates * keep;
        var weights = k == 1 ? keptGates : keptGates / keptGates.sum(1, keepdim: true).clamp_min(1.1920929e-07);

        long rows = (long)e * groups * capacity;
        var destination = torch.where(keep, chosen * (groups * (long)capacity) + groupOfToken.unsqueeze(1) * capacity + slot,
            torch.full_like(slot, rows)).flatten();
        var chosenFlat = chosen.flatten();
        var table = new RoutingTable
        {
            Experts = chosen,
            Destination = destination,
            Weights = weights,
            LoadSource = () => chosenFlat.bincount(null, e),
            KeptSource = () => chosenFlat.bincount(keep.flatten().to_type(ScalarType.Float32), e).to_type(ScalarType.Int64),
            AuxLossSource = () => auxLoss,
            ZLossSource = () => zLoss,
            ExpertCount = e,
            TopK = k,
            Groups = groups,
            Capacity = capacity,
        };
        return table;
    }

    /// <summary>The [groups, E] choice counts the load-balancing loss needs: first choices for k ≤ 2, all for k &gt; 2.</summary>
    Tensor RoutedCounts(Tensor chosen, Tensor groupOfToken, int groups)
    {
        int e = settings.Experts;
        var counted = settings.TopK <= 2 ? chosen.narrow(1, 0, 1) : chosen;
        var bucket = (groupOfToken.unsqueeze(1) * e + counted).flatten();
        return bucket.bincount(null, (long)groups * e).view(groups, e);
    }

    sealed record GroupNoise(Tensor? Jitter, Tensor? Gumbel, Tensor? SecondGumbel, Tensor? Priority);

    GroupNoise DrawNoise(int groups, int g, long dModel, Device device, RoutingContext context)
    {
        int e = settings.Experts;
        return new GroupNoise(
            settings.Noise == RouterNoise.Jitter ? Draw(1, gen => torch.rand(g, dModel, generator: gen) * (2 * settings.JitterEpsilon) + (1.0 - settings.JitterEpsilon)) : null,
            settings.Noise == RouterNoise.RSample ? Draw(2, gen => Gumbel(torch.rand(g, e, generator: gen))) : null,
            settings.TopK == 2 && settings.SecondExpertSampling ? Draw(3, gen => Gumbel(torch.rand(g, e, generator: gen))) : null,
            settings.DropTokens && settings.UseRts ? Draw(4, gen => torch.randperm(g, generator: gen)) : null);

        // Each stream has its own generator per group, so turning one option on does not shift another's numbers.
        Tensor Draw(long stream, Func<Generator, Tensor> sample)
        {
            var parts = new Tensor[groups];
            for (int i = 0; i < groups; i++)
            {
                using var gen = new Generator((ulong)(context.GroupSeed(layerIndex, i) ^ (stream << 56)));
                parts[i] = sample(gen);
            }
            return torch.cat(parts, 0).to(device);
        }
    }

    static Tensor Gumbel(Tensor uniform) =>
        -(-(uniform.clamp(1e-20, 1.0 - 1e-7)).log()).log();
}
