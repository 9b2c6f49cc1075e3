namespace Orleans.MoE.Grains.Contracts;

/// <summary>What a job phase does. Phases are data: a job is a list of them, run in order.</summary>
[GenerateSerializer]
public enum PhaseKind
{
    /// <summary>Train the model on its own loss.</summary>
    Train = 0,

    /// <summary>Mixture-of-Students: the student's loss plus a knowledge-distillation term from a teacher.</summary>
    DistilWithKd = 1,

    /// <summary>Staged KD's second stage: the KD term is off and the teacher is no longer run.</summary>
    DistilWithoutKd = 2,

    /// <summary>Score the validation split and write the final checkpoint.</summary>
    Evaluate = 3,
}
