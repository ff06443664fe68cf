using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using OpenPurse.Wallet.Cli;
using OpenPurse.Wallet.Http;
using OpenPurse.Wallet.Tests.Fakes;
using Spectre.Console.Testing;

namespace OpenPurse.Wallet.Tests;

/// <summary>
/// <c>openpurse pay --trust ca.crt</c> (or OPENPURSE_TRUST): the deployment's CA the wallet trusts
/// besides the system's. A file that is not a CA certificate stops the wallet before any request.
/// </summary>
public sealed class TrustOptionTest : IDisposable
{
    private readonly WalletKit _kit = new();
    private readonly TestConsole _console = new();
    private readonly Dictionary<string, string> _environment = new(StringComparer.Ordinal);
    private readonly string _directory = Directory.CreateTempSubdirectory("openpurse-trust-").FullName;

    public TrustOptionTest() => _console.Width(200);

    [Fact]
    public async Task Pay_TrustIsACaCertificate_Pays()
    {
        var exit = await PayAsync("--trust", WriteCertificate("ca.crt", certificateAuthority: true));

        Assert.Equal(WalletCli.ExitOk, exit);
        Assert.Equal(WalletKit.Eur(8_750), _kit.Balance());
    }

    [Fact]
    public async Task Pay_TrustFromEnvironment_Pays()
    {
        _environment[WalletTrust.TrustVariable] = WriteCertificate("ca.crt", certificateAuthority: true);

        var exit = await PayAsync();

        Assert.Equal(WalletCli.ExitOk, exit);
    }

    [Fact]
    public async Task Pay_TrustFileMissing_UsageErrorBeforeAnyRequest()
    {
        var exit = await PayAsync("--trust", Path.Combine(_directory, "missing.crt"));

        Assert.Equal(WalletCli.ExitUsage, exit);
        Assert.Contains("--trust", _console.Output, StringComparison.Ordinal);
        Assert.Contains("missing.crt", _console.Output, StringComparison.Ordinal);
        Assert.Empty(_kit.Store.Requests);
        Assert.Empty(_kit.Operator.Requests);
        Assert.Equal(WalletKit.Eur(10_000), _kit.Balance());
    }

    [Fact]
    public async Task Pay_TrustIsAServerCertificate_UsageErrorNamingIt()
    {
        _environment[WalletTrust.TrustVariable] = WriteCertificate("server.crt", certificateAuthority: false);

        var exit = await PayAsync();

        Assert.Equal(WalletCli.ExitUsage, exit);
        Assert.Contains("not a certificate authority", _console.Output, StringComparison.Ordinal);
        Assert.Empty(_kit.Store.Requests);
    }

    [Fact]
    public async Task Pay_TrustIsNotPem_UsageError()
    {
        var path = Path.Combine(_directory, "garbage.crt");
        await File.WriteAllTextAsync(path, "not a certificate");

        var exit = await PayAsync("--trust", path);

        Assert.Equal(WalletCli.ExitUsage, exit);
        Assert.Empty(_kit.Store.Requests);
    }

    public void Dispose()
    {
        _kit.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private Task<int> PayAsync(params string[] extra) => WalletCli.RunAsync(
        ["pay", "--store", WalletKit.StoreUri.ToString(), "--operator", WalletKit.OperatorUri.ToString(), "--item", FakeStore.Sku, "--yes", .. extra],
        new WalletCliContext
        {
            Console = _console,
            Environment = name => _environment.GetValueOrDefault(name),
            HomeDirectory = "/nonexistent-home",
            HttpHandler = new RouterHandler(new Dictionary<string, HttpMessageHandler>
            {
                [WalletKit.StoreUri.Host] = _kit.Store,
                [WalletKit.OperatorUri.Host] = _kit.Operator,
            }),
            OpenReader = _ => _kit.Reader,
        });

    private string WriteCertificate(string name, bool certificateAuthority)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=test " + name, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority, false, 0, critical: true));
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        var path = Path.Combine(_directory, name);
        File.WriteAllText(path, certificate.ExportCertificatePem());
        return path;
    }
}
