using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Layers;
using Orleans.MoE.Kernels.Native;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Experts;

/// <summary>
/// The experts of one MoE layer held by this process, stored batched ([E, M, F] and [E, F, M]) so that all of
/// them run as one pair of batched GEMMs over the dispatch buffer. <see cref="FirstExpert"/> is the global id of
/// local expert 0 (non-zero once experts are spread over ranks).
/// </summary>
public sealed class ExpertBank : nn.Module<Tensor, Tensor>
{
    readonly Parameter w1;
    readonly Parameter w2;

    /// <param name="shard">The experts this process holds; the initial weights of all of them are drawn (and the
    /// others' discarded) so that the generator ends where a one-process model's does and every shard holds the
    /// weights the one-process model would.</param>
    public ExpertBank(ExpertShard shard, int dModel, int dFf, double outputInitStd, Generator? init = null) : base("experts")
    {
        if (dFf % shard.Slices != 0)
            throw new ArgumentException($"an expert's {dFf} hidden units do not split into {shard.Slices} slices");
        Shard = shard;
        w1 = nn.Parameter(Draw(shard, dModel, dFf, 2, 0.02, init));
        w2 = nn.Parameter(Draw(shard, dFf, dModel, 1, outputInitStd, init));
        RegisterComponents();
    }

    /// <param name="hiddenDim">The dimension of the expert's hidden units, which expert slicing splits.</param>
    static Tensor Draw(ExpertShard shard, long rows, long columns, int hiddenDim, double std, Generator? init)
    {
        long[] shape = [shard.Count, rows, columns];
        shape[hiddenDim] /= shard.Slices;
        // Without a generator nothing is reproduced, so only the shard is drawn (a 64-expert layer of a large
        // model would otherwise be drawn whole on every rank).
        if (init is null)
        {
            var own = torch.empty(shape);
            ParameterInit.Normal(own, std, null);
            return own;
        }
        using var all = torch.empty(shard.Total, rows, columns);
        ParameterInit.Normal(all, std, init);
        long width = shape[hiddenDim];
        return all.narrow(0, shard.First, shard.Count).narrow(hiddenDim, shard.Slice * width, width).clone();
    }

    public int Count => (int)w1.shape[0];
    public ExpertShard Shard { get; }
    public int FirstExpert => Shard.First;
    public Parameter W1 => w1;
    public Parameter W2 => w2;

    /// <summary>Parameters of one expert (both matrices).</summary>
    public long ParametersPerExpert => w1.shape[1] * w1.shape[2] + w2.shape[1] * w2.shape[2];

    /// <summary>
    /// [E, R, M] tokens per expert (padded buffer) → [E, R, M] outputs: one batched GEMM pair (on a GPU in bf16/fp16,
    /// cuBLASLt with tuned algorithms: <see cref="BatchedExpertGemm"/>); on a Hopper GPU with at most 160 tokens an
    /// expert, the GELU in the epilogues of our swapped-tile kernels (<see cref="HopperCapacityMlp"/>).
    /// </summary>
    public override Tensor forward(Tensor buffer)
    {
        Tensor first = w1.As(buffer), second = w2.As(buffer);
        if (HopperExpertGemm.SupportsCapacity(buffer, first.shape[1], first.shape[2])) return HopperCapacityMlp.Apply(buffer, first, second);
        var hidden = nn.functional.gelu(BatchedExpertGemm.MultiplyOrBmm(buffer, first));
        return BatchedExpertGemm.MultiplyOrBmm(hidden, second);
    }

    /// <summary>
    /// Packed buffer [Σ sizes, M] (expert e's rows are the e-th segment) → outputs in the same layout. On a GPU with
    /// the grouped GEMM: one launch per matrix for all experts (forward and backward). Otherwise one GEMM pair per
    /// expert on views, so no padding is computed; unbinding the weights (rather than indexing them) keeps the backward
    /// to one stack of per-expert gradients.
    /// </summary>
    public Tensor ForwardPacked(Tensor buffer, long[] sizes)
    {
        var first = w1.As(buffer);
        int alignment = GroupAlignment(buffer);
        // Every group but the last must end where the next may start.
        if (alignment > 0 && sizes.SkipLast(1).All(s => s % alignment == 0))
        {
            using var ends = GroupedExpertGemm.Ends(sizes, buffer.device);
            return GroupedPair(buffer, ends, first, w2.As(buffer));
        }
        var segments = buffer.split(sizes, 0);
        var firstPerExpert = first.unbind(0);
        var second = w2.As(buffer).unbind(0);
        var outputs = new Tensor[segments.Length];
        for (int e = 0; e < segments.Length; e++)
            outputs[e] = nn.functional.gelu(segments[e].matmul(firstPerExpert[e])).matmul(second[e]);
        return torch.cat(outputs, 0);
    }

    /// <summary>
    /// The multiple of rows at which each expert's group must start for <see cref="ForwardGrouped"/> (0: no grouped
    /// GEMM for this dtype and device, so dropless routing reads the segment sizes back for <see cref="ForwardPacked"/>).
    /// The weights run in <paramref name="like"/>'s dtype, so it alone decides (no cast of the weights to ask).
    /// </summary>
    public int GroupAlignment(Tensor like) => GroupedExpertGemm.RowAlignment(like);

    /// <summary>Packed buffer whose expert groups end at <paramref name="ends"/> ([E] int32 on the device) → outputs in
    /// the same layout, as two grouped GEMMs with nothing read back to the host.</summary>
    public Tensor ForwardGrouped(Tensor buffer, Tensor ends) => GroupedPair(buffer, ends, w1.As(buffer), w2.As(buffer));

    /// <summary>
    /// Whether <see cref="ForwardChosen"/> beats a padded buffer with room for every token (which reads every
    /// expert): always with the grouped GEMM; with in-place gathered GEMMs while rows are fewer than experts; with
    /// gathered copies (three reads of a chosen expert) while rows are under a third of the experts.
    /// </summary>
    public bool PrefersChosen(long rows, Tensor like)
    {
        if (GroupedExpertGemm.Supports(like)) return true;
        return GatheredExpertGemm.InPlace(like) ? rows < Count : 3 * rows < Count;
    }

    /// <summary>
    /// Rows [R, M], each through the expert named beside it ([R] global ids) → [R, M], reading only the experts in use
    /// and nothing back to the host (a captured CUDA graph): fewer rows than experts go through gathered GEMMs of one
    /// row each (<see cref="GatheredExpertGemm"/>); more are sorted by expert on the device and run through the
    /// grouped GEMM.
    /// </summary>
    public Tensor ForwardChosen(Tensor rows, Tensor experts)
    {
        long count = rows.shape[0];
        var local = FirstExpert == 0 ? experts : experts - FirstExpert;
        Tensor first = w1.As(rows), second = w2.As(rows);
        if (count >= Count && GroupedExpertGemm.Supports(rows)) return Grouped(rows, local, first, second);
        // One row: cuBLAS's pointer-array GEMM with a batch of one ran slower on an H200 (3.9 against 2.8 ms per token
        // at batch 1) than copying out the one expert and multiplying.
        Func<Tensor, Tensor, Tensor, Tensor> gathered = count == 1 ? GatheredExpertGemm.Gathered : GatheredExpertGemm.Multiply;
        return gathered(nn.functional.gelu(gathered(rows, first, local)), second, local);
    }

    /// <summary>Rows sorted by expert on the device, the grouped GEMM pair, and the outputs put back in row order.</summary>
    Tensor Grouped(Tensor rows, Tensor experts, Tensor first, Tensor second)
    {
        var order = experts.argsort();
        var counts = torch.zeros(Count, dtype: ScalarType.Int64, device: rows.device).index_add_(0, experts, torch.ones_like(experts), 1);
        var ends = counts.cumsum(0).to_type(ScalarType.Int32);
        var output = GroupedPair(rows.index_select(0, order), ends, first, second);
        return torch.empty_like(output).index_copy_(0, order, output);
    }

    /// <summary>
    /// Rows grouped by expert (group ends [E], int32) through both expert matrices: on a Hopper GPU by our grouped GEMM
    /// with the GELU in its epilogues (<see cref="HopperExpertMlp"/>), else by libtorch's grouped GEMM and GELU.
    /// </summary>
    static Tensor GroupedPair(Tensor rows, Tensor ends, Tensor first, Tensor second) =>
        HopperExpertGemm.Supports(rows, first.shape[0], first.shape[1], first.shape[2])
            ? HopperExpertMlp.Apply(rows, first, second, ends)
            : GroupedExpertGemm.Multiply(nn.functional.gelu(GroupedExpertGemm.Multiply(rows, first, ends)), second, ends);
}
