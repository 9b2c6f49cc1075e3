using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Training;

/// <summary>
/// Makes every rank's gradients those of the whole global batch after a backward in which each rank scaled its
/// loss by 1 / world size: dense gradients are summed over the world in flat buckets (fewer, larger messages),
/// each expert's gradient only over the ranks that hold that expert (its expert-data-parallel group; the other
/// ranks' tokens already reached it through the all-to-all). The global norm for clipping counts every distinct
/// expert once.
/// </summary>
public sealed class GradientSynchronizer
{
    readonly RankGroups groups;
    readonly Parameter[] dense;
    readonly (Parameter[] Weights, ICommunicator? Group, int Replicas)[] experts;
    readonly long bucketElements;

    public GradientSynchronizer(GptModel model, RankGroups groups, long bucketBytes = 32 << 20)
    {
        this.groups = groups;
        bucketElements = Math.Max(1, bucketBytes / sizeof(float));
        var expertWeights = new HashSet<Parameter>(ReferenceEqualityComparer.Instance);
        experts = model.MoeLayers.Select(layer =>
        {
            int total = layer.Router.Settings.Experts;
            var group = groups.ExpertDataGroupFor(total);
            expertWeights.Add(layer.Experts.W1);
            expertWeights.Add(layer.Experts.W2);
            return (new[] { layer.Experts.W1, layer.Experts.W2 }, group, group?.Size ?? 1);
        }).ToArray();
        dense = model.parameters().Where(p => !expertWeights.Contains(p)).ToArray();
    }

    /// <summary>Sums the gradients over their groups (collective: every rank calls it after its backward).</summary>
    public void AllReduce()
    {
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        foreach (var bucket in Buckets(dense.Select(Gradient)))
        {
            var flat = torch.cat(bucket.Select(g => g.view(-1)).ToArray());
            groups.World.AllReduce(flat);
            long at = 0;
            foreach (var g in bucket)
            {
                g.view(-1).copy_(flat.narrow(0, at, g.numel()));
                at += g.numel();
            }
        }
        foreach (var (weights, group, _) in experts)
            if (group is not null)
                foreach (var w in weights) group.AllReduce(Gradient(w));
    }

    /// <summary>Clips to the global norm of the whole model's gradient and returns that norm (the same on every rank).</summary>
    public Tensor ClipGlobalNorm(double maxNorm)
    {
        using var noGrad = torch.no_grad();
        var denseGrads = dense.Select(Gradient).ToArray();
        // Dense gradients are equal on every rank and an expert's on each of its replicas, so each rank adds a
        // 1/world share of the dense part and a 1/replicas share of its experts' part; the world sum is the norm².
        var share = GradientClipping.SquaredNorm(denseGrads) / groups.Size;
        foreach (var (weights, _, replicas) in experts)
            share = share + GradientClipping.SquaredNorm(weights.Select(Gradient).ToArray()) / replicas;
        var total = share.reshape(1).contiguous();
        groups.World.AllReduce(total);
        var norm = total.squeeze().sqrt();
        GradientClipping.Scale(denseGrads.Concat(experts.SelectMany(e => e.Weights).Select(Gradient)), norm, maxNorm);
        return norm;
    }

    /// <summary>A parameter's gradient, zero when it took no part in this step (so every rank sends the same buckets).</summary>
    static Tensor Gradient(Parameter p)
    {
        if (p.grad is null) p.grad = torch.zeros_like(p);
        return p.grad;
    }

    IEnumerable<List<Tensor>> Buckets(IEnumerable<Tensor> grads)
    {
        var bucket = new List<Tensor>();
        long size = 0;
        foreach (var g in grads)
        {
            if (bucket.Count > 0 && (size + g.numel() > bucketElements || g.dtype != bucket[0].dtype))
            {
                yield return bucket;
                bucket = [];
                size = 0;
            }
            bucket.Add(g);
            size += g.numel();
        }
        if (bucket.Count > 0) yield return bucket;
    }
}
