using System.CommandLine;
using Orleans.MoE.Client.Cluster;
using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Kernels.Config;

namespace Orleans.MoE.Client.Commands;

/// <summary>
/// <c>moe distill TEACHER_CHECKPOINT STUDENT_CONFIG</c>: a Mixture-of-Students job — the config's model is the
/// student, trained with the KD term from the teacher until <c>--kd-stop</c>, then on its own loss.
/// </summary>
internal static class DistillCommand
{
    public static Command Create()
    {
        var teacher = new Argument<string>("teacher") { Description = "The teacher's checkpoint folder" };
        var config = new Argument<string>("student-config") { Description = "Job config whose model is the student" };
        var kdStop = new Option<int?>("--kd-stop") { Description = "Step at which the KD term (and the teacher) stops; 0 = distil to the end" };
        var steps = new Option<int?>("--steps") { Description = "Total optimiser steps (overrides training.steps)" };
        var output = new Option<string?>("--out") { Description = "Output folder (default runs/NAME)" };
        var device = CommonOptions.Device();
        var json = CommonOptions.Json();
        var cluster = new ClusterOptions();
        var command = new Command("distill", "Distil a teacher checkpoint into the student a config describes (staged KD)") { teacher, config, kdStop, steps, output, device, json };
        cluster.AddTo(command);
        command.SetAction((parse, cancellation) => CommandRunner.RunAsync(parse.GetValue(json), async () =>
        {
            var job = JobConfig.Load(parse.GetValue(config)!);
            if (parse.GetValue(steps) is { } s) job = job with { Training = job.Training with { Steps = s } };
            var kd = (job.Distillation ?? new DistillationConfig()) with { TeacherCheckpoint = Path.GetFullPath(parse.GetValue(teacher)!) };
            if (parse.GetValue(kdStop) is { } stop) kd = kd with { KdStopStep = stop };
            job = job with { Distillation = kd };
            ConfigValidator.Validate(job);
            var submission = new JobSubmission
            {
                ConfigJson = job.ToJson(),
                OutputDirectory = Path.GetFullPath(parse.GetValue(output) ?? Paths.RunDirectory(job.Name)),
                Device = parse.GetValue(device),
            };
            await using var connection = await ClusterConnection.ConnectOrEmbedAsync(cluster.Read(parse), 1, cancellation);
            return await TrainCommand.Train(connection, job, submission, parse.GetValue(json));
        }));
        return command;
    }
}
