using System.Diagnostics;
using System.Net.Http;

namespace OpenPurse.Testing;

/// <summary>
/// One operator node as its own process (the built openpurse-operator), configured through
/// environment variables as in production, so that it can be killed for real.
/// </summary>
public sealed class OperatorNode : IDisposable
{
    private readonly Process _process;

    private OperatorNode(Process process, Uri url)
    {
        _process = process;
        Url = url;
    }

    public Uri Url { get; }

    public bool HasExited => _process.HasExited;

    /// <param name="settings">Configuration keys under OpenPurse:Operator (e.g. "DatabaseProvider"), without the prefix.</param>
    /// <param name="environment">Further environment variables (a PIN, SOFTHSM2_CONF).</param>
    /// <param name="scheme">http or https.</param>
    /// <param name="trust">A handler that trusts the node's certificate, for the readiness probe.</param>
    public static async Task<OperatorNode> StartAsync(IReadOnlyDictionary<string, string> settings, IReadOnlyDictionary<string, string>? environment = null, string scheme = "http", HttpMessageHandler? trust = null)
    {
        var port = HaProxy.FreePort();
        var url = new Uri($"{scheme}://127.0.0.1:{port}/");
        var operatorDll = Path.Combine(AppContext.BaseDirectory, "openpurse-operator.dll");
        if (!File.Exists(operatorDll))
        {
            throw new FileNotFoundException("The test project must reference OpenPurse.Operator so that its build is copied beside the tests.", operatorDll);
        }

        var start = new ProcessStartInfo("dotnet", ["exec", operatorDll])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["OpenPurse__Operator__Urls"] = url.ToString().TrimEnd('/');
        foreach (var (key, value) in settings)
        {
            start.Environment["OpenPurse__Operator__" + key.Replace(":", "__", StringComparison.Ordinal)] = value;
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[key] = value;
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("The operator node did not start.");
        var output = new System.Collections.Concurrent.ConcurrentQueue<string>();
        process.OutputDataReceived += (_, e) => Keep(output, e.Data);
        process.ErrorDataReceived += (_, e) => Keep(output, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        using var probe = new HttpClient(trust ?? new HttpClientHandler(), disposeHandler: trust is null) { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"The operator node exited with {process.ExitCode}: {string.Join('\n', output)}");
            }

            try
            {
                using var response = await probe.GetAsync(new Uri(url, "/health"));
                if (response.IsSuccessStatusCode)
                {
                    return new OperatorNode(process, url);
                }
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                // Not listening yet.
            }

            await Task.Delay(100);
        }

        process.Kill(entireProcessTree: true);
        throw new TimeoutException($"The operator node did not answer /health within 30 s: {string.Join('\n', output)}");
    }

    /// <summary>Kills the node's process at once, as a crash would.</summary>
    public void Kill()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(5_000);
        }
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }

    private static void Keep(System.Collections.Concurrent.ConcurrentQueue<string> output, string? line)
    {
        if (line is null)
        {
            return;
        }

        output.Enqueue(line);
        while (output.Count > 200)
        {
            output.TryDequeue(out _);
        }
    }
}
