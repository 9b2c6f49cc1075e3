namespace Orleans.MoE.Kernels.Config;

/// <summary>
/// Staged knowledge distillation (Mixture-of-Students): the job's model is the student, trained on
/// CE + α·T²·KL(teacher/T ‖ student/T) until <see cref="KdStopStep"/>, then on CE alone without running the teacher.
/// </summary>
public sealed record DistillationConfig
{
    /// <summary>Checkpoint folder of the teacher (any model with the same tokenizer).</summary>
    public string TeacherCheckpoint { get; init; } = "";

    public double Alpha { get; init; } = 1.0;
    public double Temperature { get; init; } = 1.0;

    /// <summary>The step at which the KD term is switched off (0 = distil to the end).</summary>
    public int KdStopStep { get; init; }

    /// <summary>Teacher layer copied into each student layer (empty = do not initialise from the teacher).</summary>
    public IReadOnlyList<int> StudentLayers { get; init; } = [];
}
