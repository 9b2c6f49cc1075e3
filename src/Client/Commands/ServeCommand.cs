using System.CommandLine;
using System.Text.Json;
using Orleans.MoE.Client.Cluster;
using Orleans.MoE.Client.Display;
using Orleans.MoE.Grains.Contracts;
using Spectre.Console;

namespace Orleans.MoE.Client.Commands;

/// <summary>
/// <c>moe serve CHECKPOINT</c>: deploys a checkpoint behind the OpenAI-style completions API. Without --on-cluster it
/// starts its own silos (L × G per replica, web servers from --http-port) and serves in the foreground until Ctrl+C;
/// with it, it deploys on the running cluster, waits until the replicas are loaded and returns.
/// </summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var checkpoint = new Argument<string>("checkpoint") { Description = "Checkpoint folder" };
        var name = new Option<string?>("--name") { Description = "Model name clients ask for (default: the checkpoint's job name)" };
        var replicas = new Option<int>("--replicas") { Description = "Data-parallel replicas, one silo each", DefaultValueFactory = _ => 1 };
        var maxReplicas = new Option<int>("--max-replicas") { Description = "Grow up to this many replicas as silos join (0 = stay at --replicas); lost replicas are replaced either way" };
        var tensorSlicing = new Option<int>("--tensor-slicing") { Description = "L: a replica's attention and dense MLPs split over L silos (GPUs of a node)", DefaultValueFactory = _ => 1 };
        var expertParallel = new Option<int>("--expert-parallel") { Description = "G: a replica's experts spread over G groups of L silos (a replica spans L × G silos)", DefaultValueFactory = _ => 1 };
        var hierarchical = new Option<bool>("--hierarchical") { Description = "Relay a replica's expert exchange through its nodes when its groups span several" };
        var maxBatch = new Option<int>("--max-batch") { Description = "Requests a replica decodes together", DefaultValueFactory = _ => 8 };
        var queueLimit = new Option<int>("--queue-limit") { Description = "Requests a replica holds waiting; more are answered 429 busy", DefaultValueFactory = _ => 32 };
        var port = new Option<int>("--http-port") { Description = "HTTP port of the first silo (others count up)", DefaultValueFactory = _ => 8080 };
        var token = new Option<string?>("--token") { Description = "Require this token (Authorization: Bearer …) for /v1, /dashboard and /moe" };
        var onCluster = new Option<bool>("--on-cluster") { Description = "Deploy on the running cluster (--gateway/--postgres) instead of starting silos" };
        var device = CommonOptions.Device();
        var json = CommonOptions.Json();
        var cluster = new ClusterOptions();
        var command = new Command("serve", "Serve a checkpoint: POST /v1/completions, GET /v1/models, GET /health")
        {
            checkpoint, name, replicas, maxReplicas, tensorSlicing, expertParallel, hierarchical, maxBatch, queueLimit, port, token, onCluster, device, json,
        };
        cluster.AddTo(command);
        command.SetAction((parse, cancellation) => CommandRunner.RunAsync(parse.GetValue(json), async () =>
        {
            string folder = Path.GetFullPath(parse.GetValue(checkpoint)!);
            var saved = Kernels.Checkpoints.ModelCheckpoint.Open(folder);
            var spec = new DeploymentSpec
            {
                Name = parse.GetValue(name) ?? saved.Config.Name,
                Checkpoint = folder,
                Replicas = parse.GetValue(replicas),
                MaxReplicas = parse.GetValue(maxReplicas),
                TensorSlicing = parse.GetValue(tensorSlicing),
                ExpertParallel = parse.GetValue(expertParallel),
                HierarchicalAllToAll = parse.GetValue(hierarchical),
                MaxBatch = parse.GetValue(maxBatch),
                QueueLimit = parse.GetValue(queueLimit),
                Device = parse.GetValue(device),
            };
            spec.Validate();
            bool asJson = parse.GetValue(json);
            if (parse.GetValue(onCluster))
            {
                await using var connection = await ClusterConnection.ConnectAsync(cluster.Read(parse), cancellation);
                var state = await Deploy(connection.Grains, spec, asJson, cancellation);
                Report(state, null, asJson);
                return state.Status == DeploymentStatus.Ready ? 0 : 1;
            }
            await using var silos = await EmbeddedCluster.StartAsync(spec.Replicas * spec.RanksPerReplica, web: true, null, cancellation, parse.GetValue(port), parse.GetValue(token));
            var ready = await Deploy(silos.Grains, spec, asJson, cancellation);
            Report(ready, $"http://127.0.0.1:{silos.Silos[0].HttpPort}", asJson);
            if (ready.Status != DeploymentStatus.Ready) return 1;
            await ForegroundWait.UntilStopped(cancellation);
            return 0;
        }));
        return command;
    }

    static async Task<DeploymentState> Deploy(IGrainFactory grains, DeploymentSpec spec, bool asJson, CancellationToken cancellation)
    {
        var cluster = grains.GetGrain<IClusterGrain>(IClusterGrain.Key);
        // Silos become assignable with their first heartbeat, a moment after they start.
        var until = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            try
            {
                await cluster.Deploy(spec);
                break;
            }
            catch (InvalidOperationException) when (DateTime.UtcNow < until)
            {
                await Task.Delay(250, cancellation);
            }
        }
        var deployment = grains.GetGrain<IDeploymentGrain>(spec.Name);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        DeploymentState state;
        while ((state = await deployment.GetState()).Status == DeploymentStatus.Loading)
        {
            if (!asJson) AnsiConsole.Markup($"\rloading {spec.Name}: {spec.Replicas} replica(s) of {spec.RanksPerReplica} silo(s)… {clock.Elapsed.TotalSeconds:F0} s");
            await Task.Delay(500, cancellation);
        }
        if (!asJson) AnsiConsole.WriteLine();
        return state;
    }

    static void Report(DeploymentState state, string? url, bool asJson)
    {
        if (asJson)
        {
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                model = state.Spec.Name,
                status = state.Status.ToString().ToLowerInvariant(),
                error = state.Error,
                replicas = state.Replicas,
                context_length = state.ContextLength,
                completions = url is null ? null : url + "/v1/completions",
            }, JsonOutput.Options));
            return;
        }
        if (state.Status != DeploymentStatus.Ready)
        {
            AnsiConsole.MarkupLine($"[red]{Markup.Escape(state.Spec.Name)} {state.Status.ToString().ToLowerInvariant()}[/]: {Markup.Escape(state.Error ?? "")}");
            return;
        }
        AnsiConsole.MarkupLine($"[green]{Markup.Escape(state.Spec.Name)} ready[/] on {state.Replicas.Count} replica(s), context {state.ContextLength} tokens");
        if (url is null) return;
        AnsiConsole.MarkupLine($"POST [link]{url}/v1/completions[/]  (GET /v1/models, /health; dashboard [link]{url}/dashboard[/])");
        AnsiConsole.WriteLine($"curl -s {url}/v1/completions -H 'Content-Type: application/json' -d '{{\"model\":\"{state.Spec.Name}\",\"prompt\":\"The jury\",\"max_tokens\":32}}'");
        AnsiConsole.MarkupLine("Ctrl+C stops the server.");
    }
}
