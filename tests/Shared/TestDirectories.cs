using System.Diagnostics;

namespace Orleans.MoE.Tests;

/// <summary>
/// Scratch folders for tests (runs write checkpoints of several MB each): all under one folder per test process,
/// deleted when the process exits, and the folders of test processes that died without cleaning up deleted at the
/// next start, so repeated test runs do not fill the disk.
/// </summary>
internal static class TestDirectories
{
    static readonly Lazy<string> Root = new(() =>
    {
        string parent = Path.Combine(Path.GetTempPath(), "moe-tests");
        if (Directory.Exists(parent))
            foreach (string folder in Directory.GetDirectories(parent))
                if (int.TryParse(Path.GetFileName(folder), out int pid) && !Alive(pid)) TryDelete(folder);
        string root = Path.Combine(parent, Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        AppDomain.CurrentDomain.ProcessExit += (_, _) => TryDelete(root);
        return root;
    });

    /// <summary>A new empty folder of this test process.</summary>
    public static string Create()
    {
        string path = Path.Combine(Root.Value, Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(path);
        return path;
    }

    static bool Alive(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    static void TryDelete(string folder)
    {
        try
        {
            Directory.Delete(folder, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Another process may still hold a file; what is left goes at a later start.
        }
    }
}
