namespace Orleans.MoE.Grains.Device;

/// <summary>Who this silo is in execution plans: its name, node and device (also published as silo metadata).</summary>
public sealed record SiloIdentity(string Name, string Node, string Device, long DeviceMemoryBytes);
