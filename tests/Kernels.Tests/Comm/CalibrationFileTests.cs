using Orleans.MoE.Kernels.Comm.CostModel;
using Orleans.MoE.Kernels.Config;

namespace Orleans.MoE.Kernels.Tests.Comm;

public class CalibrationFileTests
{
    [Theory]
    [InlineData("""{"gpus": 4, "points": [{"bytes_per_rank": 1048576, "seconds": -1}]}""", "points[0].seconds")]
    [InlineData("""{"gpus": 4, "points": [{"bytes": 1048576, "seconds": 4e-5}]}""", "points[0].bytes")]
    [InlineData("""{"gpus": 1, "points": [{"bytes_per_rank": 1048576, "seconds": 4e-5}]}""", "gpus")]
    [InlineData("""{"gpus": 4, "points": []}""", "points")]
    [InlineData("""{"runs": [{"gpus": 2, "points": [{"bytes_per_rank": "1MB", "seconds": 4e-5}]}]}""", "runs[0].points[0].bytes_per_rank")]
    [InlineData("""{"gpus": 4, "points": [{"bytes_per_rank": 1048576, "seconds": 4e-5}]}""", "points")] // one size cannot be fitted
    [InlineData("""{"gpus": 4, "points": [""", "$")]
    public void BadFilesNameTheFileAndTheField(string json, string field)
    {
        string path = Path.Combine(Path.GetTempPath(), $"a2a-calibration-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, json);
        try
        {
            var e = Assert.Throws<ConfigException>(() => CalibrationFile.Load(path));
            Assert.Equal(field, e.Field);
            Assert.Contains(path, e.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void SeveralRunsLoadWithTheirGpuCounts()
    {
        string path = Path.Combine(Path.GetTempPath(), $"a2a-calibration-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, """
            {"source": "bench", "runs": [
              {"gpus": 2, "points": [{"bytes_per_rank": 1048576, "seconds": 3.5e-5}, {"bytes_per_rank": 268435456, "seconds": 4.77e-4}]},
              {"gpus": 4, "points": [{"bytes_per_rank": 1048576, "seconds": 4.2e-5}, {"bytes_per_rank": 268435456, "seconds": 6.77e-4}]}]}
            """);
        try
        {
            var calibration = CalibrationFile.Load(path);
            Assert.Equal("bench", calibration.Source);
            Assert.Equal([2, 2, 4, 4], calibration.Points.Select(p => p.Gpus));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
