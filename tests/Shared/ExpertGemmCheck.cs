using Orleans.MoE.Kernels.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Tests;

/// <summary>
/// The tuned cuBLASLt expert GEMM (<see cref="BatchedExpertGemm"/>) against a float64 torch.bmm of the same values:
/// output and both gradients within 1e-2 of the reference's largest magnitude (bf16/fp16 rounding), over shapes from one
/// row to the capacity layout's, odd sizes, both dtypes and transposed operands. GPU only; shared by the benchmark
/// (<c>--check-kernels</c>) and the tests.
/// </summary>
internal static class ExpertGemmCheck
{
    sealed record Case(long Experts, long Rows, long Inner, long Columns, ScalarType Dtype, bool TransposedX, bool TransposedW)
    {
        public override string ToString() =>
            $"E{Experts} C{Rows} K{Inner} N{Columns} {Dtype}{(TransposedX ? " xᵀ" : "")}{(TransposedW ? " wᵀ" : "")}";
    }

    static IEnumerable<Case> Cases()
    {
        (long, long, long, long)[] shapes = [(1, 1, 8, 8), (3, 5, 7, 9), (8, 160, 256, 512), (32, 160, 1024, 512), (4, 128, 64, 96)];
        foreach (var (e, c, k, n) in shapes)
            foreach (var dtype in new[] { ScalarType.BFloat16, ScalarType.Float16 })
                foreach (var (tx, tw) in new[] { (false, false), (true, false), (false, true) })
                    yield return new Case(e, c, k, n, dtype, tx, tw);
    }

    /// <summary>Cases run and one line per case that differs.</summary>
    public static (int Cases, IReadOnlyList<string> Differences) Run(Device device)
    {
        var differences = new List<string>();
        int count = 0;
        foreach (var c in Cases())
        {
            count++;
            if (Compare(c, device) is { } difference) differences.Add($"{c}: {difference}");
        }
        return (count, differences);
    }

    static string? Compare(Case c, Device device)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(c.Experts * 1000 + c.Rows * 10 + c.Inner);
        // Operands stored transposed reach the GEMM as views with the other inner stride, as autograd's are.
        var x = (c.TransposedX ? torch.randn(c.Experts, c.Inner, c.Rows, device: device).transpose(1, 2) : torch.randn(c.Experts, c.Rows, c.Inner, device: device))
            .to_type(c.Dtype).detach().requires_grad_();
        var w = ((c.TransposedW ? torch.randn(c.Experts, c.Columns, c.Inner, device: device).transpose(1, 2) : torch.randn(c.Experts, c.Inner, c.Columns, device: device)) * 0.1)
            .to_type(c.Dtype).detach().requires_grad_();
        var probe = torch.randn(c.Experts, c.Rows, c.Columns, device: device);
        var y = BatchedExpertGemm.Multiply(x, w);
        var grads = torch.autograd.grad([(y.to_type(ScalarType.Float32) * probe).sum()], [x, w]);
        var x64 = x.detach().to_type(ScalarType.Float64).requires_grad_();
        var w64 = w.detach().to_type(ScalarType.Float64).requires_grad_();
        var expected = torch.bmm(x64, w64);
        var expectedGrads = torch.autograd.grad([(expected * probe.to_type(ScalarType.Float64)).sum()], [x64, w64]);
        return Worst(("output", y, expected), ("x gradient", grads[0], expectedGrads[0]), ("w gradient", grads[1], expectedGrads[1]));
    }

    /// <summary>The first pair whose largest difference exceeds 1e-2 of the expected (float64) values' largest magnitude.</summary>
    internal static string? Worst(params (string Name, Tensor Actual, Tensor Expected)[] pairs)
    {
        foreach (var (name, actual, expected) in pairs)
        {
            if (!actual.shape.SequenceEqual(expected.shape)) return $"{name} has shape [{string.Join(", ", actual.shape)}]";
            double scale = Math.Max(expected.abs().max().item<double>(), 1e-6);
            double error = (actual.to_type(ScalarType.Float64) - expected).abs().max().item<double>() / scale;
            if (!(error <= 1e-2)) return $"{name} off by {error:G3} of its largest magnitude";
        }
        return null;
    }
}
