using System.Net;
using System.Runtime.Versioning;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Configuration;
using OpenPurse.Protocol.Transport;

namespace OpenPurse.Store.Tests;

/// <summary>The store on HTTPS (docs/operations.md, HTTPS between parties): its certificate, its settings, and the refusals at start-up.</summary>
[UnsupportedOSPlatform("windows")]
public sealed class TlsTest : IAsyncLifetime
{
    private readonly TempDirectory _directory = new();
    private FakeOperator _operator = null!;

    public async Task InitializeAsync() => _operator = await FakeOperator.StartAsync();

    public async Task DisposeAsync()
    {
        await _operator.DisposeAsync();
        _directory.Dispose();
    }

    [Fact]
    public async Task Start_HttpsWithCertificate_ServesClientsTrustingItsCa()
    {
        var (caPath, certificatePath, keyPath) = MakeCertificates("127.0.0.1");
        await using var store = await TestStore.StartAsync(Options("https://127.0.0.1:0") with { TlsCertificatePath = certificatePath, TlsKeyPath = keyPath }, _operator);
        var url = new Uri(StoreHost.BoundAddress(store.App), "/v1/catalog");
        Assert.Equal(Uri.UriSchemeHttps, url.Scheme);

        using var trusting = new HttpClient(TrustedRoots.CreateHandler(TrustedRoots.Parse(await File.ReadAllTextAsync(caPath))));
        using var response = await trusting.GetAsync(url);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        using var systemOnly = new HttpClient(new SocketsHttpHandler());
        var refused = await Assert.ThrowsAsync<HttpRequestException>(() => systemOnly.GetAsync(url));
        Assert.Equal(HttpRequestError.SecureConnectionError, refused.HttpRequestError);
    }

    [Fact]
    public void Build_HttpsWithoutCertificate_Refused()
    {
        var refusal = Assert.Throws<InvalidOperationException>(() => StoreHost.Build(Options("https://127.0.0.1:0")));

        Assert.Contains("TlsCertificatePath", refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Build_HttpsOnAnotherInterface_StillRefusedAsNotLoopback()
    {
        var (_, certificatePath, keyPath) = MakeCertificates("127.0.0.1");

        var refusal = Assert.Throws<ArgumentException>(() => StoreHost.Build(Options("https://0.0.0.0:0") with { TlsCertificatePath = certificatePath, TlsKeyPath = keyPath }));

        Assert.Contains("loopback", refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Build_TlsKeyReadableByOthers_Refused()
    {
        var (_, certificatePath, keyPath) = MakeCertificates("127.0.0.1");
        File.SetUnixFileMode(keyPath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);

        var refusal = Assert.Throws<InvalidOperationException>(() => StoreHost.Build(Options("https://127.0.0.1:0") with { TlsCertificatePath = certificatePath, TlsKeyPath = keyPath }));

        Assert.Contains("chmod 600", refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Build_KeyOfAnotherCertificate_Refused()
    {
        var (_, certificatePath, _) = MakeCertificates("127.0.0.1");
        var (_, _, otherKeyPath) = MakeCertificates("127.0.0.1", "other");

        Assert.Throws<InvalidOperationException>(() => StoreHost.Build(Options("https://127.0.0.1:0") with { TlsCertificatePath = certificatePath, TlsKeyPath = otherKeyPath }));
    }

    [Fact]
    public void Build_TrustedRootsMissing_Refused()
    {
        var refusal = Assert.Throws<InvalidOperationException>(() => StoreHost.Build(Options("http://127.0.0.1:0") with { TrustedRootsPath = Path.Combine(_directory.Path, "missing.crt") }));

        Assert.Contains("TrustedRootsPath", refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Configuration_TlsSettings_AreRead()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Store:OperatorUrl"] = "https://127.0.0.1:5443",
            ["Store:Urls"] = "https://127.0.0.1:5091",
            ["Store:TlsCertificatePath"] = "/etc/openpurse/tls/store.crt",
            ["Store:TlsKeyPath"] = "/etc/openpurse/tls/store.key",
            ["Store:TrustedRootsPath"] = "/etc/openpurse/tls/ca.crt",
            ["Store:Members:0:StoreId"] = "s",
            ["Store:Members:0:Name"] = "S",
        }).Build();

        var options = StoreConfiguration.Read(configuration.GetSection(StoreConfiguration.SectionName));

        Assert.Equal("/etc/openpurse/tls/store.crt", options.TlsCertificatePath);
        Assert.Equal("/etc/openpurse/tls/store.key", options.TlsKeyPath);
        Assert.Equal("/etc/openpurse/tls/ca.crt", options.TrustedRootsPath);
    }

    [Fact]
    public void Configuration_NoTlsSettings_AreNull()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Store:OperatorUrl"] = "http://127.0.0.1:5080",
            ["Store:Members:0:StoreId"] = "s",
            ["Store:Members:0:Name"] = "S",
        }).Build();

        var options = StoreConfiguration.Read(configuration.GetSection(StoreConfiguration.SectionName));

        Assert.Null(options.TlsCertificatePath);
        Assert.Null(options.TlsKeyPath);
        Assert.Null(options.TrustedRootsPath);
    }

    private StoreOptions Options(string urls) =>
        TestStore.OptionsFor(_operator, Path.Combine(_directory.Path, "store")) with { Urls = urls };

    // A CA and a server certificate for one host, as openpurse-operator tls init makes them (that
    // command lives with the operator, which the store does not reference).
    private (string CaPath, string CertificatePath, string KeyPath) MakeCertificates(string host, string name = "store")
    {
        var now = DateTimeOffset.UtcNow;
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=test CA " + name, caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, critical: true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, critical: true));
        using var ca = caRequest.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(30));

        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=" + name, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false));
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Parse(host));
        request.CertificateExtensions.Add(san.Build());
        using var server = request.Create(ca, now.AddMinutes(-5), now.AddDays(7), RandomNumberGenerator.GetBytes(8));

        var caPath = Path.Combine(_directory.Path, name + "-ca.crt");
        var certificatePath = Path.Combine(_directory.Path, name + ".crt");
        var keyPath = Path.Combine(_directory.Path, name + ".key");
        File.WriteAllText(caPath, ca.ExportCertificatePem());
        File.WriteAllText(certificatePath, server.ExportCertificatePem() + "\n" + ca.ExportCertificatePem());
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
        File.SetUnixFileMode(keyPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return (caPath, certificatePath, keyPath);
    }
}
