using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Checkpoints;

/// <summary>What a safetensors file holds: named CPU tensors and string metadata; disposing frees the tensors.</summary>
public sealed class SafeTensorsContent(Dictionary<string, Tensor> tensors, Dictionary<string, string> metadata) : IDisposable
{
    /// <summary>Tensors by name, on the CPU.</summary>
    public Dictionary<string, Tensor> Tensors { get; } = tensors;

    /// <summary>The "__metadata__" entries.</summary>
    public Dictionary<string, string> Metadata { get; } = metadata;

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var tensor in Tensors.Values) tensor.Dispose();
    }
}
