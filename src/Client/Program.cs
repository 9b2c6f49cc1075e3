using System.CommandLine;
using Orleans.MoE.Client.Commands;

var root = new RootCommand("Orleans.MoE: train, distil and serve Mixture-of-Experts language models")
{
    DoctorCommand.Create(),
    TrainCommand.Create(),
    DistillCommand.Create(),
    EvalCommand.Create(),
    GenerateCommand.Create(),
    ServeCommand.Create(),
    UndeployCommand.Create(),
    UpCommand.Create(),
    SubmitCommand.Create(),
    WatchCommand.Create(),
    JobsCommand.Create(),
    JobsCommand.CreateCancel(),
    CheckpointCommand.Create(),
    SiloServiceCommands.Drain(),
    SiloServiceCommands.Undrain(),
    ClusterCommand.Create(),
    SimulateAllToAllCommand.Create(),
};
return await root.Parse(args).InvokeAsync();
