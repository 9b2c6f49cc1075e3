using Orleans.MoE.Kernels.Native;
using TorchSharp;

namespace Orleans.MoE.Kernels.Tests;

public class TorchRuntimeTests
{
    [Fact]
    public void CpuDeviceRunsMatmul()
    {
        var device = TorchRuntime.ResolveDevice("cpu");
        using var a = torch.ones(3, 3, device: device);
        Assert.Equal(27f, a.matmul(a).sum().item<float>());
    }

    [Fact]
    public void UnknownDeviceNamesTheAllowedValues()
    {
        var e = Assert.Throws<ArgumentException>(() => TorchRuntime.ResolveDevice("tpu"));
        Assert.Contains("auto, cpu, cuda", e.Message);
    }
}
