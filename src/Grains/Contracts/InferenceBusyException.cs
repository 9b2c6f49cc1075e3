namespace Orleans.MoE.Grains.Contracts;

/// <summary>Every replica's queue is full: the request was not taken (retry later), nothing was dropped silently.</summary>
[GenerateSerializer]
public sealed class InferenceBusyException : Exception
{
    public InferenceBusyException() { }

    public InferenceBusyException(string message) : base(message) { }

    public InferenceBusyException(string message, Exception inner) : base(message, inner) { }
}
