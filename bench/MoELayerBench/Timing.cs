using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Bench;

/// <summary>Median wall time of a device region, synchronising the GPU before and after every iteration.</summary>
public static class Timing
{
    /// <param name="prepare">Runs before each iteration, outside the timed region (e.g. dropping gradients).</param>
    public static double MedianMs(Device device, int warmup, int iterations, Action body, Action? prepare = null)
    {
        var times = new double[iterations];
        for (int i = 0; i < warmup + iterations; i++)
        {
            prepare?.Invoke();
            Synchronize(device);
            var clock = Stopwatch.StartNew();
            body();
            Synchronize(device);
            if (i >= warmup) times[i - warmup] = clock.Elapsed.TotalMilliseconds;
        }
        Array.Sort(times);
        return times[times.Length / 2];
    }

    public static void Synchronize(Device device)
    {
        if (device.type == DeviceType.CUDA) torch.cuda.synchronize(device);
    }

    /// <summary>The bf16 (CUDA) or fp32 (CPU) matmul rate of this run, in TFLOP/s: the ceiling for the experts.</summary>
    public static double MatmulTflops(Device device, ScalarType dtype)
    {
        int n = device.type == DeviceType.CUDA ? 8192 : 1024;
        using var scope = torch.NewDisposeScope();
        var a = torch.randn(n, n, device: device).to_type(dtype);
        var b = torch.randn(n, n, device: device).to_type(dtype);
        double ms = MedianMs(device, 3, device.type == DeviceType.CUDA ? 20 : 5, () => { using var c = a.matmul(b); });
        return 2.0 * n * n * n / (ms / 1000) / 1e12;
    }
}
