using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using OpenPurse.Operator.Tls;
using OpenPurse.Protocol.Transport;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// The operator serving HTTPS with the deployment's certificate, and <see cref="TrustedRoots"/>,
/// the one check every party's client makes: the deployment's CA is believed, nothing else more
/// than the system believes it, and never a certificate for another name.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class OperatorTlsTest : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("openpurse-operator-tls-").FullName;
    private readonly List<WebApplication> _apps = [];

    private string Pki => Path.Combine(_directory, "pki");

    [Fact]
    public async Task Https_ClientTrustingTheCa_IsServed()
    {
        var pki = DeploymentCertificates.Create(Pki, ["operator"]);
        var url = await StartOperatorAsync(pki.Servers[0]);
        Assert.Equal("https", url.Scheme);

        using var http = new HttpClient(TrustedRoots.CreateHandler(Roots(pki))) { BaseAddress = url };
        using var response = await http.GetAsync(new Uri("/health", UriKind.Relative));

        Assert.True(response.IsSuccessStatusCode);
    }

    [Fact]
    public async Task Https_ClientWithTheSystemsTrustOnly_Refused()
    {
        var pki = DeploymentCertificates.Create(Pki, ["operator"]);
        var url = await StartOperatorAsync(pki.Servers[0]);

        using var http = new HttpClient(new SocketsHttpHandler()) { BaseAddress = url };
        var refused = await Assert.ThrowsAsync<HttpRequestException>(() => http.GetAsync(new Uri("/health", UriKind.Relative)));

        Assert.Equal(HttpRequestError.SecureConnectionError, refused.HttpRequestError);
    }

    [Fact]
    public async Task Https_CertificateForAnotherName_RefusedByAClientTrustingTheCa()
    {
        var pki = DeploymentCertificates.Create(Pki, ["operator", "wrong"], ["example.invalid"]);
        var url = await StartOperatorAsync(pki.Servers[1]);

        using var http = new HttpClient(TrustedRoots.CreateHandler(Roots(pki))) { BaseAddress = url };
        var refused = await Assert.ThrowsAsync<HttpRequestException>(() => http.GetAsync(new Uri("/health", UriKind.Relative)));

        Assert.Equal(HttpRequestError.SecureConnectionError, refused.HttpRequestError);
    }

    [Fact]
    public async Task BuildAsync_HttpsWithoutCertificate_RefusedRatherThanADeveloperCertificate()
    {
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => OperatorHost.BuildAsync(Options("https://127.0.0.1:0")));

        Assert.Contains("TlsCertificatePath", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BuildAsync_TlsKeyReadableByOthers_Refused()
    {
        var pki = DeploymentCertificates.Create(Pki, ["operator"]);
        File.SetUnixFileMode(pki.Servers[0].KeyPath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);

        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => OperatorHost.BuildAsync(Options("https://127.0.0.1:0") with
        {
            TlsCertificatePath = pki.Servers[0].CertificatePath,
            TlsKeyPath = pki.Servers[0].KeyPath,
        }));

        Assert.Contains("chmod 600", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BuildAsync_TrustedRootsNotACa_Refused()
    {
        var pki = DeploymentCertificates.Create(Pki, ["operator"]);
        var leafOnly = Path.Combine(_directory, "leaf-only.crt");
        await File.WriteAllTextAsync(leafOnly, LeafOnly(pki));

        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => OperatorHost.BuildAsync(Options("http://127.0.0.1:0") with
        {
            TrustedRootsPath = leafOnly,
        }));

        Assert.Contains("not a certificate authority", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_LeafCertificate_RefusedAsNotACa()
    {
        var pki = DeploymentCertificates.Create(Pki, ["operator"]);
        var refused = Assert.Throws<FormatException>(() => TrustedRoots.Parse(LeafOnly(pki)));

        Assert.Contains("not a certificate authority", refused.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("not pem at all")]
    [InlineData("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")]
    public void Parse_NoCertificate_Refused(string pem) =>
        Assert.Throws<FormatException>(() => TrustedRoots.Parse(pem));

    [Fact]
    public void Parse_RootsAtTheLimit_Read_OnePastRefused()
    {
        var ca = File.ReadAllText(DeploymentCertificates.Create(Pki, ["operator"]).CaCertificatePath);

        Assert.Equal(TrustedRoots.RootCountMax, TrustedRoots.Parse(string.Concat(Enumerable.Repeat(ca, TrustedRoots.RootCountMax))).Count);
        Assert.Throws<FormatException>(() => TrustedRoots.Parse(string.Concat(Enumerable.Repeat(ca, TrustedRoots.RootCountMax + 1))));
    }

    [Fact]
    public void Parse_LongerThanTheLimit_Refused() =>
        Assert.Throws<FormatException>(() => TrustedRoots.Parse(new string(' ', TrustedRoots.PemLengthMax + 1)));

    [Fact]
    public void Validate_SystemTrustsAndNameMatches_Accepted()
    {
        var pki = DeploymentCertificates.Create(Pki, ["operator"]);
        using var leaf = X509CertificateLoader.LoadCertificateFromFile(pki.Servers[0].CertificatePath);

        Assert.True(TrustedRoots.Validate(Roots(pki), leaf, null, SslPolicyErrors.None));
    }

    [Fact]
    public void Validate_ChainsToTheRoot_Accepted()
    {
        var pki = DeploymentCertificates.Create(Pki, ["operator"]);
        using var leaf = X509CertificateLoader.LoadCertificateFromFile(pki.Servers[0].CertificatePath);

        Assert.True(TrustedRoots.Validate(Roots(pki), leaf, null, SslPolicyErrors.RemoteCertificateChainErrors));
    }

    [Theory]
    [InlineData(SslPolicyErrors.RemoteCertificateNameMismatch)]
    [InlineData(SslPolicyErrors.RemoteCertificateNameMismatch | SslPolicyErrors.RemoteCertificateChainErrors)]
    [InlineData(SslPolicyErrors.RemoteCertificateNotAvailable)]
    public void Validate_NameMismatchOrNoCertificate_RefusedEvenFromTheCa(SslPolicyErrors errors)
    {
        var pki = DeploymentCertificates.Create(Pki, ["operator"]);
        using var leaf = X509CertificateLoader.LoadCertificateFromFile(pki.Servers[0].CertificatePath);

        Assert.False(TrustedRoots.Validate(Roots(pki), leaf, null, errors));
    }

    [Fact]
    public void Validate_NoCertificate_Refused()
    {
        var pki = DeploymentCertificates.Create(Pki, ["operator"]);

        Assert.False(TrustedRoots.Validate(Roots(pki), null, null, SslPolicyErrors.RemoteCertificateChainErrors));
    }

    [Fact]
    public void Validate_AnotherDeploymentsCa_Refused()
    {
        var ours = DeploymentCertificates.Create(Pki, ["operator"]);
        var theirs = DeploymentCertificates.Create(Path.Combine(_directory, "other"), ["operator"]);
        using var leaf = X509CertificateLoader.LoadCertificateFromFile(theirs.Servers[0].CertificatePath);

        Assert.False(TrustedRoots.Validate(Roots(ours), leaf, null, SslPolicyErrors.RemoteCertificateChainErrors));
    }

    [Fact]
    public void Validate_ExpiredCertificateFromTheCa_Refused()
    {
        // Made two years ago: the CA is still valid, its server certificate of then is not.
        var pki = DeploymentCertificates.Create(Pki, ["operator"], time: new FixedTime(DateTimeOffset.UtcNow.AddDays(-2 * 365)));
        using var leaf = X509CertificateLoader.LoadCertificateFromFile(pki.Servers[0].CertificatePath);

        Assert.False(TrustedRoots.Validate(Roots(pki), leaf, null, SslPolicyErrors.RemoteCertificateChainErrors));
    }

    [Fact]
    public void Validate_ClientCertificateFromTheCa_RefusedForAServer()
    {
        var pki = DeploymentCertificates.Create(Pki, ["operator"]);
        using var leaf = IssueForClients(pki);

        Assert.False(TrustedRoots.Validate(Roots(pki), leaf, null, SslPolicyErrors.RemoteCertificateChainErrors));
    }

    [Fact]
    public void CreateHandler_NoRoots_Refused() =>
        Assert.Throws<ArgumentException>(() => TrustedRoots.CreateHandler([]));

    public Task InitializeAsync() => Task.CompletedTask;

    // xunit 2 disposes test classes through IAsyncLifetime, not IAsyncDisposable.
    public async Task DisposeAsync()
    {
        foreach (var app in _apps)
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }

        Directory.Delete(_directory, recursive: true);
    }

    // The server's certificate without the CA's after it.
    private static string LeafOnly(DeploymentPki pki) =>
        File.ReadAllText(pki.Servers[0].CertificatePath).Split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n";

    private static X509Certificate2Collection Roots(DeploymentPki pki) => TrustedRoots.Parse(File.ReadAllText(pki.CaCertificatePath));

    // A certificate from the deployment's CA that tls init never makes: for TLS clients (id-kp-clientAuth), not servers.
    private static X509Certificate2 IssueForClients(DeploymentPki pki)
    {
        using var ca = X509Certificate2.CreateFromPemFile(pki.CaCertificatePath, pki.CaKeyPath);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=client", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2")], critical: false));
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(System.Net.IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        return request.Create(ca, ca.NotBefore, ca.NotBefore.AddDays(30), RandomNumberGenerator.GetBytes(8));
    }

    private OperatorOptions Options(string urls) => new()
    {
        DataDirectory = Path.Combine(_directory, "operator"),
        CreateVaultIfMissing = true,
        Urls = urls,
        AdminUrls = urls,
    };

    private async Task<Uri> StartOperatorAsync(ServerCertificateFiles certificate)
    {
        var app = await OperatorHost.BuildAsync(Options("https://127.0.0.1:0") with
        {
            TlsCertificatePath = certificate.CertificatePath,
            TlsKeyPath = certificate.KeyPath,
        });
        _apps.Add(app);
        await app.StartAsync();
        return app.Services.GetRequiredService<Api.Listeners>().PublicUrls[0];
    }
}

/// <summary>A clock stopped at one instant.</summary>
internal sealed class FixedTime(DateTimeOffset now) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => now;
}
