namespace Orleans.MoE.Client.Commands;

/// <summary>Keeps a foreground command (a cluster, a server) running until Ctrl+C, SIGTERM or cancellation.</summary>
internal static class ForegroundWait
{
    public static async Task UntilStopped(CancellationToken cancellation)
    {
        var stopped = new TaskCompletionSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            stopped.TrySetResult();
        };
        using var registration = cancellation.Register(() => stopped.TrySetResult());
        // `kill` (SIGTERM) stops as cleanly as Ctrl+C does.
        using var terminate = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            stopped.TrySetResult();
        });
        await stopped.Task;
    }
}
