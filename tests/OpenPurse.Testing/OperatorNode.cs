using System.Net.Http;

namespace OpenPurse.Testing;

/// <summary>
/// One operator node as its own process (the built openpurse-operator), configured through
/// environment variables as in production, so that it can be killed for real.
/// </summary>
public sealed class OperatorNode : IDisposable
{
    private readonly PartyProcess _process;

    private OperatorNode(PartyProcess process, Uri url, Uri adminUrl)
    {
        _process = process;
        Url = url;
        AdminUrl = adminUrl;
    }

    /// <summary>The node's public listener.</summary>
    public Uri Url { get; }

    /// <summary>The node's admin listener (same scheme as <see cref="Url"/>).</summary>
    public Uri AdminUrl { get; }

    public bool HasExited => _process.HasExited;

    /// <param name="settings">Configuration keys under OpenPurse:Operator (e.g. "DatabaseProvider"), without the prefix.</param>
    /// <param name="environment">Further environment variables (a PIN, SOFTHSM2_CONF).</param>
    /// <param name="scheme">http or https.</param>
    /// <param name="trust">A handler that trusts the node's certificate, for the readiness probe.</param>
    public static async Task<OperatorNode> StartAsync(IReadOnlyDictionary<string, string> settings, IReadOnlyDictionary<string, string>? environment = null, string scheme = "http", HttpMessageHandler? trust = null)
    {
        var port = HaProxy.FreePort();
        var url = new Uri($"{scheme}://127.0.0.1:{port}/");
        var adminUrl = new Uri($"{scheme}://127.0.0.1:{HaProxy.FreePort()}/");
        if (!File.Exists(Path.Combine(AppContext.BaseDirectory, "openpurse-operator.dll")))
        {
            throw new FileNotFoundException("The test project must reference OpenPurse.Operator so that its build is copied beside the tests.", "openpurse-operator.dll");
        }

        var variables = new Dictionary<string, string>
        {
            ["OpenPurse__Operator__Urls"] = url.ToString().TrimEnd('/'),
            // Every request of a test comes from loopback (through HAProxy, from its address):
            // hundreds a second from one client address, which the default rate limit refuses.
            ["OpenPurse__Operator__ClientRequestsPerSecond"] = "1000000",
            ["OpenPurse__Operator__ClientRequestBurst"] = "1000000",
            ["OpenPurse__Operator__AdminUrls"] = adminUrl.ToString().TrimEnd('/'),
        };
        foreach (var (key, value) in settings)
        {
            variables["OpenPurse__Operator__" + key.Replace(":", "__", StringComparison.Ordinal)] = value;
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            variables[key] = value;
        }

        var process = PartyProcess.Start("openpurse-operator", ["serve"], variables);
        try
        {
            await process.WaitReadyAsync(new Uri(url, "/health"), "The operator node", trust);
            return new OperatorNode(process, url, adminUrl);
        }
        catch
        {
            process.Dispose();
            throw;
        }
    }

    /// <summary>Everything the node wrote to its console so far.</summary>
    public string Output => _process.Output;

    /// <summary>Kills the node's process at once, as a crash would.</summary>
    public void Kill() => _process.Kill();

    public void Dispose() => _process.Dispose();
}
