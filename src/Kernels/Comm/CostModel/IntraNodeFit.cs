namespace Orleans.MoE.Kernels.Comm.CostModel;

/// <summary>The intra-node link fitted to a calibration, and how far the fit is from each measured point.</summary>
public sealed record IntraNodeFit(IntraNodeLink Link, IReadOnlyList<FitResidual> Residuals)
{
    /// <summary>
    /// Least squares of T(n, S) = call + (n−1)·peer + S·(n−1)/n / busbw over the points, each residual divided by
    /// the measured time: the points span 35 µs to 0.7 ms, and an unweighted fit would give the small messages,
    /// the latency regime this model exists for, almost no say. With one GPU count the per-peer term cannot be
    /// told apart from the per-call term, so it is folded into it (per-peer 0).
    /// </summary>
    public static IntraNodeFit Fit(Calibration calibration)
    {
        var points = calibration.Points;
        bool severalGpuCounts = points.Select(p => p.Gpus).Distinct().Count() > 1;
        var rows = points.Select(p => severalGpuCounts
            ? new[] { 1.0, p.Gpus - 1, IntraNodeLink.BytesLeavingEachGpu(p.Gpus, p.BytesPerRank) }
            : new[] { 1.0, IntraNodeLink.BytesLeavingEachGpu(p.Gpus, p.BytesPerRank) }).ToList();
        var x = LeastSquares.Solve(rows, points.Select(p => p.Seconds).ToList(), points.Select(p => 1 / p.Seconds).ToList());
        double secondsPerByte = x[^1];
        if (secondsPerByte <= 0)
            throw new InvalidOperationException($"{calibration.Source}: the fitted bandwidth is not positive (time does not grow with size)");
        var link = new IntraNodeLink(x[0], severalGpuCounts ? x[1] : 0, 1 / secondsPerByte);
        return new IntraNodeFit(link, points.Select(p => new FitResidual(p, link.AllToAllSeconds(p.Gpus, p.BytesPerRank))).ToList());
    }
}
