namespace Orleans.MoE.Kernels.Comm;

/// <summary>Thrown on every rank of a group once one rank has failed or aborted it.</summary>
public sealed class CommunicatorAbortedException(string message, Exception? cause = null) : Exception(message, cause);
