namespace Orleans.MoE.Kernels.Data;

/// <summary>One document of a corpus: its id (a Brown file name or a path), genre letter and plain text.</summary>
/// <param name="Id">Stable identifier, e.g. "ca01".</param>
/// <param name="Genre">Brown genre letter a..r; '-' for texts that have none.</param>
/// <param name="Text">Plain text, paragraphs separated by "\n".</param>
public sealed record CorpusText(string Id, char Genre, string Text);
