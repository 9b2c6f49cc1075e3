using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Comm;

/// <summary>
/// DeepSpeed-MoE's hierarchical all-to-all (§5.3) over N nodes of n ranks: a layout transform that groups the
/// chunks by the destination's local index, an all-to-all inside the node, a second transform that groups them
/// by destination node, and an all-to-all among the ranks with the same local index. Each rank then talks to
/// n − 1 + N − 1 peers instead of N·n − 1, and the result is exactly the flat all-to-all's: chunks ordered by
/// source rank (source = node · n + local index).
/// </summary>
public sealed class HierarchicalTokenExchange : ITokenExchange
{
    readonly ICommunicator node;
    readonly ICommunicator crossNode;
    readonly FlatTokenExchange flat;

    /// <param name="node">The ranks of this node (local index = rank there).</param>
    /// <param name="crossNode">The ranks with this rank's local index on every node (node index = rank there).</param>
    /// <param name="group">The whole group, for exchanges with chunks of different sizes.</param>
    public HierarchicalTokenExchange(ICommunicator node, ICommunicator crossNode, ICommunicator group)
    {
        this.node = node;
        this.crossNode = crossNode;
        flat = new FlatTokenExchange(group);
    }

    public int Size => node.Size * crossNode.Size;

    public string Describe() => $"hierarchical {crossNode.Size} nodes × {node.Size}";

    public Tensor Exchange(Tensor rows)
    {
        int local = node.Size, nodes = crossNode.Size;
        long chunk = rows.shape[0] / Size, width = rows.numel() / rows.shape[0];
        // [destination node, destination local, chunk] → [destination local, destination node, chunk]
        var byLocal = rows.reshape(nodes, local, chunk * width).transpose(0, 1).contiguous();
        var inNode = torch.empty_like(byLocal);
        node.AllToAll(byLocal.view(local * nodes, chunk * width), inNode.view(local * nodes, chunk * width));
        // received [source local, destination node, chunk] → [destination node, source local, chunk]
        var byNode = inNode.transpose(0, 1).contiguous();
        var across = torch.empty_like(byNode);
        crossNode.AllToAll(byNode.view(nodes * local, chunk * width), across.view(nodes * local, chunk * width));
        // received [source node, source local, chunk]: source rank order, as the flat exchange gives.
        return across.view(rows.shape);
    }

    /// <summary>
    /// Chunks of different sizes go in one flat step: regrouping them by node would need every pair's counts on
    /// the relaying rank, a second exchange that costs what the hierarchy saves at the sizes dropless routing has.
    /// </summary>
    public Tensor Exchange(Tensor rows, long[] sendRows, long[] receiveRows) => flat.Exchange(rows, sendRows, receiveRows);
}
