namespace Orleans.MoE.Kernels.Training;

/// <summary>A step finished (with the estimated time left) or an evaluation ran; what progress displays show.</summary>
public sealed record TrainingProgress(StepMetrics? Step, long TotalSteps, TimeSpan Eta, EvaluationResult? Validation, string? Checkpoint);
