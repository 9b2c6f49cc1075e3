using System.CommandLine;
using System.Text.Json;
using Orleans.MoE.Client.Cluster;
using Orleans.MoE.Client.Display;
using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Kernels.Config;

namespace Orleans.MoE.Client.Commands;

/// <summary><c>moe submit CONFIG</c>: queues a job on the running cluster and prints its id.</summary>
internal static class SubmitCommand
{
    public static Command Create()
    {
        var config = new Argument<string>("config") { Description = "Job config (JSON)" };
        var steps = new Option<int?>("--steps") { Description = "Total optimiser steps (overrides training.steps)" };
        var stopAfter = new Option<long?>("--stop-after") { Description = "Stop (and checkpoint) after this many steps" };
        var output = new Option<string?>("--out") { Description = "Output folder on the silo's machine (default runs/NAME)" };
        var resume = new Option<string?>("--resume") { Description = "Checkpoint folder to continue from" };
        var chunk = new Option<int>("--chunk-steps") { Description = "Steps per chunk (0 = about a second of device time)" };
        var ranks = CommonOptions.Ranks();
        var scaling = new Option<string>("--scaling") { Description = "When silos join: fixed (keep the ranks), grow, or grow:N (up to N ranks)", DefaultValueFactory = _ => "fixed" };
        var handoff = new Option<string>("--handoff") { Description = "How a job that grows moves its state to the new ranks: data-plane (from the ranks' memory; the default) or checkpoint (through a checkpoint on a shared filesystem)", DefaultValueFactory = _ => "data-plane" };
        var onLoss = new Option<string>("--on-loss") { Description = "After a lost silo and the rollback: shrink (re-plan on the silos left) or wait (for a replacement)", DefaultValueFactory = _ => "shrink" };
        var json = CommonOptions.Json();
        var cluster = new ClusterOptions();
        var command = new Command("submit", "Submit a job to the running cluster; prints the job id") { config, steps, stopAfter, output, resume, chunk, ranks, scaling, onLoss, handoff, json };
        cluster.AddTo(command);
        command.SetAction((parse, cancellation) => CommandRunner.RunAsync(parse.GetValue(json), async () =>
        {
            var job = JobConfig.Load(parse.GetValue(config)!);
            if (parse.GetValue(steps) is { } s) job = job with { Training = job.Training with { Steps = s } };
            await using var connection = await ClusterConnection.ConnectAsync(cluster.Read(parse), cancellation);
            string id = await connection.Grains.GetGrain<IClusterGrain>(IClusterGrain.Key).Submit(new JobSubmission
            {
                Replicas = parse.GetValue(ranks),
                ConfigJson = job.ToJson(),
                OutputDirectory = Path.GetFullPath(parse.GetValue(output) ?? Paths.RunDirectory(job.Name)),
                ResumeFrom = parse.GetValue(resume) is { } r ? Path.GetFullPath(r) : null,
                StopAfter = parse.GetValue(stopAfter),
                ChunkSteps = parse.GetValue(chunk),
                Scaling = ScalingPolicy.Parse(parse.GetValue(scaling)!, parse.GetValue(onLoss)!, parse.GetValue(handoff)!),
            });
            Console.WriteLine(parse.GetValue(json) ? JsonSerializer.Serialize(new { job_id = id }, JsonOutput.Options) : id);
            return 0;
        }));
        return command;
    }
}
