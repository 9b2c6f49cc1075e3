using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using Orleans.MoE.Client.Display;
using Orleans.MoE.Kernels.Native;
using Spectre.Console;
using TorchSharp;

namespace Orleans.MoE.Client.Commands;

/// <summary><c>moe doctor</c>: what this machine runs on (runtime, TorchSharp, libtorch, devices) and a measured matmul rate.</summary>
internal static class DoctorCommand
{
    public static Command Create()
    {
        var json = CommonOptions.Json();
        var command = new Command("doctor", "Check the runtime, libtorch and devices, and measure a matmul") { json };
        command.SetAction(parse => CommandRunner.Run(parse.GetValue(json), () =>
        {
            var report = Diagnose();
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(report, JsonOutput.Options));
            }
            else
            {
                var table = new Table().AddColumns("", "");
                table.AddRow(".NET", report.Dotnet);
                table.AddRow("TorchSharp", report.Torchsharp);
                table.AddRow("libtorch", $"{report.Libtorch} ({Markup.Escape(report.LibtorchPath ?? "?")})");
                table.AddRow("CUDA", report.CudaAvailable ? $"yes, {report.CudaDevices} device(s)" : "no");
                foreach (var d in report.Devices)
                    table.AddRow(Markup.Escape(d.Device), string.Create(CultureInfo.InvariantCulture, $"{d.Dtype} {d.Size}³ matmul: {d.Tflops:F2} TFLOP/s (median of {d.Repeats})"));
                AnsiConsole.Write(table);
            }
            return 0;
        }));
        return command;
    }

    sealed record DeviceRate(string Device, string Dtype, int Size, int Repeats, double Tflops);

    sealed record DoctorReport(string Dotnet, string Os, string Torchsharp, string Libtorch, string? LibtorchPath,
        string? LibtorchVariable, bool CudaAvailable, int CudaDevices, int CpuThreads, IReadOnlyList<DeviceRate> Devices);

    static DoctorReport Diagnose()
    {
        string libtorch = torch.__version__;
        bool cuda = torch.cuda.is_available();
        int count = cuda ? torch.cuda.device_count() : 0;
        var rates = new List<DeviceRate> { Measure(torch.CPU, torch.float32, 1024) };
        for (int i = 0; i < count; i++) rates.Add(Measure(new torch.Device(DeviceType.CUDA, i), torch.bfloat16, 8192));
        return new DoctorReport(
            RuntimeInformation.FrameworkDescription,
            RuntimeInformation.OSDescription,
            typeof(torch).Assembly.GetName().Version?.ToString() ?? "?",
            libtorch,
            LoadedLibTorch(),
            Environment.GetEnvironmentVariable(TorchRuntime.LibTorchVariable),
            cuda,
            count,
            torch.get_num_threads(),
            rates);
    }

    /// <summary>Median rate of an n³ matmul on random data after a warm-up, synchronising CUDA around each.</summary>
    static DeviceRate Measure(torch.Device device, torch.ScalarType dtype, int n)
    {
        using var scope = torch.NewDisposeScope();
        var a = torch.randn(n, n, dtype: dtype, device: device);
        var b = torch.randn(n, n, dtype: dtype, device: device);
        var times = new List<double>();
        int repeats = device.type == DeviceType.CUDA ? 20 : 5;
        for (int i = 0; i < repeats + 2; i++)
        {
            if (device.type == DeviceType.CUDA) torch.cuda.synchronize(device);
            var clock = Stopwatch.StartNew();
            using var c = a.matmul(b);
            if (device.type == DeviceType.CUDA) torch.cuda.synchronize(device);
            else _ = c.sum().item<float>();
            if (i >= 2) times.Add(clock.Elapsed.TotalSeconds);
        }
        times.Sort();
        double median = times[times.Count / 2];
        return new DeviceRate(device.ToString(), dtype.ToString(), n, repeats, 2.0 * n * n * n / median / 1e12);
    }

    /// <summary>The libtorch file this process mapped (Linux: from /proc/self/maps).</summary>
    static string? LoadedLibTorch()
    {
        const string maps = "/proc/self/maps";
        if (!File.Exists(maps)) return null;
        return File.ReadLines(maps).Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries).LastOrDefault())
            .FirstOrDefault(p => p is not null && (p.EndsWith("/libtorch_cpu.so", StringComparison.Ordinal)));
    }
}
