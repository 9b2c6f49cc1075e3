namespace Orleans.MoE.Kernels.Data;

/// <summary>A corpus divided into training, validation and test texts.</summary>
public sealed record CorpusSplits(
    IReadOnlyList<CorpusText> Train,
    IReadOnlyList<CorpusText> Validation,
    IReadOnlyList<CorpusText> Test);
