using TorchSharp;

namespace Orleans.MoE.Kernels.Native;

/// <summary>Chooses the compute device and reports what libtorch this process runs on.</summary>
public static class TorchRuntime
{
    /// <summary>Environment variable naming a PyTorch installation's torch/lib (CUDA hosts).</summary>
    public const string LibTorchVariable = "MOE_LIBTORCH";

    /// <summary>Resolves "auto", "cpu", "cuda" or "cuda:N" into a device, failing clearly when CUDA is absent.</summary>
    public static torch.Device ResolveDevice(string name)
    {
        string n = name.Trim().ToLowerInvariant();
        if (n == "auto") return torch.cuda.is_available() ? torch.CUDA : torch.CPU;
        if (n == "cpu") return torch.CPU;
        if (n.StartsWith("cuda", StringComparison.Ordinal))
        {
            if (!torch.cuda.is_available())
                throw new InvalidOperationException(
                    $"device '{name}' asked for CUDA, but libtorch has no CUDA here; set {LibTorchVariable} to a PyTorch " +
                    "installation's torch/lib (see README) or use --device cpu");
            return new torch.Device(n);
        }
        throw new ArgumentException($"device '{name}' is not one of: auto, cpu, cuda, cuda:N");
    }
}
