namespace Orleans.MoE.Grains.Contracts;

/// <summary>No replica could take the request, or the one running it was lost: the request may be retried as it was.</summary>
[GenerateSerializer]
public sealed class InferenceUnavailableException : Exception
{
    public InferenceUnavailableException() { }

    public InferenceUnavailableException(string message) : base(message) { }

    public InferenceUnavailableException(string message, Exception inner) : base(message, inner) { }
}
