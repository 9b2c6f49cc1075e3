using System.Text.Json;
using Orleans.MoE.CommConformance;
using Orleans.MoE.Kernels.Comm.Mpi;
using TorchSharp;

// One MPI rank of the communicator conformance checks: `mpiexec.mpich -n 4 dotnet CommRankHost.dll [--results DIR]`
// writes each rank's results as JSON to DIR/rank-N.json (one file per rank: lines of several ranks sharing
// mpiexec's stdout can interleave) and a summary line to stdout. With --abort the last rank makes an invalid call,
// which must end the whole job (MPI_Abort) quickly instead of leaving the other ranks in their barrier.
if (!MpiRuntime.IsUnderMpiexec)
{
    Console.Error.WriteLine("CommRankHost runs under mpiexec: mpiexec.mpich -n 4 dotnet CommRankHost.dll [--results DIR] [--abort]");
    return 2;
}
int at = Array.IndexOf(args, "--results");
string results = at >= 0 && at + 1 < args.Length ? args[at + 1] : ".";
var world = MpiRuntime.World;
if (args.Contains("--abort"))
{
    var outcome = CommunicatorChecks.AbortWhenOneRankFails(world, torch.CPU, TimeSpan.FromSeconds(30));
    Console.WriteLine(JsonSerializer.Serialize(new { rank = world.Rank, backend = world.Backend, outcome }));
    return 0;
}
var checks = CommunicatorChecks.RunAll(world, torch.CPU);
Directory.CreateDirectory(results);
File.WriteAllText(Path.Combine(results, $"rank-{world.Rank}.json"), JsonSerializer.Serialize(checks));
Console.WriteLine($"rank {world.Rank} of {world.Size}: {checks.Count(c => c.Passed)} of {checks.Count} checks passed");
return checks.All(c => c.Passed) ? 0 : 1;
