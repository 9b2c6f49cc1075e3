using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Training;

/// <summary>Scales all gradients so their global L2 norm is at most the limit, without a host read.</summary>
public static class GradientClipping
{
    /// <summary>Returns the norm before clipping (a scalar tensor; reading it is the caller's choice).</summary>
    public static Tensor ClipGlobalNorm(IEnumerable<Tensor> parameters, double maxNorm)
    {
        var grads = parameters.Select(p => p.grad).OfType<Tensor>().ToArray();
        using var noGrad = torch.no_grad();
        var norm = SquaredNorm(grads).sqrt();
        Scale(grads, norm, maxNorm);
        return norm;
    }

    /// <summary>Σ‖g‖² in fp32. Per-tensor norms first: squaring whole gradients would hold a second copy of each.</summary>
    public static Tensor SquaredNorm(IReadOnlyCollection<Tensor> grads) =>
        grads.Count == 0 ? torch.zeros(1).squeeze() : torch.stack(grads.Select(g => g.norm().to_type(ScalarType.Float32)).ToArray()).square().sum();

    /// <summary>Multiplies every gradient by min(1, maxNorm / norm); 0 turns clipping off.</summary>
    public static void Scale(IEnumerable<Tensor> grads, Tensor norm, double maxNorm)
    {
        if (maxNorm <= 0) return;
        using var noGrad = torch.no_grad();
        using var scale = (maxNorm / (norm + 1e-6)).clamp_max(1.0);
        foreach (var g in grads) g.mul_(scale);
    }
}
