using Microsoft.Extensions.Hosting;
using Orleans.MoE.Silo.Hosting;

// One silo process per device: `dotnet Orleans.MoE.Silo.dll --Moe:Name=gpu0 --Moe:Device=cuda --Moe:Clustering=postgres --Moe:Postgres=...`.
var options = MoeSiloHost.ReadOptions(args);
// --Moe:Mpi=true under mpiexec: one silo per rank, on the rank's ports, with MPI as the data plane.
if (options.Mpi) options = options.ForMpiRank(MpiRanks.Initialise());
// --Moe:ApplySchema=true: create the PostgreSQL tables and Orleans queries first (deploy/postgres; safe to repeat).
if (options is { Clustering: "postgres", ApplySchema: true, Postgres: { } connection }) await PostgresSchema.ApplyAsync(connection);
using var host = MoeSiloHost.Build(options, args);
await host.RunAsync();
