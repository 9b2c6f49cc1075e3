using Orleans.MoE.Kernels.Layers;
using Orleans.MoE.Kernels.Routing;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Bench;

/// <summary>
/// The straightforward TorchSharp MoE layer the optimised path is measured against: top-k, DeepSpeed's
/// per-choice one-hot cumulative sums for the slots, boolean masks to pick the kept tokens (a host read each),
/// index_copy into a [E, C, M] buffer, one batched GEMM pair, index_add back. Same weights, same routing rule.
/// </summary>
public sealed class ReferenceLayer(MoELayer weightsFrom, double capacityFactor, int minCapacity) : IBenchLayer
{
    public string Name => "reference";
    public string Mode => $"capacity {capacityFactor}";

    public LayerResult Forward(Tensor x)
    {
        var router = weightsFrom.Router.Weight;
        var w1 = weightsFrom.Experts.W1;
        var w2 = weightsFrom.Experts.W2;
        long t = x.shape[0], m = x.shape[1];
        int e = (int)w1.shape[0], k = weightsFrom.Router.Settings.TopK;
        int c = Capacity.Compute((int)t, e, k, capacityFactor, minCapacity);

        var probs = nn.functional.linear(x.to_type(ScalarType.Float32), router.to_type(ScalarType.Float32)).softmax(-1);
        var (gates, chosen) = probs.topk(k, dim: 1);
        var slots = new Tensor[k];
        var queued = torch.zeros(e, dtype: ScalarType.Int64, device: x.device);
        for (int j = 0; j < k; j++)
        {
            var mask = nn.functional.one_hot(chosen.select(1, j), e);
            slots[j] = ((mask.cumsum(0) - 1 + queued) * mask).sum(1);
            queued = queued + mask.sum(dim: 0);
        }
        var slot = torch.stack(slots, 1);
        var keep = slot.lt(c);
        var kept = gates * keep;
        var weights = k == 1 ? kept : kept / kept.sum(1, keepdim: true).clamp_min(1.1920929e-07);

        var buffer = x.new_zeros(e * (long)c, m);
        var rows = chosen * c + slot;
        var picked = new List<(Tensor Tokens, Tensor Rows, Tensor Weights)>();
        for (int j = 0; j < k; j++)
        {
            var tokens = keep.select(1, j).nonzero().squeeze(1);
            var destination = rows.select(1, j).index_select(0, tokens);
            buffer = buffer.index_copy(0, destination, x.index_select(0, tokens));
            picked.Add((tokens, destination, weights.select(1, j).index_select(0, tokens)));
        }
        var hidden = nn.functional.gelu(torch.bmm(buffer.view(e, c, m), w1.to_type(x.dtype)));
        var output = torch.bmm(hidden, w2.to_type(x.dtype)).view(e * (long)c, m);
        var combined = torch.zeros(t, m, dtype: ScalarType.Float32, device: x.device);
        foreach (var (tokens, destination, w) in picked)
            combined = combined.index_add(0, tokens, output.index_select(0, destination).to_type(ScalarType.Float32) * w.unsqueeze(1), 1.0);

        var meanProb = probs.mean([0]);
        var fraction = nn.functional.one_hot(chosen.select(1, 0), e).to_type(ScalarType.Float32).mean([0]);
        var aux = (meanProb * fraction).sum() * e;
        return new LayerResult(combined.to_type(x.dtype), aux, chosen, weights);
    }
}
