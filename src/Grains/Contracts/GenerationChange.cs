namespace Orleans.MoE.Grains.Contracts;

/// <summary>
/// One change of a job's plan generation: why, from how many ranks to how many, and what it cost. The state came
/// from <see cref="Checkpoint"/> (null: the job's start), or, when <see cref="OverDataPlane"/>, from the previous
/// ranks over the data plane: <see cref="HandoffBytes"/> received by all ranks together, in
/// <see cref="HandoffSeconds"/> (the slowest rank).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record GenerationChange(
    [property: Id(0)] long Generation,
    [property: Id(1)] int FromRanks,
    [property: Id(2)] int ToRanks,
    [property: Id(3)] string Reason,
    [property: Id(4)] long ResumedAtStep,
    [property: Id(5)] long StepsRolledBack,
    [property: Id(6)] double SecondsUntilStepping,
    [property: Id(7)] string? Checkpoint,
    [property: Id(8)] bool OverDataPlane = false,
    [property: Id(9)] long HandoffBytes = 0,
    [property: Id(10)] double HandoffSeconds = 0);
