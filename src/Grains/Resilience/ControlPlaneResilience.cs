using Orleans.Runtime;
using Orleans.Storage;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using Polly.Timeout;

namespace Orleans.MoE.Grains.Resilience;

/// <summary>
/// The Polly pipelines the control plane wraps around calls that can fail transiently. Only idempotent calls go
/// through a retrying pipeline: grain calls here are idempotent by (job, generation, step) by design.
/// </summary>
public sealed class ControlPlaneResilience
{
    public ControlPlaneResilience(ControlPlaneResilienceOptions? options = null)
    {
        var o = options ?? new ControlPlaneResilienceOptions();
        GrainCalls = new ResiliencePipelineBuilder()
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<TimeoutException>().Handle<TimeoutRejectedException>()
                    .Handle<SiloUnavailableException>().Handle<OrleansMessageRejectionException>(),
                MaxRetryAttempts = o.Retries,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = o.RetryDelay,
            })
            .AddTimeout(o.GrainCallTimeout)
            .Build();
        DataPlaneStart = new ResiliencePipelineBuilder()
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<TimeoutException>().Handle<TimeoutRejectedException>()
                    .Handle<SiloUnavailableException>().Handle<OrleansMessageRejectionException>(),
                MaxRetryAttempts = Math.Min(o.Retries, 2),
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = o.RetryDelay,
            })
            .AddTimeout(o.DataPlaneStartTimeout)
            .Build();
        Storage = new ResiliencePipelineBuilder()
            .AddRetry(new RetryStrategyOptions
            {
                // An etag conflict is not transient: another activation wrote the state; retrying would hide it.
                ShouldHandle = new PredicateBuilder().Handle<Exception>(e => IsTransientStorageFailure(e)),
                MaxRetryAttempts = o.Retries,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = o.RetryDelay,
            })
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<Exception>(e => IsTransientStorageFailure(e)),
                FailureRatio = 0.5,
                MinimumThroughput = 4,
                SamplingDuration = TimeSpan.FromSeconds(30),
                BreakDuration = o.StorageBreakDuration,
            })
            .AddTimeout(o.StorageTimeout)
            .Build();
    }

    /// <summary>Idempotent grain calls to other silos: timeout, then retries with jittered exponential back-off.</summary>
    public ResiliencePipeline GrainCalls { get; }

    /// <summary>Starting a replica's session on its device (loads data, builds the model): a long timeout, few retries.</summary>
    public ResiliencePipeline DataPlaneStart { get; }

    /// <summary>Grain-state and checkpoint storage: retries, and a circuit breaker so a down database is not hammered.</summary>
    public ResiliencePipeline Storage { get; }

    static bool IsTransientStorageFailure(Exception e) =>
        e is not InconsistentStateException
        && (e is TimeoutException or TimeoutRejectedException or IOException or OrleansException
            // The ADO.NET storage surfaces the driver's exceptions; the Grains project does not reference Npgsql.
            || e.GetType().Name is "NpgsqlException" or "PostgresException");
}

/// <summary>Timeouts and retry counts of <see cref="ControlPlaneResilience"/>.</summary>
public sealed record ControlPlaneResilienceOptions
{
    public TimeSpan GrainCallTimeout { get; init; } = TimeSpan.FromSeconds(20);
    public TimeSpan DataPlaneStartTimeout { get; init; } = TimeSpan.FromMinutes(5);
    public TimeSpan StorageTimeout { get; init; } = TimeSpan.FromSeconds(15);
    public TimeSpan StorageBreakDuration { get; init; } = TimeSpan.FromSeconds(10);
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromMilliseconds(200);
    public int Retries { get; init; } = 3;
}
