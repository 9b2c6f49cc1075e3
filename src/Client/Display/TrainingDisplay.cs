using System.Globalization;
using System.Text.Json;
using Orleans.MoE.Kernels.Training;
using Spectre.Console;

namespace Orleans.MoE.Client.Display;

/// <summary>
/// Shows training progress: a live bar on a terminal, a line every few steps when output is redirected, or one
/// JSON object per step on stderr with --json (stdout keeps only the final result).
/// </summary>
internal sealed class TrainingDisplay(bool json) : IProgress<TrainingProgress>
{
    ProgressTask? task;
    long lastPrinted = -1;

    public static string Describe(StepMetrics m, long total, TimeSpan eta) => string.Create(CultureInfo.InvariantCulture,
        $"step {m.Step}/{total}  loss {m.Loss:F4}  aux {m.AuxLoss:F3}  {m.TokensPerSecond:N0} tok/s  balance {m.Balance:F2}  dropped {m.DroppedFraction:P1}{(m.CommunicationSeconds is { } c ? $"  comm {c / m.Seconds:P0}" : "")}  ETA {Eta(eta)}");

    static string Eta(TimeSpan t) => t.TotalHours >= 1 ? t.ToString(@"h\:mm\:ss", CultureInfo.InvariantCulture) : t.ToString(@"m\:ss", CultureInfo.InvariantCulture);

    /// <summary>Runs the body under a live progress bar when on a terminal (and not in JSON mode).</summary>
    public T Wrap<T>(long totalSteps, long startStep, Func<T> body)
    {
        if (json || !AnsiConsole.Profile.Capabilities.Interactive) return body();
        T result = default!;
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn())
            .Start(ctx =>
            {
                task = ctx.AddTask("starting", maxValue: totalSteps);
                task.Value = startStep;
                result = body();
            });
        return result;
    }

    /// <summary>As <see cref="Wrap{T}"/> for a body that awaits (the job runs elsewhere and streams its steps).</summary>
    public async Task WrapAsync(long totalSteps, long startStep, Func<Task> body)
    {
        if (json || !AnsiConsole.Profile.Capabilities.Interactive)
        {
            await body();
            return;
        }
        await AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn())
            .StartAsync(async ctx =>
            {
                task = ctx.AddTask("starting", maxValue: totalSteps);
                task.Value = startStep;
                await body();
            });
    }

    /// <summary>A line of context (not a step) above the progress.</summary>
    public void Note(string line)
    {
        if (json) return;
        if (task is not null) AnsiConsole.MarkupLine(Markup.Escape(line));
        else Console.WriteLine(line);
    }

    public void Report(TrainingProgress value)
    {
        if (value.Step is { } m)
        {
            if (json)
            {
                Console.Error.WriteLine(JsonSerializer.Serialize(new
                {
                    @event = "step",
                    step = m.Step,
                    total = value.TotalSteps,
                    loss = m.Loss,
                    aux_loss = m.AuxLoss,
                    lr = m.LearningRate,
                    grad_norm = m.GradNorm,
                    tokens_per_second = m.TokensPerSecond,
                    balance = m.Balance,
                    dropped = m.DroppedFraction,
                    communication_share = m.CommunicationSeconds / m.Seconds,
                    eta_seconds = value.Eta.TotalSeconds,
                }, JsonOutput.Options));
            }
            else if (task is not null)
            {
                task.Description = Markup.Escape(Describe(m, value.TotalSteps, value.Eta));
                task.Value = m.Step;
            }
            else if (m.Step == 1 || m.Step == value.TotalSteps || m.Step - lastPrinted >= Math.Max(1, value.TotalSteps / 20))
            {
                lastPrinted = m.Step;
                Console.WriteLine(Describe(m, value.TotalSteps, value.Eta));
            }
        }
        if (value.Validation is { } v)
        {
            string line = string.Create(CultureInfo.InvariantCulture, $"validation: loss {v.Loss:F4}  ppl {v.Perplexity:F2}  bits/byte {v.BitsPerByte:F4}");
            if (json) Console.Error.WriteLine(JsonSerializer.Serialize(new { @event = "validation", loss = v.Loss, bits_per_byte = v.BitsPerByte }, JsonOutput.Options));
            else if (task is not null) AnsiConsole.MarkupLine(Markup.Escape(line));
            else Console.WriteLine(line);
        }
        if (value.Checkpoint is { } c && !json)
        {
            if (task is not null) AnsiConsole.MarkupLine($"checkpoint: {Markup.Escape(c)}");
            else Console.WriteLine($"checkpoint: {c}");
        }
    }
}
