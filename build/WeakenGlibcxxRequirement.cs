// Marks the GLIBCXX_3.4.32 version requirement of libLibTorchSharp.so as weak (VER_FLG_WEAK) when the
// system libstdc++ does not define that version (Debian 12 ships GCC 12's, which stops at 3.4.30).
// TorchSharp 0.107's native library is linked with GCC 13, whose <iostream> records a reference to
// _ZSt21ios_base_library_initv only to pin the version; nothing calls it, so a weak requirement lets
// the dynamic loader accept the older libstdc++ (verified: tensors, matmul, autograd all work).
// Runs as an MSBuild inline task so that a plain `dotnet build` or `dotnet test` needs no extra step.
using System;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public class WeakenGlibcxxRequirement : Task
{
    const string Version = "GLIBCXX_3.4.32";
    const uint ShtGnuVerneed = 0x6ffffffe;
    const ushort VerFlgWeak = 0x2;

    [Required] public ITaskItem[] Libraries { get; set; } = Array.Empty<ITaskItem>();

    public string SystemLibStdCxx { get; set; } = "";

    public override bool Execute()
    {
        string system = FindSystemLibStdCxx();
        if (system.Length == 0 || ContainsAscii(File.ReadAllBytes(system), Version))
            return true; // The system library has the version (or there is none to check): leave the file alone.

        foreach (var item in Libraries)
        {
            string path = item.ItemSpec;
            if (!File.Exists(path)) continue;
            byte[] elf = File.ReadAllBytes(path);
            switch (Weaken(elf))
            {
                case Outcome.Patched:
                    File.WriteAllBytes(path + ".tmp", elf);
                    File.Delete(path);
                    File.Move(path + ".tmp", path);
                    Log.LogMessage(MessageImportance.High, $"Marked {Version} weak in {path} ({system} lacks it).");
                    break;
                case Outcome.NotFound:
                    Log.LogMessage(MessageImportance.Low, $"{path} does not require {Version}.");
                    break;
            }
        }
        return !Log.HasLoggedErrors;
    }

    string FindSystemLibStdCxx()
    {
        if (SystemLibStdCxx.Length > 0) return File.Exists(SystemLibStdCxx) ? SystemLibStdCxx : "";
        foreach (var dir in new[] { "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib/x86_64-linux-gnu" })
        {
            string candidate = Path.Combine(dir, "libstdc++.so.6");
            if (File.Exists(candidate)) return candidate;
        }
        return "";
    }

    enum Outcome { Patched, AlreadyWeak, NotFound }

    Outcome Weaken(byte[] elf)
    {
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[4] != 2 || elf[5] != 1)
        {
            Log.LogWarning("not a little-endian ELF64 file; left unchanged");
            return Outcome.NotFound;
        }
        long shoff = BitConverter.ToInt64(elf, 0x28);
        int shentsize = BitConverter.ToUInt16(elf, 0x3A);
        int shnum = BitConverter.ToUInt16(elf, 0x3C);
        for (int i = 0; i < shnum; i++)
        {
            long sh = shoff + (long)i * shentsize;
            if (BitConverter.ToUInt32(elf, (int)sh + 4) != ShtGnuVerneed) continue;
            long offset = BitConverter.ToInt64(elf, (int)sh + 0x18);
            int link = (int)BitConverter.ToUInt32(elf, (int)sh + 0x28);
            int count = (int)BitConverter.ToUInt32(elf, (int)sh + 0x2C);
            long strtab = BitConverter.ToInt64(elf, (int)(shoff + (long)link * shentsize) + 0x18);
            long need = offset;
            for (int n = 0; n < count; n++)
            {
                int auxCount = BitConverter.ToUInt16(elf, (int)need + 2);
                long aux = need + BitConverter.ToUInt32(elf, (int)need + 8);
                for (int a = 0; a < auxCount; a++)
                {
                    int flagsAt = (int)aux + 4;
                    long name = strtab + BitConverter.ToUInt32(elf, (int)aux + 8);
                    if (ReadCString(elf, name) == Version)
                    {
                        ushort flags = BitConverter.ToUInt16(elf, flagsAt);
                        if ((flags & VerFlgWeak) != 0) return Outcome.AlreadyWeak;
                        BitConverter.GetBytes((ushort)(flags | VerFlgWeak)).CopyTo(elf, flagsAt);
                        return Outcome.Patched;
                    }
                    aux += BitConverter.ToUInt32(elf, (int)aux + 12);
                }
                need += BitConverter.ToUInt32(elf, (int)need + 12);
            }
        }
        return Outcome.NotFound;
    }

    static string ReadCString(byte[] data, long start)
    {
        long end = start;
        while (end < data.Length && data[end] != 0) end++;
        return Encoding.ASCII.GetString(data, (int)start, (int)(end - start));
    }

    static bool ContainsAscii(byte[] haystack, string needle)
    {
        // Inline tasks compile against netstandard2.0: no spans, so a plain scan.
        byte[] n = Encoding.ASCII.GetBytes(needle + "\0");
        for (int i = 0; i + n.Length <= haystack.Length; i++)
        {
            int j = 0;
            while (j < n.Length && haystack[i + j] == n[j]) j++;
            if (j == n.Length) return true;
        }
        return false;
    }
}
