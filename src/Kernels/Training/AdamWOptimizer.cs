using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Training;

/// <summary>
/// Adam with decoupled weight decay (Loshchilov &amp; Hutter), state kept per parameter name so a checkpoint
/// can store it beside the weights and re-shard expert moments with the experts. Matrices (and expert
/// tensors) decay; biases, norms and other vectors do not.
/// </summary>
public sealed class AdamWOptimizer : IDisposable
{
    readonly (string Name, Parameter Parameter)[] parameters;
    readonly Dictionary<string, (Tensor M, Tensor V)> moments = [];

    public AdamWOptimizer(IEnumerable<(string Name, Parameter Parameter)> parameters, double beta1, double beta2, double epsilon, double weightDecay)
    {
        this.parameters = parameters.ToArray();
        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = epsilon;
        WeightDecay = weightDecay;
        foreach (var (name, p) in this.parameters)
            moments[name] = (torch.zeros_like(p).DetachFromDisposeScope(), torch.zeros_like(p).DetachFromDisposeScope());
    }

    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Epsilon { get; }
    public double WeightDecay { get; }

    /// <summary>Optimiser steps taken (t in the bias correction).</summary>
    public long StepCount { get; set; }

    public IReadOnlyDictionary<string, (Tensor M, Tensor V)> Moments => moments;

    public void Step(double learningRate)
    {
        StepCount++;
        double c1 = 1 - Math.Pow(Beta1, StepCount), c2 = 1 - Math.Pow(Beta2, StepCount);
        using var noGrad = torch.no_grad();
        // The step's scalars, made once and held to its end: TorchSharp hands libtorch only the native handle of an
        // implicit Scalar, which a garbage collection may finalize during the call (see GradientClipping).
        using var beta1 = Beta1.ToScalar();
        using var beta2 = Beta2.ToScalar();
        using var gradientShare = (1 - Beta1).ToScalar();
        using var squareShare = (1 - Beta2).ToScalar();
        using var epsilon = Epsilon.ToScalar();
        using var unit = 1.0.ToScalar();
        using var secondCorrection = c2.ToScalar();
        using var stepSize = (-learningRate / c1).ToScalar();
        using var decay = (1 - learningRate * WeightDecay).ToScalar();
        foreach (var (name, p) in parameters)
        {
            var g = p.grad;
            if (g is null) continue;
            var (m, v) = moments[name];
            m.mul_(beta1).add_(g, alpha: gradientShare);
            v.mul_(beta2).addcmul_(g, g, value: squareShare);
            if (WeightDecay > 0 && p.dim() >= 2) p.mul_(decay);
            using var denom = v.div(secondCorrection).sqrt_().add_(epsilon, unit);
            p.addcdiv_(m, denom, value: stepSize);
        }
    }

    public void ZeroGrad()
    {
        foreach (var (_, p) in parameters)
            p.grad?.zero_();
    }

    /// <summary>Replaces the moments of one parameter (loading a checkpoint).</summary>
    public void LoadMoments(string name, Tensor m, Tensor v)
    {
        var (cm, cv) = moments[name];
        using var noGrad = torch.no_grad();
        cm.copy_(m);
        cv.copy_(v);
    }

    public void Dispose()
    {
        foreach (var (m, v) in moments.Values)
        {
            m.Dispose();
            v.Dispose();
        }
        moments.Clear();
    }
}
