using System.Globalization;
using Orleans.MoE.Kernels.Layers;
using Orleans.MoE.Kernels.Native;
using Orleans.MoE.Kernels.Routing;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Tests;

/// <summary>
/// The fused routing, dispatch and combine kernels (<see cref="RoutingKernels"/>) against TorchSharp's operations on the
/// same inputs, over token counts, expert counts, k, router dtypes and buffer layouts: the integer outputs (experts,
/// rows, row sources, group ends, loads) must be equal, the weights and losses equal to float rounding, the combined
/// tokens and the gradients of x and the router weight within 1e-2 and 2e-2 relative (bf16). Runs on a GPU only (on a CPU both
/// sides are TorchSharp's). Shared by the benchmark (<c>--check-kernels</c>, and before every GPU run) and the tests.
/// </summary>
internal static class RoutingKernelCheck
{
    /// <summary>Cases run; those equal but for the order of tied experts; one line per case that differs.</summary>
    public sealed record Report(int Cases, IReadOnlyList<string> TiedOrder, IReadOnlyList<string> Differences)
    {
        public string Summary => $"routing kernels against TorchSharp: {Cases - Differences.Count - TiedOrder.Count} of {Cases} cases equal, {TiedOrder.Count} equal but for the order of tied experts, {Differences.Count} differ";
    }

    sealed record Case(long Tokens, int Experts, int TopK, string Mode, bool Bf16Router);

    static IEnumerable<Case> Cases()
    {
        (long, int, int)[] shapes = [(1, 32, 1), (7, 8, 2), (64, 32, 1), (512, 8, 1), (512, 32, 1), (1000, 256, 8), (4096, 32, 1), (4096, 64, 2), (16384, 16, 1), (16384, 16, 2), (16384, 64, 1)];
        foreach (var (tokens, experts, k) in shapes)
            foreach (string mode in new[] { "capacity", "packed", "packed8", "room" })
                foreach (bool bf16 in new[] { false, true })
                    yield return new Case(tokens, experts, k, mode, bf16);
    }

    /// <summary>Every case on <paramref name="device"/>, which must be able to run the kernels (<see cref="RoutingKernels.Problem"/>).</summary>
    public static Report Run(Device device)
    {
        var ties = new List<string>();
        var differences = new List<string>();
        int count = 0;
        foreach (var c in Cases())
        {
            count++;
            string? difference = Compare(c, device);
            string name = $"T{c.Tokens} E{c.Experts} k{c.TopK} {c.Mode}{(c.Bf16Router ? " bf16 router" : "")}";
            if (difference == TieOrder) ties.Add(name);
            else if (difference is not null) differences.Add($"{name}: {difference}");
        }
        return new Report(count, ties, differences);
    }

    static string? Compare(Case c, Device device)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(c.Tokens * 31 + c.Experts * 7 + c.TopK);
        const int dModel = 64;
        var x = torch.randn(c.Tokens, dModel, device: device).to_type(ScalarType.BFloat16);
        var weight = (torch.randn(c.Experts, dModel, device: device) * 0.5).requires_grad_();
        var probe = torch.randn(c.Tokens, c.TopK, device: device);
        var probeY = torch.randn(c.Tokens, dModel, device: device);
        var settings = new GateSettings
        {
            Experts = c.Experts,
            TopK = c.TopK,
            CapacityFactor = 1.25,
            MinCapacity = 4,
            DropTokens = c.Mode == "capacity",
            UseRts = false,
            SecondExpertSampling = false,
            RouterInComputeDtype = c.Bf16Router,
        };
        var fused = Side(true);
        var plain = Side(false);
        return fused.Compare(plain, 2e-2);

        Outcome Side(bool kernels)
        {
            bool before = RoutingKernels.Enabled;
            RoutingKernels.Enabled = kernels;
            try
            {
                var input = x.detach().requires_grad_();
                weight.grad = null!;
                var table = ScanRouter.Route(input, weight, settings, groups: 1, training: true, packDropless: c.Mode != "room",
                    roomForEveryToken: c.Mode == "room", groupAlignment: c.Mode == "packed8" ? 8 : c.Mode == "packed" ? 1 : 0);
                // Through dispatch and combine too (the expert a stand-in: output = 1.5 · its rows).
                var y = IndexDispatcher.Combine(IndexDispatcher.Dispatch(input, table) * 1.5, table, c.Tokens);
                var loss = (table.Weights * probe).sum() + (y.to_type(ScalarType.Float32) * probeY).sum() + table.ZLoss * 0.1;
                // The padded ("room") cases leave the aux loss out of the loss: no gradient reaches the probabilities then,
                // the fused gate's backward without one.
                if (c.Mode != "room") loss = loss + table.AuxLoss * 0.3;
                loss.backward();
                var gates = nn.functional.linear(RouterInput.Of(x, settings), weight.detach().to_type(c.Bf16Router ? ScalarType.BFloat16 : ScalarType.Float32))
                    .to_type(ScalarType.Float32).softmax(-1).gather(1, table.Experts);
                return new Outcome(table.Experts, gates, table.Destination, table.RowSource, table.SegmentEnds, table.Load, table.Kept,
                    table.Weights.detach(), table.AuxLoss.detach(), table.ZLoss.detach(), y.detach(), input.grad!, weight.grad!.clone());
            }
            finally
            {
                RoutingKernels.Enabled = before;
            }
        }
    }

    const string TieOrder = "tie order";

    sealed record Outcome(Tensor Experts, Tensor Gates, Tensor Rows, Tensor RowSource, Tensor? Ends, Tensor Load, Tensor Kept, Tensor Weights,
        Tensor AuxLoss, Tensor ZLoss, Tensor Combined, Tensor GradX, Tensor GradRouter)
    {
        /// <param name="gradientBound">2e-2, the benchmark's bf16 bound: the gradients reach x through bf16 tokens and (with a bf16
        /// router) bf16 logits; with one token a few roundings already make 1 %.</param>
        public string? Compare(Outcome other, double gradientBound)
        {
            if (!Equal(Experts, other.Experts))
            {
                // Equal probabilities may be ranked either way (torch's top-k leaves the order of ties open; bf16 logits
                // tie often): then the gates, sorted in both, still agree, and nothing after the choice can be compared.
                double gates = (Gates - other.Gates).abs().max().item<float>();
                return gates <= 1e-5 ? TieOrder : $"chosen experts (gates differ by {gates:E1})";
            }
            if (!Equal(Rows, other.Rows)) return "buffer rows";
            if (!Equal(RowSource, other.RowSource)) return "row sources";
            if ((Ends is null) != (other.Ends is null) || (Ends is not null && !Equal(Ends, other.Ends!))) return "group ends";
            if (!Equal(Load.flatten(), other.Load.flatten())) return "loads";
            if (!Equal(Kept.flatten(), other.Kept.flatten())) return "kept counts";
            double weights = (Weights - other.Weights).abs().max().item<float>();
            // The two softmaxes sum in different orders: a few fp32 ulps apart.
            if (weights > 1e-5) return $"weights differ by {weights:E1}";
            // The combined tokens are bf16: TorchSharp's k = 1 product rounds the weight to bf16 first (2⁻⁸ apart at most).
            foreach (var (name, a, b, bound) in new[] { ("aux loss", AuxLoss, other.AuxLoss, 1e-5), ("z-loss", ZLoss, other.ZLoss, 1e-5), ("combined tokens", Combined, other.Combined, 1e-2), ("x's gradient", GradX, other.GradX, gradientBound), ("router gradient", GradRouter, other.GradRouter, gradientBound) })
            {
                double error = Relative(a, b);
                if (error > bound) return string.Create(CultureInfo.InvariantCulture, $"{name}: relative error {error:E1} > {bound:E0}");
            }
            return null;
        }

        static bool Equal(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.to_type(ScalarType.Int64).eq(b.to_type(ScalarType.Int64)).all().item<bool>();

        static double Relative(Tensor a, Tensor b)
        {
            var a32 = a.to_type(ScalarType.Float32);
            var b32 = b.to_type(ScalarType.Float32);
            return (a32 - b32).norm().item<float>() / Math.Max(b32.norm().item<float>(), 1e-12f);
        }
    }
}
