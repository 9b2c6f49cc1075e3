namespace Orleans.MoE.Kernels.Comm.CostModel;

/// <summary>A measured point beside the fitted model's time for it.</summary>
public sealed record FitResidual(CalibrationPoint Point, double ModelSeconds)
{
    /// <summary>(model − measured) / measured.</summary>
    public double RelativeError => (ModelSeconds - Point.Seconds) / Point.Seconds;
}
