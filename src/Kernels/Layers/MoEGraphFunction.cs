using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Layers;

/// <summary>
/// Autograd's view of a <see cref="GraphedMoELayer"/>: the forward replays the forward graph, the backward replays the
/// backward graph. Inputs: x, the layer, the router weight (a parameter autograd must reach, so that the backward runs
/// even when x needs no gradient); the experts' weight gradients are written by the layer itself.
/// </summary>
public sealed class MoEGraphFunction : autograd.MultiTensorFunction<MoEGraphFunction>
{
    const string LayerKey = "layer";

    public override string Name => "GraphedMoELayer";

    public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var layer = (GraphedMoELayer)vars[1];
        ctx.save_data(LayerKey, layer);
        layer.RunForward((Tensor)vars[0], differentiable: true);
        return layer.Outputs();
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> grad_outputs)
    {
        var layer = (GraphedMoELayer)ctx.get_data(LayerKey);
        var (input, router) = layer.RunBackward(grad_outputs[0], grad_outputs[1]);
        // The incoming gradients are copied into the graph's tensors: their wrappers (TorchSharp's, disposed by nobody)
        // would hold GPU memory until a garbage collection. The returned ones are the graph's own and stay.
        foreach (var gradient in grad_outputs) gradient.Dispose();
        return [input, null!, router];
    }
}
