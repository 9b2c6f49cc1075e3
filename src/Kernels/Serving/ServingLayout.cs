using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Config;

namespace Orleans.MoE.Kernels.Serving;

/// <summary>
/// How one serving replica spreads a model over its p = L × G ranks (DeepSpeed-MoE §5): tensor slicing of degree L
/// over consecutive ranks (the GPUs of one node, where the per-layer all-reduces are cheap) for attention and dense
/// MLPs, and expert parallelism of degree G across those groups for the experts. Rank r is tensor-slicing rank
/// t = r mod L of expert-parallel rank g = r / L; the ranks with the same t form an expert-parallel group.
/// </summary>
public sealed record ServingLayout(int TensorSlicing, int ExpertParallel)
{
    /// <summary>
    /// Each tensor-slicing rank routes 1/L of the tokens and the outputs are all-gathered (true), or every rank
    /// routes all of them (false, the uncoordinated baseline).
    /// </summary>
    public bool CoordinatedAllToAll { get; init; } = true;

    /// <summary>Relay the expert exchange through nodes of <see cref="NodeSize"/> ranks when the group spans several.</summary>
    public bool HierarchicalAllToAll { get; init; }

    /// <summary>Ranks per node (0: the replica is one node).</summary>
    public int NodeSize { get; init; }

    /// <summary>Pad dropless expert buffers to equal chunks on the flat exchange too (the hierarchical one always does).</summary>
    public bool EqualChunks { get; init; }

    public int WorldSize => TensorSlicing * ExpertParallel;

    public int TensorRank(int rank) => rank % TensorSlicing;

    public int ExpertRank(int rank) => rank / TensorSlicing;

    /// <summary>Ranks of one expert-parallel group on a node: a node holds NodeSize / L tensor-slicing groups.</summary>
    public int ExpertRanksPerNode => NodeSize > 0 ? NodeSize / TensorSlicing : ExpertParallel;

    /// <summary>Whether the expert exchange goes in two steps: only when the expert-parallel group spans nodes.</summary>
    public bool UsesHierarchy =>
        HierarchicalAllToAll && ExpertParallel > ExpertRanksPerNode && ExpertParallel % ExpertRanksPerNode == 0;

    /// <summary>Whether dropless buffers are padded to the group's largest load before they are exchanged.</summary>
    public bool PadsExpertBuffers => ExpertParallel > 1 && (EqualChunks || UsesHierarchy);

    /// <summary>
    /// The experts expert-parallel rank <paramref name="expertRank"/> holds of a layer with E experts: E / G whole
    /// experts, or, with more ranks than experts, slice g mod (G / E) of expert g / (G / E) (expert slicing).
    /// </summary>
    public ExpertShard ShardOf(int expertRank, int experts)
    {
        if (experts >= ExpertParallel)
        {
            int perRank = experts / ExpertParallel;
            return new ExpertShard(expertRank * perRank, perRank, experts);
        }
        int slices = ExpertParallel / experts;
        return new ExpertShard(expertRank / slices, 1, experts, expertRank % slices, slices);
    }

    /// <summary>Throws ArgumentException naming what does not fit when the model cannot be served in this layout.</summary>
    public void Validate(ModelConfig model, MoEConfig moe)
    {
        int l = TensorSlicing, g = ExpertParallel;
        if (l < 1) throw new ArgumentException($"tensor_slicing = {l} must be at least 1");
        if (g < 1) throw new ArgumentException($"expert_parallel = {g} must be at least 1");
        if (model.Heads % l != 0) throw new ArgumentException($"tensor_slicing = {l} does not divide model.heads = {model.Heads}");
        if (model.DModel % l != 0) throw new ArgumentException($"tensor_slicing = {l} does not divide model.d_model = {model.DModel}");
        if (model.DFf % l != 0) throw new ArgumentException($"tensor_slicing = {l} does not divide model.d_ff = {model.DFf}");
        if (HierarchicalAllToAll && NodeSize > 0 && NodeSize % l != 0)
            throw new ArgumentException($"a node's {NodeSize} ranks do not hold whole tensor-slicing groups of {l}");
        int expertFfn = moe.ExpertFfn > 0 ? moe.ExpertFfn : model.DFf;
        foreach (int experts in moe.Experts.ForLayers(moe.Layers.Resolve(model.Layers).Count).Distinct())
        {
            if (experts >= g && experts % g != 0)
                throw new ArgumentException($"expert_parallel = {g} does not divide a layer's {experts} experts");
            if (experts < g && g % experts != 0)
                throw new ArgumentException($"a layer's {experts} experts do not divide expert_parallel = {g}, so they cannot be sliced evenly over it");
            if (experts < g && expertFfn % (g / experts) != 0)
                throw new ArgumentException($"expert slicing splits an expert's {expertFfn} hidden units into {g / experts}, which does not divide them");
        }
    }
}
