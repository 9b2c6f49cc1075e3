using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Config;
using Orleans.MoE.Kernels.Layers;
using Orleans.MoE.Kernels.Routing;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Model;

/// <summary>
/// GPT-style decoder whose feed-forward blocks are dense, MoE or residual MoE per layer (a PR-MoE when the
/// expert counts grow with depth and the MoE layers are residual). Read top to bottom in <see cref="Forward"/>.
/// </summary>
public sealed class GptModel : nn.Module<Tensor, Tensor>
{
    readonly Parameter wte;
    readonly Parameter? wpe;
    readonly ModuleList<DecoderBlock> blocks;
    readonly CastLayerNorm lnF;
    readonly Parameter? lmHead;

    /// <param name="init">Generator for the initial weights; null uses torch's global one.</param>
    /// <param name="expertShard">The experts this rank holds of a layer with the given expert count (null: all).</param>
    /// <param name="tensorSlice">Serving with tensor slicing: this rank's share of every attention and dense MLP (null: whole).</param>
    public GptModel(ModelConfig model, MoEConfig moe, int vocabSize, Generator? init = null, Func<int, ExpertShard>? expertShard = null, TensorSlice? tensorSlice = null) : base("gpt")
    {
        Config = model;
        MoeConfig = moe;
        VocabSize = vocabSize;
        double outputStd = 0.02 / Math.Sqrt(2.0 * model.Layers);
        var moeLayers = moe.Layers.Resolve(model.Layers);
        var expertCounts = moe.Experts.ForLayers(moeLayers.Count);
        int expertFfn = moe.ExpertFfn > 0 ? moe.ExpertFfn : model.DFf;

        wte = nn.Parameter(torch.empty(vocabSize, model.DModel));
        ParameterInit.Normal(wte, 0.02, init);
        if (model.Positions == "learned")
        {
            wpe = nn.Parameter(torch.empty(model.ContextLength, model.DModel));
            ParameterInit.Normal(wpe, 0.01, init);
        }
        blocks = new ModuleList<DecoderBlock>();
        for (int i = 0; i < model.Layers; i++)
        {
            var attention = new CausalSelfAttention(model.DModel, model.Heads, model.Positions == "rotary", model.Dropout, outputStd, init, tensorSlice);
            int moeIndex = IndexOf(moeLayers, i);
            nn.Module<Tensor, Tensor> feedForward;
            if (moeIndex < 0)
            {
                feedForward = new DenseMlp(model.DModel, model.DFf, outputStd, init, tensorSlice);
            }
            else
            {
                var layer = new MoELayer(i, model.DModel, expertFfn, GateSettings.From(moe, expertCounts[moeIndex]), outputStd, moe.RoutingGroupTokens, init, expertShard?.Invoke(expertCounts[moeIndex]));
                feedForward = moe.Residual ? new ResidualMoE(layer, new DenseMlp(model.DModel, model.DFf, outputStd, init, tensorSlice), model.DModel, init) : layer;
            }
            blocks.Add(new DecoderBlock(i, attention, feedForward, model.DModel, model.Dropout));
        }
        lnF = new CastLayerNorm(model.DModel);
        if (!model.TieEmbeddings)
        {
            lmHead = nn.Parameter(torch.empty(vocabSize, model.DModel));
            ParameterInit.Normal(lmHead, 0.02, init);
        }
        RegisterComponents();
    }

    public ModelConfig Config { get; }
    public MoEConfig MoeConfig { get; }
    public int VocabSize { get; }

    /// <summary>Dtype of activations: fp32, or bf16 for mixed precision (weights stay fp32).</summary>
    public ScalarType ComputeType { get; set; } = ScalarType.Float32;

    public IEnumerable<DecoderBlock> Blocks => blocks;

    public IEnumerable<MoELayer> MoeLayers => blocks.Select(b => b.Moe).OfType<MoELayer>();

    /// <summary>Connects every MoE layer to its expert-parallel group (the model must hold this rank's shards).</summary>
    public void UseExpertParallelism(RankGroups ranks)
    {
        foreach (var layer in MoeLayers)
        {
            int experts = layer.Router.Settings.Experts;
            if (layer.Experts.Count != ranks.ShardOf(experts).Count || layer.Experts.FirstExpert != ranks.ShardOf(experts).First)
                throw new InvalidOperationException($"MoE layer {layer.LayerIndex} holds experts from {layer.Experts.FirstExpert} ({layer.Experts.Count}), not rank {ranks.Rank}'s shard");
            layer.Exchange = ranks.ExchangeFor(experts);
        }
    }

    /// <summary>
    /// Makes this an inference model: eval mode; routing that never drops a token and decides per token (with a
    /// capacity, which tokens drop depends on the other tokens in the call, so a request's output would change with
    /// what it is batched with, or with the padding rows a coordinated exchange adds); weights stored in the compute
    /// dtype (bf16 on a GPU: fp32 weights would be cast on every token, which at decode batch sizes costs more than the
    /// matmuls themselves).
    /// </summary>
    public void PrepareForInference()
    {
        eval();
        foreach (var layer in MoeLayers) layer.Router.NeverDrop = true;
        if (ComputeType != ScalarType.Float32) this.to(ComputeType);
    }

    public override Tensor forward(Tensor tokens) => Forward(tokens, RoutingContext.Inference, null, null);

    /// <summary>
    /// tokens [B, T] (int64) → logits [B, T, V] in fp32. With a cache the tokens follow each row's cached positions
    /// (rows may stand at different positions); without one they start at position 0.
    /// </summary>
    public Tensor Forward(Tensor tokens, RoutingContext routing, MoEStatistics? statistics, IKvCache? cache)
    {
        long t = tokens.shape[1];
        foreach (var moe in MoeLayers)
        {
            moe.Context = routing;
            moe.Statistics = statistics;
        }
        // Null without a cache: positions 0 … T−1, which attention builds only if it rotates (training needs none).
        var positions = cache?.Positions(t, tokens.device);
        var x = wte.index_select(0, tokens.flatten()).view(tokens.shape[0], t, -1).to_type(ComputeType);
        if (wpe is not null)
        {
            long end = cache?.End(t) ?? t;
            if (end > Config.ContextLength)
                throw new ArgumentException($"positions up to {end - 1} exceed model.context_length = {Config.ContextLength}");
            // Training (no cache) reads the table as one slice, whose backward is a plain copy rather than a scatter.
            var table = positions is null ? wpe.narrow(0, 0, t).unsqueeze(0) : wpe.index_select(0, positions.flatten()).view(positions.shape[0], t, -1);
            x = x + table.to_type(ComputeType);
        }
        if (training && Config.Dropout > 0) x = nn.functional.dropout(x, Config.Dropout, training);
        foreach (var block in blocks) x = block.Forward(x, cache, positions);
        cache?.Advance(t);
        x = lnF.forward(x);
        var head = (lmHead ?? wte).to_type(x.dtype);
        if (cache is null) return nn.functional.linear(x, head).to_type(ScalarType.Float32);
        // Inference: the logits as head · xᵀ. With a few rows, cuBLAS picks a GEMM with few thread blocks for x · headᵀ
        // (0.17 ms for 8 rows on an H200, measured); the vocabulary as the long side keeps the whole GPU busy.
        var rows = x.reshape(-1, x.shape[^1]);
        return head.matmul(rows.t()).t().to_type(ScalarType.Float32).view(tokens.shape[0], t, -1);
    }

    static int IndexOf(IReadOnlyList<int> list, int value)
    {
        for (int i = 0; i < list.Count; i++)
            if (list[i] == value) return i;
        return -1;
    }
}
