namespace Orleans.MoE.Kernels.Generation;

/// <summary>How a model in this process runs decode steps (prefills always run as issued).</summary>
public enum DecodeMode
{
    /// <summary>Each step as issued: dropless experts packed by their loads, which are read back once per MoE layer.</summary>
    Eager,

    /// <summary>
    /// Steps of a few fixed shapes (the first R slots, a window of W positions; R and W powers of two) that read
    /// nothing back to the host, run eagerly.
    /// </summary>
    FixedShapes,

    /// <summary>
    /// Fixed shapes, each captured once as a CUDA graph and then replayed as one launch; on a CPU, or where the graph
    /// helper cannot be built, the same steps run eagerly.
    /// </summary>
    Graphs,
}
