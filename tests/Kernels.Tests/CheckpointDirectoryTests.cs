using Orleans.MoE.Kernels.Checkpoints;
using Orleans.MoE.Kernels.Data;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Tests;

public sealed class CheckpointDirectoryTests : IDisposable
{
    private readonly string root = Path.Combine(Path.GetTempPath(), $"moe-ckpt-{Guid.NewGuid():N}");

    public void Dispose()
    {
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
    }

    private CheckpointDirectory WriteStep(long step, float fill)
    {
        using var scope = NewDisposeScope();
        using var writer = CheckpointDirectory.Create(Path.Combine(root, CheckpointDirectory.StepName(step)));
        writer.WriteTensors("model.safetensors", new Dictionary<string, Tensor> { ["w"] = full(4, 4, fill) },
            new Dictionary<string, string> { ["step"] = step.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        writer.WriteText("tokenizer.txt", "gpt2");
        writer.WriteJson("data-position.json", new SamplerPosition(2, step));
        return writer.Commit();
    }

    [Fact]
    public void CommittedCheckpointOpensAndReadsBack()
    {
        var written = WriteStep(123, 1.5f);
        Assert.Equal(123, written.Step);
        Assert.EndsWith("step-000123", written.Path);
        Assert.Empty(Directory.GetDirectories(root, "*.tmp-*"));

        var opened = CheckpointDirectory.Open(written.Path);
        Assert.Equal(["data-position.json", "model.safetensors", "tokenizer.txt"], opened.Files.Keys.Order());
        using var model = opened.ReadTensors("model.safetensors");
        Assert.Equal(24f, model.Tensors["w"].sum().item<float>());
        Assert.Equal("123", model.Metadata["step"]);
        Assert.Equal("gpt2", opened.ReadText("tokenizer.txt"));
        Assert.Equal(new SamplerPosition(2, 123), opened.ReadJson<SamplerPosition>("data-position.json"));
    }

    [Fact]
    public void FlippedByteIsDetectedAndTheFileNamed()
    {
        var written = WriteStep(5, 2f);
        string file = Path.Combine(written.Path, "model.safetensors");
        byte[] bytes = File.ReadAllBytes(file);
        bytes[^3] ^= 0x01;
        File.WriteAllBytes(file, bytes);

        var e = Assert.Throws<CorruptCheckpointException>(() => CheckpointDirectory.Open(written.Path));
        Assert.Equal("model.safetensors", e.FileName);
        Assert.Contains("'model.safetensors'", e.Message);
        Assert.Contains("SHA-256", e.Message);
    }

    [Fact]
    public void TruncatedAndMissingFilesAreDetected()
    {
        var written = WriteStep(6, 2f);
        File.WriteAllText(Path.Combine(written.Path, "tokenizer.txt"), "gpt");
        var size = Assert.Throws<CorruptCheckpointException>(() => CheckpointDirectory.Open(written.Path));
        Assert.Contains("'tokenizer.txt' has 3 bytes, the manifest says 4", size.Message);

        File.Delete(Path.Combine(written.Path, "tokenizer.txt"));
        var missing = Assert.Throws<CorruptCheckpointException>(() => CheckpointDirectory.Open(written.Path));
        Assert.Contains("'tokenizer.txt' is listed in the manifest but missing", missing.Message);
    }

    [Fact]
    public void MissingManifestIsDetected()
    {
        var written = WriteStep(7, 2f);
        File.Delete(Path.Combine(written.Path, "manifest.json"));
        var e = Assert.Throws<CorruptCheckpointException>(() => CheckpointDirectory.Open(written.Path));
        Assert.Contains("'manifest.json' is missing", e.Message);
    }

    [Fact]
    public void LatestValidSkipsACorruptedNewestCheckpoint()
    {
        WriteStep(9, 1f);
        WriteStep(100, 2f);
        var newest = WriteStep(1000, 3f);
        File.WriteAllText(Path.Combine(newest.Path, "tokenizer.txt"), "byte");
        // Leftovers of an interrupted write are not checkpoints.
        Directory.CreateDirectory(Path.Combine(root, "step-002000.tmp-abc"));

        var scan = CheckpointDirectory.ListValid(root);
        Assert.Equal([9L, 100L], scan.Valid.Select(c => c.Step!.Value));
        var skipped = Assert.Single(scan.Skipped);
        Assert.EndsWith("step-001000", skipped.Path);
        Assert.Contains("tokenizer.txt", skipped.Reason);
        Assert.Equal(100, CheckpointDirectory.LatestValid(root)?.Step);
    }

    [Fact]
    public void RecommittingAStepReplacesTheOldCheckpoint()
    {
        WriteStep(10, 1f);
        var replaced = WriteStep(10, 5f);
        using var model = replaced.ReadTensors("model.safetensors");
        Assert.Equal(80f, model.Tensors["w"].sum().item<float>());
        Assert.Equal(["step-000010"], Directory.GetDirectories(root).Select(Path.GetFileName));
    }

    [Fact]
    public void AbandonedWriterLeavesNothingBehind()
    {
        using (var writer = CheckpointDirectory.Create(Path.Combine(root, "step-000001")))
        {
            writer.WriteText("config.json", "{}");
        }
        Assert.Empty(Directory.GetDirectories(root));
        Assert.Null(CheckpointDirectory.LatestValid(root));
    }
}
