using Orleans.MoE.Kernels.Comm.CostModel;

namespace Orleans.MoE.Kernels.Tests.Comm;

public class IntraNodeFitTests
{
    [Fact]
    public void FitRecoversTheParametersOfSyntheticPoints()
    {
        var truth = new IntraNodeLink(20e-6, 3e-6, 250e9);
        var points = (from gpus in new[] { 2, 4, 8 }
                      from mb in new[] { 1, 8, 64, 256 }
                      select new CalibrationPoint(gpus, mb << 20, truth.AllToAllSeconds(gpus, mb << 20))).ToList();

        var fit = IntraNodeFit.Fit(new Calibration("synthetic", points));

        Assert.Equal(truth.CallOverheadSeconds, fit.Link.CallOverheadSeconds, 1e-9);
        Assert.Equal(truth.PerPeerSeconds, fit.Link.PerPeerSeconds, 1e-9);
        Assert.Equal(truth.BusBandwidthBytesPerSecond, fit.Link.BusBandwidthBytesPerSecond, 1e-3 * truth.BusBandwidthBytesPerSecond);
        Assert.All(fit.Residuals, r => Assert.True(Math.Abs(r.RelativeError) < 1e-9));
    }

    [Fact]
    public void OneGpuCountFoldsThePerPeerCostIntoTheCallCost()
    {
        var truth = new IntraNodeLink(30e-6, 0, 300e9);
        var points = new[] { 1, 8, 64 }.Select(mb => new CalibrationPoint(4, mb << 20, truth.AllToAllSeconds(4, mb << 20))).ToList();

        var fit = IntraNodeFit.Fit(new Calibration("one count", points));

        Assert.Equal(0, fit.Link.PerPeerSeconds);
        Assert.Equal(30e-6, fit.Link.CallOverheadSeconds, 1e-9);
    }

    [Fact]
    public void TheH200CalibrationFitsWithinFifteenPercent()
    {
        var fit = IntraNodeFit.Fit(Calibration.H200NvLink);

        Assert.True(fit.Link.PerPeerSeconds > 0);
        Assert.InRange(fit.Link.BusBandwidthBytesPerSecond, 250e9, 400e9);
        Assert.All(fit.Residuals, r => Assert.InRange(r.RelativeError, -0.15, 0.15));
    }
}
