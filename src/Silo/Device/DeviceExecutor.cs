using System.Diagnostics;
using System.Threading.Channels;

namespace Orleans.MoE.Silo.Device;

/// <summary>
/// The one long-lived thread that runs every tensor call for this silo's device. TorchSharp dispose scopes and the
/// CUDA current device are per thread, and grain turns hop threads; so grains hand work over through a channel
/// and await its completion, and the device sees one caller, in order.
/// </summary>
public sealed class DeviceExecutor : IDisposable
{
    readonly Channel<WorkItem> queue = Channel.CreateUnbounded<WorkItem>(new UnboundedChannelOptions { SingleReader = true });
    readonly Thread thread;
    long busyTicks;
    int queued;

    public DeviceExecutor(string device)
    {
        Device = device;
        thread = new Thread(Loop) { IsBackground = true, Name = $"device-executor {device}" };
        thread.Start();
    }

    public string Device { get; }

    /// <summary>Stopwatch ticks spent running work so far (utilisation = its growth over wall time).</summary>
    public long BusyTicks => Interlocked.Read(ref busyTicks);

    /// <summary>Work items waiting or running.</summary>
    public int Queued => Volatile.Read(ref queued);

    /// <summary>Runs <paramref name="work"/> on the device thread; the task completes off that thread.</summary>
    public Task<T> RunAsync<T>(Func<T> work, CancellationToken cancellation = default)
    {
        var item = new WorkItem<T>(work, cancellation);
        Interlocked.Increment(ref queued);
        if (!queue.Writer.TryWrite(item))
        {
            Interlocked.Decrement(ref queued);
            throw new ObjectDisposedException(nameof(DeviceExecutor), $"the device executor for {Device} has stopped");
        }
        return item.Task;
    }

    public Task RunAsync(Action work, CancellationToken cancellation = default) => RunAsync<bool>(() =>
    {
        work();
        return true;
    }, cancellation);

    void Loop()
    {
        var reader = queue.Reader;
        // Blocking here is the point: this thread exists only to run device work.
        while (reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
        {
            while (reader.TryRead(out var item))
            {
                long start = Stopwatch.GetTimestamp();
                item.Execute();
                Interlocked.Add(ref busyTicks, Stopwatch.GetTimestamp() - start);
                Interlocked.Decrement(ref queued);
            }
        }
    }

    /// <summary>Stops taking work; what is queued still runs.</summary>
    public void Dispose()
    {
        queue.Writer.TryComplete();
        if (Thread.CurrentThread != thread) thread.Join(TimeSpan.FromSeconds(30));
    }

    abstract class WorkItem
    {
        public abstract void Execute();
    }

    sealed class WorkItem<T>(Func<T> work, CancellationToken cancellation) : WorkItem
    {
        // Continuations must not run on the device thread: they belong to grain turns.
        readonly TaskCompletionSource<T> completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task<T> Task => completion.Task;

        public override void Execute()
        {
            if (cancellation.IsCancellationRequested)
            {
                completion.TrySetCanceled(cancellation);
                return;
            }
            try
            {
                completion.TrySetResult(work());
            }
            catch (Exception e)
            {
                completion.TrySetException(e);
            }
        }
    }
}
