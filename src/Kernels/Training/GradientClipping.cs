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
        // Scalars held to the end of the method: TorchSharp's implicit ones (norm + 1e-6 makes two) pass only their
        // native handles, so a collection during the call could finalize one under libtorch (seen once in CI:
        // "Expected false to be true" from Scalar::toFloat inside add).
        using var epsilon = 1e-6.ToScalar();
        using var unit = 1.0.ToScalar();
        using var limit = maxNorm.ToScalar();
        using var padded = norm.add(epsilon, unit);
        using var scale = padded.reciprocal().mul_(limit).clamp_max_(unit);
        foreach (var g in grads) g.mul_(scale);
    }
}
