namespace Orleans.MoE.Kernels.Config;

/// <summary>Rejects a config before any work starts, naming the field and the allowed values.</summary>
public static class ConfigValidator
{
    public static void Validate(JobConfig c)
    {
        var m = c.Model;
        Positive("model.layers", m.Layers);
        Positive("model.d_model", m.DModel);
        Positive("model.heads", m.Heads);
        Positive("model.d_ff", m.DFf);
        Positive("model.context_length", m.ContextLength);
        if (m.DModel % m.Heads != 0)
            throw new ConfigException("model.heads", $"{m.Heads} does not divide model.d_model = {m.DModel}");
        if (m.Positions == "rotary" && (m.DModel / m.Heads) % 2 != 0)
            throw new ConfigException("model.positions", "rotary needs an even head width (d_model / heads)");
        OneOf("model.positions", m.Positions, ModelConfig.PositionKinds);
        OneOf("model.tokenizer", m.Tokenizer, ["byte", "gpt2"]);
        if (m.Dropout is < 0 or >= 1) throw new ConfigException("model.dropout", $"{m.Dropout} is not in [0, 1)");

        var moe = c.Moe;
        var layers = moe.Layers.Resolve(m.Layers);
        foreach (int l in layers)
            if (l < 0 || l >= m.Layers) throw new ConfigException("moe.layers", $"layer {l} is outside 0..{m.Layers - 1}");
        if (layers.Distinct().Count() != layers.Count) throw new ConfigException("moe.layers", "lists a layer twice");
        var counts = moe.Experts.ForLayers(layers.Count);
        foreach (int e in counts)
            if (e < 1) throw new ConfigException("moe.experts", $"{e} experts: each MoE layer needs at least 1");
        if (moe.TopK < 1 || (counts.Count > 0 && moe.TopK > counts.Min()))
            throw new ConfigException("moe.top_k", $"{moe.TopK} must be between 1 and the smallest expert count ({(counts.Count > 0 ? counts.Min() : 0)})");
        if (moe.ExpertFfn < 0) throw new ConfigException("moe.expert_ffn", "must be 0 (= model.d_ff) or positive");
        if (moe.CapacityFactor <= 0) throw new ConfigException("moe.capacity_factor", "must be > 0");
        if (moe.EvalCapacityFactor <= 0) throw new ConfigException("moe.eval_capacity_factor", "must be > 0");
        if (moe.MinCapacity < 0) throw new ConfigException("moe.min_capacity", "must be ≥ 0");
        if (moe.CapacityAlignment < 1) throw new ConfigException("moe.capacity_alignment", "must be ≥ 1 (1 = exact capacity)");
        OneOf("moe.noisy_gate_policy", moe.NoisyGatePolicy, MoEConfig.NoisePolicies);
        OneOf("moe.router_dtype", moe.RouterDtype, MoEConfig.RouterDtypes);
        if (moe.JitterEpsilon is < 0 or >= 1) throw new ConfigException("moe.jitter_epsilon", "must be in [0, 1)");
        if (moe.AuxLossCoef < 0) throw new ConfigException("moe.aux_loss_coef", "must be ≥ 0");
        if (moe.ZLossCoef < 0) throw new ConfigException("moe.z_loss_coef", "must be ≥ 0");
        if (moe.RoutingGroupTokens < 0) throw new ConfigException("moe.routing_group_tokens", "must be 0 (one micro-batch) or positive");

        if (c.Parallel.ExpertParallel < 0) throw new ConfigException("parallel.expert_parallel", "must be 0 (as large as possible) or positive");
        if (c.Parallel.NodeSize < 0) throw new ConfigException("parallel.node_size", "must be 0 (from the ranks) or positive");

        var t = c.Training;
        Positive("training.steps", t.Steps);
        Positive("training.batch_size", t.BatchSize);
        if (t.MicroBatchSize < 0 || (t.MicroBatchSize > 0 && t.BatchSize % t.MicroBatchSize != 0))
            throw new ConfigException("training.micro_batch_size", $"{t.MicroBatchSize} must be 0 or divide training.batch_size = {t.BatchSize}");
        int micro = t.MicroBatchSize == 0 ? t.BatchSize : t.MicroBatchSize;
        if (moe.RoutingGroupTokens > 0 && (micro * m.ContextLength) % moe.RoutingGroupTokens != 0)
            throw new ConfigException("moe.routing_group_tokens", $"{moe.RoutingGroupTokens} must divide the tokens of a micro-batch ({micro * m.ContextLength})");
        if (t.LearningRate <= 0) throw new ConfigException("training.learning_rate", "must be > 0");
        if (t.MinLearningRate < 0 || t.MinLearningRate > t.LearningRate)
            throw new ConfigException("training.min_learning_rate", "must be in [0, training.learning_rate]");
        if (t.WarmupSteps < 0) throw new ConfigException("training.warmup_steps", "must be ≥ 0");
        if (t.Beta1 is < 0 or >= 1) throw new ConfigException("training.beta1", "must be in [0, 1)");
        if (t.Beta2 is < 0 or >= 1) throw new ConfigException("training.beta2", "must be in [0, 1)");
        if (t.GradClip < 0) throw new ConfigException("training.grad_clip", "must be ≥ 0 (0 = off)");
        if (t.EvalInterval < 0) throw new ConfigException("training.eval_interval", "must be ≥ 0");
        if (t.EvalTokens < 0) throw new ConfigException("training.eval_tokens", "must be ≥ 0");
        if (t.CheckpointInterval < 0) throw new ConfigException("training.checkpoint_interval", "must be ≥ 0");
        OneOf("training.precision", t.Precision, TrainingConfig.Precisions);

        if (c.Distillation is { } kd)
        {
            if (string.IsNullOrWhiteSpace(kd.TeacherCheckpoint)) throw new ConfigException("distillation.teacher_checkpoint", "is required");
            if (kd.Alpha < 0) throw new ConfigException("distillation.alpha", "must be ≥ 0");
            if (kd.Temperature <= 0) throw new ConfigException("distillation.temperature", "must be > 0");
            if (kd.KdStopStep < 0) throw new ConfigException("distillation.kd_stop_step", "must be ≥ 0 (0 = distil to the end)");
            if (kd.StudentLayers.Count > 0 && kd.StudentLayers.Count != m.Layers)
                throw new ConfigException("distillation.student_layers", $"lists {kd.StudentLayers.Count} teacher layers for a {m.Layers}-layer student");
        }
        OneOf("data.source", c.Data.Source, DataConfig.Sources);
        if (c.Data.Source == "files" && string.IsNullOrWhiteSpace(c.Data.TrainFile))
            throw new ConfigException("data.train_file", "is required when data.source is \"files\"");
        OneOf("device", c.Device.StartsWith("cuda:", StringComparison.Ordinal) ? "cuda" : c.Device, ["auto", "cpu", "cuda"]);
    }

    static void Positive(string field, int value)
    {
        if (value <= 0) throw new ConfigException(field, $"{value} must be a positive integer");
    }

    static void OneOf(string field, string value, IReadOnlyList<string> allowed)
    {
        if (!allowed.Contains(value))
            throw new ConfigException(field, $"'{value}' is not one of: {string.Join(", ", allowed)}");
    }
}
