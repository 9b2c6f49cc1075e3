using Orleans.MoE.Kernels.Native;
using Orleans.MoE.Tests;
using TorchSharp;

namespace Orleans.MoE.Kernels.Tests.Native;

/// <summary>
/// The fused gate, slot, dispatch and combine kernels against their TorchSharp fallback (tests/Shared/RoutingKernelCheck.cs:
/// 88 cases), the tuned cuBLASLt expert GEMM against float64 (tests/Shared/ExpertGemmCheck.cs) and the Hopper grouped
/// GEMM's expert MLP against libtorch's (tests/Shared/HopperExpertGemmCheck.cs). Needs a CUDA GPU through a PyTorch
/// libtorch (MOE_LIBTORCH) and NVRTC, and a Hopper GPU for the last; skipped otherwise. The benchmark
/// runs the same check on GPU hosts that have no .NET SDK (<c>MoELayerBench --check-kernels</c>).
/// </summary>
public class FusedKernelTests
{
    [Fact]
    public void TheFusedKernelsComputeWhatTheTorchSharpPathComputes()
    {
        if (!torch.cuda.is_available()) Assert.Skip($"libtorch has no CUDA here: set {TorchRuntime.LibTorchVariable} to a PyTorch installation's torch/lib");
        var device = new torch.Device(DeviceType.CUDA, 0);
        if (RoutingKernels.Problem(device) is { } problem) Assert.Skip($"the fused kernels cannot run here: {problem}");
        var report = RoutingKernelCheck.Run(device);
        Assert.True(report.Differences.Count == 0, $"{report.Summary}\n{string.Join("\n", report.Differences)}");
    }

    [Fact]
    public void TheTunedExpertGemmMatchesAFloat64BatchedProduct()
    {
        if (!torch.cuda.is_available()) Assert.Skip($"libtorch has no CUDA here: set {TorchRuntime.LibTorchVariable} to a PyTorch installation's torch/lib");
        var device = new torch.Device(DeviceType.CUDA, 0);
        if (!CudaGraphLibrary.Available) Assert.Skip($"the CUDA helper cannot be built here: {CudaGraphLibrary.Problem}");
        var (cases, differences) = ExpertGemmCheck.Run(device);
        Assert.True(differences.Count == 0, $"{differences.Count} of {cases} cases differ:\n{string.Join("\n", differences)}");
    }

    [Fact]
    public void TheHopperExpertMlpsMatchLibtorchsGemmsAndGelu()
    {
        if (!torch.cuda.is_available()) Assert.Skip($"libtorch has no CUDA here: set {TorchRuntime.LibTorchVariable} to a PyTorch installation's torch/lib");
        var device = new torch.Device(DeviceType.CUDA, 0);
        if (!CudaGraphLibrary.Available) Assert.Skip($"the CUDA helper cannot be built here: {CudaGraphLibrary.Problem}");
        if (HopperExpertGemm.Problem(device) is { } problem) Assert.Skip($"the Hopper expert GEMM cannot run here: {problem}");
        var (cases, differences, _) = HopperExpertGemmCheck.Run(device);
        Assert.True(differences.Count == 0, $"{differences.Count} of {cases} cases differ:\n{string.Join("\n", differences)}");
    }
}
