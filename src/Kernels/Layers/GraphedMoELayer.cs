using Orleans.MoE.Kernels.Native;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Layers;

/// <summary>
/// A MoE layer for a fixed token count whose forward and backward each run as one CUDA graph: captured once (after
/// warm-up runs on the capture stream), then replayed, so the ~50 kernels of a forward and ~100 of a backward cost
/// one launch each instead of tens of microseconds of host time apiece — what decides the small shapes, where the
/// arithmetic takes less time than launching it. It needs routing that reads nothing back to the host: capacity
/// mode, or dropless with the grouped GEMM (group ends on the device), and no router noise or random token
/// selection. Without graphs (CPU, or no helper) the same class re-runs the layer eagerly on the same static tensors,
/// so it computes the same thing everywhere.
/// </summary>
/// <remarks>
/// As with PyTorch's <c>make_graphed_callables</c>, outputs and gradients live in the graphs' static tensors: the
/// output of a forward is valid until the next forward, and each forward must be followed by its backward (or none)
/// before the next forward with gradients. The experts' weight gradients are written by the backward graph; a weight
/// whose gradient is empty takes the graph's tensor as its gradient (no copy), one that holds a gradient gets this
/// one added to it.
/// </remarks>
public sealed class GraphedMoELayer : IDisposable
{
    readonly MoELayer layer;
    readonly long[] shape;
    readonly ScalarType dtype;
    readonly Parameter[] parameters;
    readonly bool graphs;
    CudaGraph? forwardGraph, backwardGraph;
    Tensor? input, output, auxLoss, outputGrad, auxGrad, chosen, weights, load;
    Tensor[]? gradients;
    (Tensor Output, Tensor AuxLoss)? eagerPending;
    bool backwardPending;

    /// <param name="shape">The input's shape ([tokens, M] or [batch, sequence, M]); every call must have it.</param>
    public GraphedMoELayer(MoELayer layer, long[] shape, ScalarType dtype, Device device)
    {
        if (layer.Router.Settings.RandomWhileTraining)
            throw new ArgumentException("a graphed MoE layer needs deterministic routing: set noisy_gate_policy to none and second_expert_sampling and use_rts to false", nameof(layer));
        if (layer.Exchange is not null || layer.CoordinationGroup is not null)
            throw new ArgumentException("a graphed MoE layer holds all its experts (no expert-parallel exchange)", nameof(layer));
        this.layer = layer;
        this.shape = shape;
        this.dtype = dtype;
        parameters = [layer.Router.Weight, layer.Experts.W1, layer.Experts.W2];
        graphs = device.type == DeviceType.CUDA && CudaGraphLibrary.Available;
        Device = device;
    }

    public Device Device { get; }

    /// <summary>True when forward and backward replay CUDA graphs (false: eager re-runs on the static tensors).</summary>
    public bool Graphs => graphs;

    /// <summary>Kernels (and other operations) of one forward and one backward: the launches an eager layer makes.</summary>
    public ((long Kernels, long Others) Forward, (long Kernels, long Others) Backward)? Operations =>
        forwardGraph is null || backwardGraph is null ? null : (forwardGraph.Operations, backwardGraph.Operations);

    /// <summary>[N, k] experts each token chose in the latest forward (static: rewritten by the next).</summary>
    public Tensor Chosen => chosen ?? throw NotRun();

    /// <summary>[N, k] combine weights of the latest forward (0 for a dropped choice).</summary>
    public Tensor Weights => weights ?? throw NotRun();

    /// <summary>[E] assignments each expert received in the latest forward.</summary>
    public Tensor Load => load ?? throw NotRun();

    /// <summary>x (the fixed shape) → the layer's output and its load-balancing loss, both differentiable.</summary>
    public (Tensor Output, Tensor AuxLoss) Forward(Tensor x)
    {
        if (!x.shape.SequenceEqual(shape))
            throw new ArgumentException($"a graphed MoE layer takes inputs of shape [{string.Join(", ", shape)}], not [{string.Join(", ", x.shape)}]", nameof(x));
        if (input is null) Capture();
        bool differentiable = torch.is_grad_enabled() && (x.requires_grad || parameters.Any(p => p.requires_grad));
        if (!differentiable)
        {
            RunForward(x, differentiable: false);
            return (output!.detach(), auxLoss!.detach());
        }
        if (backwardPending)
            throw new InvalidOperationException("a graphed MoE layer ran forward again before the previous forward's backward; its graphs hold one forward's activations");
        var results = MoEGraphFunction.apply(x, this, layer.Router.Weight);
        backwardPending = true;
        return (results[0], results[1]);
    }

    /// <summary>Copies <paramref name="x"/> in and runs the forward: the static output, aux loss and routing are rewritten.</summary>
    internal void RunForward(Tensor x, bool differentiable)
    {
        using (torch.no_grad()) input!.copy_(x);
        if (forwardGraph is not null)
        {
            forwardGraph.Replay();
            return;
        }
        // Eager: the pending forward keeps its autograd graph for RunBackward (autograd functions forward without one).
        using var scope = torch.NewDisposeScope();
        using var mode = torch.set_grad_enabled(differentiable);
        var (y, aux, routing) = ForwardBody();
        using (torch.no_grad())
        {
            output!.copy_(y);
            auxLoss!.copy_(aux);
            chosen!.copy_(routing.Chosen);
            weights!.copy_(routing.Weights);
            load!.copy_(routing.Load);
        }
        eagerPending?.Output.Dispose();
        eagerPending?.AuxLoss.Dispose();
        eagerPending = (y.DetachFromDisposeScope(), aux.DetachFromDisposeScope());
    }

    /// <summary>The static output and aux loss, as the autograd function returns them.</summary>
    internal List<Tensor> Outputs() => [output!.detach(), auxLoss!.detach()];

    /// <summary>Gradients of the output and aux loss → the input's and the router's; the experts' go to their weights.</summary>
    internal (Tensor Input, Tensor Router) RunBackward(Tensor gradOutput, Tensor gradAux)
    {
        backwardPending = false;
        using (torch.no_grad())
        {
            outputGrad!.copy_(gradOutput);
            auxGrad!.copy_(gradAux);
            // A weight that still holds the previous backward's tensor as its gradient gets its own copy before the
            // replay overwrites that tensor.
            for (int i = 1; i < parameters.Length; i++) Unalias(parameters[i], gradients![i + 1]);
        }
        if (backwardGraph is not null)
        {
            backwardGraph.Replay();
        }
        else
        {
            using var scope = torch.NewDisposeScope();
            var computed = Gradients(eagerPending!.Value.Output, eagerPending.Value.AuxLoss);
            using (torch.no_grad())
                for (int i = 0; i < computed.Count; i++) gradients![i].copy_(computed[i]);
        }
        using (torch.no_grad())
            for (int i = 1; i < parameters.Length; i++) Accumulate(parameters[i], gradients![i + 1]);
        return (gradients![0], gradients[1]);
    }

    /// <summary>Makes the static tensors and, on a GPU, captures the forward and backward graphs.</summary>
    void Capture()
    {
        // The backward is captured whatever the caller's mode: a later call may need it.
        using var grad = torch.enable_grad();
        if (!graphs)
        {
            MakeEagerTensors();
            return;
        }
        CaptureGraphs();
        CudaGraph.ReleaseCachedMemory();
    }

    void MakeEagerTensors()
    {
        using var scope = torch.NewDisposeScope();
        input = torch.randn(shape, device: Device).to_type(dtype).requires_grad_().DetachFromDisposeScope();
        // Shapes of the static tensors from one eager forward.
        var (y, aux, routing) = ForwardBody();
        output = torch.empty_like(y).DetachFromDisposeScope();
        auxLoss = torch.empty_like(aux).DetachFromDisposeScope();
        outputGrad = torch.empty_like(y).DetachFromDisposeScope();
        auxGrad = torch.empty_like(aux).DetachFromDisposeScope();
        chosen = torch.empty_like(routing.Chosen).DetachFromDisposeScope();
        weights = torch.empty_like(routing.Weights).DetachFromDisposeScope();
        load = torch.empty_like(routing.Load).DetachFromDisposeScope();
        gradients = parameters.Prepend(input).Select(p => torch.empty_like(p).DetachFromDisposeScope()).ToArray();
    }

    void CaptureGraphs()
    {
        using var scope = torch.NewDisposeScope();
        var device = Device;
        input = torch.randn(shape, device: device).to_type(dtype).requires_grad_().DetachFromDisposeScope();
        outputGrad = torch.randn(shape, device: device).to_type(dtype).DetachFromDisposeScope();
        auxGrad = torch.ones([], device: device).DetachFromDisposeScope();
        forwardGraph = new CudaGraph(CudaDriver.OrdinalOf(device));
        // Lazy initialisation (cuBLAS workspaces, kernel selection) happens in warm-up runs on the capture stream.
        forwardGraph.OnGraphStream(() =>
        {
            for (int i = 0; i < 3; i++)
            {
                using var warm = torch.NewDisposeScope();
                var (y, aux, _) = ForwardBody();
                Gradients(y, aux);
            }
        });
        var captured = forwardGraph.Capture(ForwardBody);
        output = captured.Output.DetachFromDisposeScope();
        auxLoss = captured.AuxLoss.DetachFromDisposeScope();
        chosen = captured.Routing.Chosen.DetachFromDisposeScope();
        weights = captured.Routing.Weights.DetachFromDisposeScope();
        load = captured.Routing.Load.DetachFromDisposeScope();
        backwardGraph = forwardGraph.Sharing();
        gradients = backwardGraph.Capture(() => Gradients(output, auxLoss)).Select(g => g.DetachFromDisposeScope()).ToArray();
    }

    /// <summary>The layer on the static input, with what a graph must keep of its routing (computed inside it).</summary>
    (Tensor Output, Tensor AuxLoss, (Tensor Chosen, Tensor Weights, Tensor Load) Routing) ForwardBody()
    {
        var statistics = new MoEStatistics();
        var previous = layer.Statistics;
        layer.Statistics = statistics;
        try
        {
            var y = layer.forward(input!);
            var table = statistics.Reports[0].Table;
            return (y, table.AuxLoss, (table.Experts, table.Weights, table.Load));
        }
        finally
        {
            layer.Statistics = previous;
        }
    }

    /// <summary>Gradients of the input and of every parameter (autograd.grad: nothing is accumulated into .grad).</summary>
    IList<Tensor> Gradients(Tensor y, Tensor aux) =>
        torch.autograd.grad([y, aux], parameters.Prepend(input!).ToArray(), [outputGrad!, auxGrad!]);

    static void Unalias(Parameter parameter, Tensor computed)
    {
        using var existing = parameter.grad;
        if (existing is not null && Aliases(existing, computed)) parameter.grad = existing.clone();
    }

    static void Accumulate(Parameter parameter, Tensor computed)
    {
        using var existing = parameter.grad;
        if (existing is null)
        {
            using var alias = computed.detach();
            parameter.grad = alias;
        }
        else
        {
            existing.add_(computed);
        }
    }

    static bool Aliases(Tensor a, Tensor b) => TensorPointer.Of(a, "a gradient") == TensorPointer.Of(b, "a gradient");

    static InvalidOperationException NotRun() => new("the graphed MoE layer has not run a forward yet");

    public void Dispose()
    {
        backwardGraph?.Dispose();
        forwardGraph?.Dispose();
        eagerPending?.Output.Dispose();
        eagerPending?.AuxLoss.Dispose();
        foreach (var t in new[] { input, output, auxLoss, outputGrad, auxGrad, chosen, weights, load }) t?.Dispose();
        if (gradients is not null) foreach (var g in gradients) g.Dispose();
    }
}
