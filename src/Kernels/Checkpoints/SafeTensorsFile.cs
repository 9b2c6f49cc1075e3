using System.Buffers.Binary;
using System.Text.Json;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Checkpoints;

/// <summary>
/// Reads and writes the safetensors format: an 8-byte little-endian header length, a JSON header naming each
/// tensor's dtype, shape and byte range, then the raw little-endian tensor bytes.
/// </summary>
public static class SafeTensorsFile
{
    private const string MetadataKey = "__metadata__";

    // A header this large is certainly a damaged length field, not a real file.
    private const long MaxHeaderBytes = 100L * 1024 * 1024;

    /// <summary>Writes <paramref name="tensors"/> to <paramref name="path"/> and flushes it to disk.</summary>
    public static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None);
        Write(stream, tensors, metadata);
        stream.Flush(flushToDisk: true);
    }

    /// <summary>Writes <paramref name="tensors"/> (any device; names ordered ordinally) and metadata to a stream.</summary>
    public static void Write(Stream stream, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(tensors);
        EnsureLittleEndianHost();
        if (tensors.ContainsKey(MetadataKey))
            throw new ArgumentException($"'{MetadataKey}' is reserved and cannot name a tensor", nameof(tensors));

        var names = tensors.Keys.Order(StringComparer.Ordinal).ToList();
        byte[] header = BuildHeader(names, tensors, metadata);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
        stream.Write(length);
        stream.Write(header);
        foreach (string name in names)
        {
            using var scope = NewDisposeScope();
            var cpu = tensors[name].detach().cpu().contiguous();
            stream.Write(cpu.bytes);
        }
    }

    /// <summary>Reads every tensor (onto the CPU) and the metadata of the file at <paramref name="path"/>.</summary>
    public static SafeTensorsContent Read(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        try
        {
            return Read(stream);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{path}: {e.Message}", e);
        }
    }

    /// <summary>Reads every tensor (onto the CPU) and the metadata from a seekable stream.</summary>
    public static SafeTensorsContent Read(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        EnsureLittleEndianHost();
        Span<byte> lengthBytes = stackalloc byte[8];
        ReadExactly(stream, lengthBytes, "header length");
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        long dataStart = 8 + (long)headerLength;
        if (headerLength > MaxHeaderBytes || dataStart > stream.Length)
            throw new InvalidDataException($"safetensors header length {headerLength} does not fit a {stream.Length}-byte file");
        var header = new byte[headerLength];
        ReadExactly(stream, header, "header");
        long dataLength = stream.Length - dataStart;

        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            using var json = JsonDocument.Parse(header);
            foreach (var property in json.RootElement.EnumerateObject())
            {
                if (tensors.ContainsKey(property.Name) || (property.Name == MetadataKey && metadata.Count > 0))
                    throw new InvalidDataException($"safetensors header names '{property.Name}' twice");
                if (property.Name == MetadataKey)
                {
                    foreach (var entry in property.Value.EnumerateObject())
                        metadata[entry.Name] = entry.Value.GetString() ?? "";
                    continue;
                }
                tensors[property.Name] = ReadTensor(stream, property.Name, property.Value, dataStart, dataLength);
            }
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or KeyNotFoundException)
        {
            foreach (var tensor in tensors.Values) tensor.Dispose();
            throw new InvalidDataException($"safetensors header is malformed: {e.Message}", e);
        }
        catch
        {
            foreach (var tensor in tensors.Values) tensor.Dispose();
            throw;
        }
        return new SafeTensorsContent(tensors, metadata);
    }

    private static Tensor ReadTensor(Stream stream, string name, JsonElement description, long dataStart, long dataLength)
    {
        string code = description.GetProperty("dtype").GetString() ?? "";
        if (!SafeTensorsDType.TryParse(code, out var type, out int elementSize))
            throw new InvalidDataException($"tensor '{name}' has unsupported dtype '{code}'");
        long[] shape = [.. description.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64())];
        long[] offsets = [.. description.GetProperty("data_offsets").EnumerateArray().Select(d => d.GetInt64())];
        long count = shape.Aggregate(1L, (product, dimension) => product * dimension);
        if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] > dataLength || offsets[1] - offsets[0] != count * elementSize)
            throw new InvalidDataException(
                $"tensor '{name}' data_offsets [{string.Join(", ", offsets)}] do not hold {count} {code} values " +
                $"within {dataLength} data bytes");

        var tensor = empty(shape, dtype: type);
        try
        {
            stream.Seek(dataStart + offsets[0], SeekOrigin.Begin);
            ReadExactly(stream, tensor.bytes, $"data of tensor '{name}'");
            return tensor;
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
    }

    private static byte[] BuildHeader(List<string> names, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject(MetadataKey);
                foreach (var (key, value) in metadata.OrderBy(p => p.Key, StringComparer.Ordinal))
                    json.WriteString(key, value);
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (string name in names)
            {
                var tensor = tensors[name];
                long size = tensor.numel() * tensor.ElementSize;
                json.WriteStartObject(name);
                json.WriteString("dtype", SafeTensorsDType.CodeOf(tensor.dtype));
                json.WriteStartArray("shape");
                foreach (long dimension in tensor.shape) json.WriteNumberValue(dimension);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + size);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += size;
            }
            json.WriteEndObject();
        }
        // Padding the header with spaces to a multiple of 8 keeps the data aligned for memory-mapped readers.
        int padded = (int)((buffer.Length + 7) / 8 * 8);
        while (buffer.Length < padded) buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }

    private static void ReadExactly(Stream stream, Span<byte> destination, string what)
    {
        try
        {
            stream.ReadExactly(destination);
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException($"safetensors file ends inside the {what}", e);
        }
    }

    // The format is little-endian and tensor bytes are copied as they lie in memory.
    private static void EnsureLittleEndianHost()
    {
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("safetensors reading and writing needs a little-endian host");
    }
}
