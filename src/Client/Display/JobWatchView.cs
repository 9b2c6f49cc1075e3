using System.Globalization;
using Orleans.MoE.Grains.Contracts;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Orleans.MoE.Client.Display;

/// <summary>The live table <c>moe watch</c> shows: a job's phase, step, loss, tokens/s, ETA and expert balance.</summary>
internal sealed class JobWatchView(string jobId)
{
    JobStatus status;
    PhaseKind? phase;
    StepReport? last;
    string? message;

    public void Apply(JobEvent e)
    {
        status = e.Status;
        phase = e.Phase ?? phase;
        if (e.Step is { } s) last = s;
        if (e.Message is { } m) message = m;
    }

    public IRenderable Render()
    {
        var table = new Table().Title(Markup.Escape(jobId)).AddColumns("", "");
        table.AddRow("status", $"{status}{(phase is { } p ? $" ({p})" : "")}");
        if (last is { } s)
        {
            table.AddRow("step", $"{s.Step}/{s.TotalSteps}");
            table.AddRow("loss", s.Loss.ToString("F4", CultureInfo.InvariantCulture));
            table.AddRow("tokens/s", s.TokensPerSecond.ToString("N0", CultureInfo.InvariantCulture));
            table.AddRow("ETA", TimeSpan.FromSeconds(s.EtaSeconds).ToString(@"h\:mm\:ss", CultureInfo.InvariantCulture));
            table.AddRow("expert balance", s.Balance.ToString("F2", CultureInfo.InvariantCulture));
            table.AddRow("dropped tokens", s.DroppedFraction.ToString("P1", CultureInfo.InvariantCulture));
            table.AddRow("silo", Markup.Escape(s.Silo));
        }
        if (message is not null) table.AddRow("note", Markup.Escape(message));
        return table;
    }
}
