using System.Buffers.Binary;
using System.Text.Json;
using Orleans.MoE.Kernels.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Tests;

public class SafeTensorsFileTests
{
    public static TheoryData<ScalarType, string> DTypes => new()
    {
        { ScalarType.Float32, "F32" },
        { ScalarType.Float64, "F64" },
        { ScalarType.BFloat16, "BF16" },
        { ScalarType.Float16, "F16" },
        { ScalarType.Int64, "I64" },
        { ScalarType.Int32, "I32" },
    };

    [Theory]
    [MemberData(nameof(DTypes))]
    public void RoundTripsEveryDTypeExactly(ScalarType type, string code)
    {
        using var scope = NewDisposeScope();
        var original = type is ScalarType.Int64 or ScalarType.Int32
            ? randint(-1_000_000, 1_000_000, [3, 5, 2], dtype: type)
            : (randn(3, 5, 2, dtype: ScalarType.Float64) * 1000).to_type(type);
        // A transposed view checks that non-contiguous tensors are written in logical order.
        var transposed = original.transpose(0, 2);
        var stream = new MemoryStream();
        SafeTensorsFile.Write(stream, new Dictionary<string, Tensor> { ["w"] = original, ["w.t"] = transposed });

        stream.Position = 0;
        using var content = SafeTensorsFile.Read(stream);
        Assert.Equal(type, content.Tensors["w"].dtype);
        Assert.Equal(original.shape, content.Tensors["w"].shape);
        // Bit-for-bit comparison of the stored bytes, then value equality, so no rounding can hide a difference.
        Assert.True(original.bytes.SequenceEqual(content.Tensors["w"].bytes), $"{type} values differ after the round trip");
        Assert.True(transposed.contiguous().bytes.SequenceEqual(content.Tensors["w.t"].bytes),
            $"{type} transposed values differ after the round trip");
        Assert.True(original.eq(content.Tensors["w"]).all().item<bool>());

        stream.Position = 0;
        using var header = JsonDocument.Parse(ReadHeader(stream));
        Assert.Equal(code, header.RootElement.GetProperty("w").GetProperty("dtype").GetString());
    }

    [Fact]
    public void Bfloat16BytesAreTheUpperHalfOfFloat32()
    {
        using var scope = NewDisposeScope();
        // 1.5f is 0x3FC00000; as bfloat16 it is exactly 0x3FC0, stored little-endian.
        var value = tensor(new[] { 1.5f }).to_type(ScalarType.BFloat16);
        var stream = new MemoryStream();
        SafeTensorsFile.Write(stream, new Dictionary<string, Tensor> { ["x"] = value });
        byte[] bytes = stream.ToArray();
        Assert.Equal([0xC0, 0x3F], bytes[^2..]);
    }

    [Fact]
    public void MetadataAndScalarsRoundTrip()
    {
        using var scope = NewDisposeScope();
        string path = Path.Combine(Path.GetTempPath(), $"moe-st-{Guid.NewGuid():N}.safetensors");
        try
        {
            var metadata = new Dictionary<string, string> { ["format"] = "pt", ["step"] = "123", ["note"] = "ünï \"quoted\"" };
            SafeTensorsFile.Write(path, new Dictionary<string, Tensor> { ["scalar"] = tensor(42L), ["empty"] = zeros(0, 4) }, metadata);
            Assert.Equal(0, (new FileInfo(path).Length - 8 - BinaryPrimitives.ReadInt64LittleEndian(File.ReadAllBytes(path).AsSpan(0, 8))) % 8);
            using var content = SafeTensorsFile.Read(path);
            Assert.Equal(metadata, content.Metadata);
            Assert.Empty(content.Tensors["scalar"].shape);
            Assert.Equal(42L, content.Tensors["scalar"].item<long>());
            Assert.Equal([0L, 4L], content.Tensors["empty"].shape);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void TruncatedFileIsReportedNotMisread()
    {
        using var scope = NewDisposeScope();
        var stream = new MemoryStream();
        SafeTensorsFile.Write(stream, new Dictionary<string, Tensor> { ["w"] = ones(100) });
        var truncated = new MemoryStream(stream.ToArray()[..^10]);
        var e = Assert.Throws<InvalidDataException>(() => SafeTensorsFile.Read(truncated));
        Assert.Contains("tensor 'w'", e.Message);
    }

    [Fact]
    public void UnsupportedDTypeIsRefusedWhenWriting()
    {
        using var scope = NewDisposeScope();
        var e = Assert.Throws<NotSupportedException>(() =>
            SafeTensorsFile.Write(new MemoryStream(), new Dictionary<string, Tensor> { ["b"] = ones(2, dtype: ScalarType.Bool) }));
        Assert.Contains("Bool", e.Message);
    }

    private static byte[] ReadHeader(Stream stream)
    {
        var length = new byte[8];
        stream.ReadExactly(length);
        var header = new byte[BinaryPrimitives.ReadInt64LittleEndian(length)];
        stream.ReadExactly(header);
        return header;
    }
}
