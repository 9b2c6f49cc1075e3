using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Generation;
using Orleans.MoE.Kernels.Serving;
using Orleans.MoE.Kernels.Tokenizers;
using TorchSharp;

namespace Orleans.MoE.Kernels.Tests.Serving;

/// <summary>
/// The generation engine on a replica of thread ranks (tensor slicing, expert parallelism, coordinated all-to-all):
/// requests arriving over time into a continuous batch get the tokens the one-process engine gives them.
/// </summary>
public class ReplicaGenerationTests
{
    static readonly GenerationRequest[] Requests =
    [
        new("greedy", [72, 101, 108, 108, 111], new SamplingOptions { MaxTokens = 10, Temperature = 0 }),
        new("sampled", [84, 104, 101], new SamplingOptions { MaxTokens = 12, Temperature = 1.0, Seed = 7 }),
        new("nucleus", [65, 32, 108, 111, 110, 103], new SamplingOptions { MaxTokens = 8, Temperature = 0.9, TopP = 0.8, Seed = 3 }),
        new("same-length", [1, 2, 3], new SamplingOptions { MaxTokens = 6, Temperature = 0 }),
        new("late", [50, 51], new SamplingOptions { MaxTokens = 9, Temperature = 0.7, Seed = 11 }),
    ];

    static Dictionary<string, List<int?>> Drive(GenerationEngine engine)
    {
        var seen = Requests.ToDictionary(r => r.Id, _ => new List<int?>());
        // Two arrive at once (same prompt length: one prefill), the rest while the batch runs.
        var arrivals = Requests.Select((r, i) => (Step: i < 2 ? 0 : i + 1, Request: r)).ToList();
        for (int step = 0; arrivals.Count > 0 || engine.HasWork; step++)
        {
            foreach (var a in arrivals.Where(a => a.Step == step).ToList())
            {
                engine.Submit(a.Request);
                arrivals.Remove(a);
            }
            foreach (var e in engine.Step()) seen[e.RequestId].Add(e.Token);
        }
        return seen;
    }

    [Theory]
    [InlineData(2, 2)]
    [InlineData(1, 4)]
    [InlineData(2, 1)]
    [InlineData(1, 8)]
    public void AReplicaOfRanksGivesEveryRequestTheTokensOfOneProcess(int tensorSlicing, int expertParallel)
    {
        var tokenizer = new ByteTokenizer();
        using var whole = ServingHarness.WholeModel();
        Dictionary<string, List<int?>> expected;
        using (var engine = new GenerationEngine(whole, tokenizer, torch.CPU, maxBatch: 3))
            expected = Drive(engine);

        var layout = new ServingLayout(tensorSlicing, expertParallel);
        var results = ThreadRanks.Run(layout.WorldSize, replica =>
        {
            var groups = ServingGroups.Create(replica, layout);
            var sliced = SlicedModel.FromModel(whole, groups);
            var rank = new ReplicaRank(sliced, groups, replica, torch.CPU, slots: 3);
            try
            {
                if (!rank.IsLeader)
                {
                    rank.Follow();
                    return null;
                }
                // An idle leader's pings keep the followers waiting, and change nothing.
                rank.KeepAlive();
                rank.KeepAlive();
                using var engine = new GenerationEngine(new ReplicaBatchForward(rank), tokenizer, maxBatch: 3);
                return Drive(engine);
            }
            finally
            {
                if (!rank.IsLeader) rank.Dispose();
                sliced.Dispose();
                groups.Dispose();
            }
        }, TimeSpan.FromMinutes(2));

        var served = results[0]!;
        foreach (var request in Requests)
            Assert.Equal(expected[request.Id], served[request.Id]);
    }
}
