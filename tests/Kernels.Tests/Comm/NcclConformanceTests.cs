using Orleans.MoE.CommConformance;
using Orleans.MoE.Kernels.Comm.Nccl;
using Orleans.MoE.Kernels.Native;
using TorchSharp;

namespace Orleans.MoE.Kernels.Tests.Comm;

/// <summary>
/// The communicator conformance checks on NCCL, one thread per GPU (at most four). Needs CUDA through a PyTorch
/// libtorch (MOE_LIBTORCH) and two GPUs; skipped otherwise.
/// </summary>
public class NcclConformanceTests
{
    [Fact]
    public void EveryCollectiveConformsOnSeveralGpus()
    {
        int gpus = GpusOrSkip();
        var group = NcclGroup.Create(Enumerable.Range(0, gpus).ToArray(), TimeSpan.FromSeconds(60));
        var results = RankThreads.Run(gpus, rank =>
        {
            using var comm = group[rank];
            return CommunicatorChecks.RunAll(comm, new torch.Device(DeviceType.CUDA, rank));
        }, TimeSpan.FromMinutes(3));
        ConformanceAssert.AllPassed(results.SelectMany(r => r), gpus);
    }

    [Fact]
    public void OneFailingRankAbortsTheOthersQuickly()
    {
        int gpus = GpusOrSkip();
        var group = NcclGroup.Create(Enumerable.Range(0, gpus).ToArray(), TimeSpan.FromSeconds(60));
        var results = RankThreads.Run(gpus, rank =>
        {
            using var comm = group[rank];
            return CommunicatorChecks.AbortWhenOneRankFails(comm, new torch.Device(DeviceType.CUDA, rank), TimeSpan.FromSeconds(20));
        }, TimeSpan.FromMinutes(2));
        ConformanceAssert.AllPassed(results, gpus);
    }

    static int GpusOrSkip()
    {
        int gpus = CudaDriver.DeviceCount();
        if (gpus < 2) Assert.Skip($"NCCL needs CUDA and at least 2 GPUs; this machine has {gpus}");
        if (!torch.cuda.is_available()) Assert.Skip($"libtorch has no CUDA here: set {TorchRuntime.LibTorchVariable} to a PyTorch installation's torch/lib");
        return Math.Min(gpus, 4);
    }
}
