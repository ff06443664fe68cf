using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace OpenPurse.Testing;

/// <summary>
/// A fresh SoftHSM2 token for one test, with its own label, user PIN and PIN variable, in a token
/// directory private to this test process; deleted again on dispose, and the directory with the
/// last live token (the next token brings it back at the same path).
/// </summary>
/// <remarks>
/// <para>
/// SoftHSM2 reads SOFTHSM2_CONF and scans its token directory once, in C_Initialize, and a module is
/// initialized once per process. So there is one configuration per process (set before anything
/// loads the module), and one token per test in it. A token made while the module is loaded in this
/// process stays invisible until every user has closed the module: tests that open tokens in
/// process belong to one collection that does not run in parallel, and close their vaults.
/// </para>
/// <para>
/// .NET keeps its own copy of the environment: <see cref="System.Environment.SetEnvironmentVariable(string, string)"/>
/// reaches child processes and managed readers but not getenv in native code such as the module,
/// so the variable is also set with libc's setenv, once, before the module is first loaded.
/// </para>
/// </remarks>
public sealed class SoftHsmToken : IDisposable
{
    public const string Util = "/usr/bin/softhsm2-util";

    private const int UtilTimeoutMs = 30_000;

    private static readonly Lazy<string> s_configuration = new(PlaceConfiguration, LazyThreadSafetyMode.ExecutionAndPublication);
    private static readonly Lock s_liveLock = new();
    private static int s_live;

    private SoftHsmToken(string label, string pin)
    {
        Label = label;
        Pin = pin;
        PinEnvironmentVariable = "OPENPURSE_TEST_PKCS11_PIN_" + label.Replace('-', '_').ToUpperInvariant();
        System.Environment.SetEnvironmentVariable(PinEnvironmentVariable, pin);
    }

    /// <summary>The PKCS#11 module.</summary>
    public static string Library => Components.PathOf(Components.SoftHsm);

    /// <summary>This process's softhsm2.conf.</summary>
    public static string ConfigurationPath => s_configuration.Value;

    public string Label { get; }

    public string Pin { get; }

    /// <summary>A variable only this token uses for its PIN, so tests never share one; already set in this process.</summary>
    public string PinEnvironmentVariable { get; }

    /// <summary>What an operator node in another process needs: the configuration and the PIN.</summary>
    public IReadOnlyDictionary<string, string> Environment => new Dictionary<string, string>
    {
        ["SOFTHSM2_CONF"] = ConfigurationPath,
        [PinEnvironmentVariable] = Pin,
    };

    /// <summary>Initializes a new token in the first free slot.</summary>
    public static SoftHsmToken Create()
    {
        Components.Require(Components.SoftHsm);
        lock (s_liveLock)
        {
            // The directory goes with the last token and comes back, at the same path, with the next.
            WriteConfiguration(ConfigurationPath);
            s_live++;
        }

        var label = "op-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));
        var pin = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        var soPin = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        try
        {
            RunUtil("--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", soPin);
        }
        catch
        {
            Forget();
            throw;
        }

        return new SoftHsmToken(label, pin);
    }

    public void Dispose()
    {
        System.Environment.SetEnvironmentVariable(PinEnvironmentVariable, null);
        try
        {
            RunUtil("--delete-token", "--token", Label);
        }
        finally
        {
            Forget();
        }
    }

    private static void Forget()
    {
        lock (s_liveLock)
        {
            if (--s_live == 0)
            {
                Directory.Delete(Path.GetDirectoryName(ConfigurationPath)!, recursive: true);
            }
        }
    }

    private static void RunUtil(params string[] arguments)
    {
        var start = new ProcessStartInfo(Util, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.Environment["SOFTHSM2_CONF"] = ConfigurationPath;
        using var process = Process.Start(start) ?? throw new InvalidOperationException("softhsm2-util did not start.");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(UtilTimeoutMs))
        {
            process.Kill();
            throw new TimeoutException($"softhsm2-util {arguments[0]} did not finish within {UtilTimeoutMs} ms.");
        }

        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"softhsm2-util {arguments[0]} exited with {process.ExitCode}: {output.Result}{error.Result}");
        }
    }

    // Chooses the process's configuration path and points SOFTHSM2_CONF at it, once.
    private static string PlaceConfiguration()
    {
        var path = Path.Combine(Path.GetTempPath(), $"openpurse-softhsm-{System.Environment.ProcessId}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}", "softhsm2.conf");
        System.Environment.SetEnvironmentVariable("SOFTHSM2_CONF", path);
        if (setenv("SOFTHSM2_CONF", path, 1) != 0)
        {
            throw new InvalidOperationException("setenv(SOFTHSM2_CONF) failed.");
        }

        return path;
    }

    private static void WriteConfiguration(string path)
    {
        var directory = Path.GetDirectoryName(path)!;
        if (File.Exists(path))
        {
            return;
        }

        Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var tokens = Directory.CreateDirectory(Path.Combine(directory, "tokens")).FullName;
        File.WriteAllText(path, $"""
            directories.tokendir = {tokens}
            objectstore.backend = file
            log.level = ERROR
            slots.removable = false
            """);
    }

    [DllImport("libc", SetLastError = true, BestFitMapping = false, ThrowOnUnmappableChar = true)]
    private static extern int setenv([MarshalAs(UnmanagedType.LPUTF8Str)] string name, [MarshalAs(UnmanagedType.LPUTF8Str)] string value, int overwrite);
}
