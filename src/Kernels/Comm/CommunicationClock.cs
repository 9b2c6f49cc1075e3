namespace Orleans.MoE.Kernels.Comm;

/// <summary>Seconds a rank has spent inside collectives since the clock was last read (see <see cref="TimedCommunicator"/>).</summary>
public sealed class CommunicationClock
{
    long ticks;

    public void Add(TimeSpan elapsed) => Interlocked.Add(ref ticks, elapsed.Ticks);

    /// <summary>The time gathered so far, and zero again.</summary>
    public TimeSpan Take() => TimeSpan.FromTicks(Interlocked.Exchange(ref ticks, 0));
}
