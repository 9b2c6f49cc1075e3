using Orleans.MoE.Kernels.Experts;
using Orleans.MoE.Kernels.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Tests;

/// <summary>
/// The experts' MLP through our Hopper grouped GEMM against libtorch's GEMMs and GELU on the same bf16 values: output,
/// rows' and both weights' gradients within 1e-2 of the reference's largest magnitude, and how many elements are
/// bit-equal. Dropless (<see cref="HopperExpertMlp"/> against libtorch's grouped GEMM): groups uneven, empty and not
/// multiples of the 128-row tile, up to the T16384 E16 k2 benchmark shape. Capacity (<see cref="HopperCapacityMlp"/>
/// against the tuned batched GEMM): buffers of up to 160 tokens an expert, up to the T4096 E32 shape. Hopper GPUs only;
/// shared by the benchmark (<c>--check-kernels</c>) and the tests.
/// </summary>
internal static class HopperExpertGemmCheck
{
    /// <summary>Sizes: the groups' rows (dropless), or C rows for each of E experts (capacity).</summary>
    sealed record Case(long[] Sizes, long ModelWidth, long ExpertWidth, bool Capacity = false)
    {
        public override string ToString() =>
            Capacity ? $"capacity E{Sizes.Length} C{Sizes[0]} M{ModelWidth} F{ExpertWidth}" : $"E{Sizes.Length} R{Sizes.Sum()} M{ModelWidth} F{ExpertWidth}";
    }

    static IEnumerable<Case> Cases()
    {
        yield return new Case([100, 0, 37, 300], 256, 512);
        yield return new Case([1, 129, 0, 255, 128, 7, 0, 511], 512, 1024);
        yield return new Case(Enumerable.Range(0, 16).Select(e => 1900L + 17 * e).ToArray(), 1024, 2048);
        yield return new Case(Enumerable.Range(0, 16).Select(e => 2048L + (e % 2 == 0 ? 71 : -71)).ToArray(), 2048, 8192);
        yield return new Case(Enumerable.Repeat(100L, 4).ToArray(), 256, 512, Capacity: true);
        yield return new Case(Enumerable.Repeat(24L, 32).ToArray(), 1024, 4096, Capacity: true);
        yield return new Case(Enumerable.Repeat(160L, 32).ToArray(), 1024, 4096, Capacity: true);
    }

    /// <summary>Cases run, one line per case that differs, and one line per case with its bit-equal share.</summary>
    public static (int Cases, IReadOnlyList<string> Differences, IReadOnlyList<string> Report) Run(Device device)
    {
        var differences = new List<string>();
        var report = new List<string>();
        int count = 0;
        foreach (var c in Cases())
        {
            count++;
            var (difference, equal) = Compare(c, device);
            if (difference is not null) differences.Add($"{c}: {difference}");
            report.Add($"{c}: {equal}");
        }
        return (count, differences, report);
    }

    static (string? Difference, string Equal) Compare(Case c, Device device)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(c.Sizes.Length * 1000 + c.ModelWidth + (c.Capacity ? 1 : 0));
        long rows = c.Sizes.Sum(), experts = c.Sizes.Length;
        var ends = GroupedExpertGemm.Ends(c.Sizes, device);
        long[] shape = c.Capacity ? [experts, c.Sizes[0], c.ModelWidth] : [rows, c.ModelWidth];
        var x = torch.randn(shape, device: device).to_type(ScalarType.BFloat16);
        var w1 = (torch.randn(experts, c.ModelWidth, c.ExpertWidth, device: device) / Math.Sqrt(c.ModelWidth)).to_type(ScalarType.BFloat16);
        var w2 = (torch.randn(experts, c.ExpertWidth, c.ModelWidth, device: device) / Math.Sqrt(c.ExpertWidth)).to_type(ScalarType.BFloat16);
        var probe = torch.randn(shape, device: device).to_type(ScalarType.BFloat16);
        var ours = c.Capacity
            ? Run(x, w1, w2, ends, probe, (r, a, b, _) => HopperCapacityMlp.Apply(r, a, b))
            : Run(x, w1, w2, ends, probe, (r, a, b, e) => HopperExpertMlp.Apply(r, a, b, e));
        var theirs = c.Capacity
            ? Run(x, w1, w2, ends, probe, (r, a, b, _) => BatchedExpertGemm.Multiply(nn.functional.gelu(BatchedExpertGemm.Multiply(r, a)), b))
            : Run(x, w1, w2, ends, probe, (r, a, b, e) => GroupedExpertGemm.Multiply(nn.functional.gelu(GroupedExpertGemm.Multiply(r, a, e)), b, e));
        string[] names = ["output", "rows gradient", "W1 gradient", "W2 gradient"];
        var difference = ExpertGemmCheck.Worst(names.Select((name, i) => (name, ours[i], theirs[i].to_type(ScalarType.Float64))).ToArray());
        var equal = names.Select((name, i) => $"{name} {ours[i].eq(theirs[i]).to_type(ScalarType.Float32).mean().item<float>():P1} bit-equal");
        return (difference, string.Join(", ", equal));
    }

    static Tensor[] Run(Tensor x, Tensor w1, Tensor w2, Tensor ends, Tensor probe, Func<Tensor, Tensor, Tensor, Tensor, Tensor> mlp)
    {
        using var grad = torch.enable_grad();
        var rows = x.detach().requires_grad_();
        var first = w1.detach().requires_grad_();
        var second = w2.detach().requires_grad_();
        var output = mlp(rows, first, second, ends);
        var gradients = torch.autograd.grad([output], [rows, first, second], [probe]);
        return [output.detach(), gradients[0], gradients[1], gradients[2]];
    }
}
