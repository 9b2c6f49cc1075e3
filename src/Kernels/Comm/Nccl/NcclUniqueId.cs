namespace Orleans.MoE.Kernels.Comm.Nccl;

/// <summary>
/// NCCL's 128-byte rendezvous id, made by one rank and handed to all (a grain call can carry its bytes). NCCL takes
/// it by value: it must be this fixed-size struct, not a byte array, or ncclCommInitRank answers "invalid argument".
/// </summary>
public unsafe struct NcclUniqueId
{
    public const int Length = 128;

    fixed byte bytes[Length];

    /// <summary>A fresh id from NCCL (it opens this rank's bootstrap socket).</summary>
    public static NcclUniqueId Create()
    {
        NcclUniqueId id;
        int result = NcclNative.ncclGetUniqueId(&id);
        if (result != NcclNative.Success) throw new InvalidOperationException($"ncclGetUniqueId failed: {NcclNative.Describe(result, 0)}");
        return id;
    }

    public static NcclUniqueId FromBytes(ReadOnlySpan<byte> source)
    {
        if (source.Length != Length) throw new ArgumentException($"an NCCL unique id is {Length} bytes, not {source.Length}");
        NcclUniqueId id;
        source.CopyTo(new Span<byte>(id.bytes, Length));
        return id;
    }

    public readonly byte[] ToBytes()
    {
        fixed (byte* b = bytes) return new ReadOnlySpan<byte>(b, Length).ToArray();
    }
}
