namespace Orleans.MoE.Grains.Contracts;

/// <summary>Tokens routed to (Load) and kept by (Kept) each expert of one MoE layer during one step.</summary>
[GenerateSerializer, Immutable]
public sealed record LayerLoad([property: Id(0)] int Layer, [property: Id(1)] long[] Load, [property: Id(2)] long[] Kept, [property: Id(3)] int Capacity)
{
    /// <summary>Fraction of routed assignments dropped for capacity in this layer.</summary>
    public double DroppedFraction
    {
        get
        {
            long routed = Load.Sum();
            return routed == 0 ? 0 : (double)(routed - Kept.Sum()) / routed;
        }
    }
}
