using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using OpenPurse.CommandLine;
using OpenPurse.Operator.Tls;

namespace OpenPurse.Operator.Tests;

/// <summary>The deployment's CA and server certificates (<c>openpurse-operator tls init</c>).</summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class DeploymentCertificatesTest : IDisposable
{
    private const UnixFileMode OwnerReadWrite = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private readonly string _directory = Directory.CreateTempSubdirectory("openpurse-tls-").FullName;

    private string Pki => Path.Combine(_directory, "pki");

    [Fact]
    public void Create_NewDirectory_LeafChainsToTheCaAsCustomRoot()
    {
        var pki = DeploymentCertificates.Create(Pki, ["operator", "store"]);

        Assert.True(pki.CaCreated);
        using var ca = X509CertificateLoader.LoadCertificateFromFile(pki.CaCertificatePath);
        foreach (var server in pki.Servers)
        {
            using var leaf = X509CertificateLoader.LoadCertificateFromFile(server.CertificatePath);
            using var chain = CustomRootChain(ca);
            Assert.True(chain.Build(leaf), string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation)));
            Assert.Equal(2, chain.ChainElements.Count);
            Assert.Equal(ca.Thumbprint, chain.ChainElements[1].Certificate.Thumbprint);
        }
    }

    [Fact]
    public void Create_CaCertificate_IsAConstrainedCaWithKeyIdentifier()
    {
        var pki = DeploymentCertificates.Create(Pki, ["operator"]);

        using var ca = X509CertificateLoader.LoadCertificateFromFile(pki.CaCertificatePath);
        var constraints = Assert.Single(ca.Extensions.OfType<X509BasicConstraintsExtension>());
        Assert.True(constraints.CertificateAuthority);
        Assert.True(constraints.Critical);
        Assert.Equal(0, constraints.PathLengthConstraint);
        var usage = Assert.Single(ca.Extensions.OfType<X509KeyUsageExtension>());
        Assert.Equal(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, usage.KeyUsages);
        Assert.NotNull(Assert.Single(ca.Extensions.OfType<X509SubjectKeyIdentifierExtension>()).SubjectKeyIdentifier);
        using var key = ca.GetECDsaPublicKey()!;
        Assert.Equal(256, key.KeySize);
    }

    [Fact]
    public void Create_ServerCertificate_ServerAuthForTheHostsSignedByTheCaKey()
    {
        var pki = DeploymentCertificates.Create(Pki, ["store"]);

        using var ca = X509CertificateLoader.LoadCertificateFromFile(pki.CaCertificatePath);
        using var leaf = X509CertificateLoader.LoadCertificateFromFile(pki.Servers[0].CertificatePath);
        var san = Assert.Single(leaf.Extensions.OfType<X509SubjectAlternativeNameExtension>());
        Assert.Contains(IPAddress.Loopback, san.EnumerateIPAddresses());
        Assert.Contains("localhost", san.EnumerateDnsNames());
        var eku = Assert.Single(leaf.Extensions.OfType<X509EnhancedKeyUsageExtension>());
        Assert.Equal(["1.3.6.1.5.5.7.3.1"], eku.EnhancedKeyUsages.Cast<Oid>().Select(o => o.Value));
        Assert.False(Assert.Single(leaf.Extensions.OfType<X509BasicConstraintsExtension>()).CertificateAuthority);
        var aki = Assert.Single(leaf.Extensions.OfType<X509AuthorityKeyIdentifierExtension>());
        var ski = Assert.Single(ca.Extensions.OfType<X509SubjectKeyIdentifierExtension>());
        Assert.Equal(Convert.FromHexString(ski.SubjectKeyIdentifier!), aki.KeyIdentifier!.Value.ToArray());
        var lifetime = leaf.NotAfter - leaf.NotBefore;
        Assert.InRange(lifetime, DeploymentCertificates.ServerLifetime, DeploymentCertificates.ServerLifetime + DeploymentCertificates.ClockSkewMax);
    }

    [Fact]
    public void Create_HostsGiven_SanHoldsExactlyThem()
    {
        var pki = DeploymentCertificates.Create(Pki, ["operator"], ["operator.example", "10.0.0.7", "::1"]);

        using var leaf = X509CertificateLoader.LoadCertificateFromFile(pki.Servers[0].CertificatePath);
        var san = Assert.Single(leaf.Extensions.OfType<X509SubjectAlternativeNameExtension>());
        Assert.Equal(["operator.example"], san.EnumerateDnsNames());
        Assert.Equal([IPAddress.Parse("10.0.0.7"), IPAddress.IPv6Loopback], san.EnumerateIPAddresses());
    }

    [Fact]
    public void Create_CertificateFile_IsLeafThenCaAndMatchesItsKey()
    {
        var pki = DeploymentCertificates.Create(Pki, ["operator"]);

        var file = new X509Certificate2Collection();
        file.ImportFromPemFile(pki.Servers[0].CertificatePath);
        using var ca = X509CertificateLoader.LoadCertificateFromFile(pki.CaCertificatePath);
        Assert.Equal(2, file.Count);
        Assert.Equal("CN=operator, O=OpenPurse", file[0].Subject);
        Assert.Equal(ca.Thumbprint, file[1].Thumbprint);
        using var withKey = X509Certificate2.CreateFromPemFile(pki.Servers[0].CertificatePath, pki.Servers[0].KeyPath);
        Assert.True(withKey.HasPrivateKey);
        Assert.Equal(file[0].Thumbprint, withKey.Thumbprint);
    }

    [Fact]
    public void Create_KeyFiles_AreReadableByTheOwnerOnly()
    {
        var pki = DeploymentCertificates.Create(Pki, ["operator", "store"]);

        Assert.Equal(OwnerReadWrite, File.GetUnixFileMode(pki.CaKeyPath));
        Assert.All(pki.Servers, server => Assert.Equal(OwnerReadWrite, File.GetUnixFileMode(server.KeyPath)));
        Assert.Equal(OwnerReadWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Pki));
        // Nothing half-written is left beside them.
        Assert.Equal(["ca.crt", "ca.key", "operator.crt", "operator.key", "store.crt", "store.key"], Directory.GetFiles(Pki).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Create_Again_KeepsTheCaAndIssuesNewServerKeysFromIt()
    {
        var first = DeploymentCertificates.Create(Pki, ["operator"]);
        var caKey = File.ReadAllBytes(first.CaKeyPath);
        var caCertificate = File.ReadAllBytes(first.CaCertificatePath);
        var serverKey = File.ReadAllBytes(first.Servers[0].KeyPath);

        var second = DeploymentCertificates.Create(Pki, ["operator", "wrong"], ["example.invalid"]);

        Assert.False(second.CaCreated);
        Assert.Equal(caKey, File.ReadAllBytes(second.CaKeyPath));
        Assert.Equal(caCertificate, File.ReadAllBytes(second.CaCertificatePath));
        Assert.NotEqual(serverKey, File.ReadAllBytes(second.Servers[0].KeyPath));
        Assert.Equal(OwnerReadWrite, File.GetUnixFileMode(second.Servers[0].KeyPath));
        using var ca = X509CertificateLoader.LoadCertificateFromFile(second.CaCertificatePath);
        using var leaf = X509CertificateLoader.LoadCertificateFromFile(second.Servers[1].CertificatePath);
        using var chain = CustomRootChain(ca);
        Assert.True(chain.Build(leaf));
    }

    [Fact]
    public void Create_CaKeyWithoutCertificate_RefusedAndKeyKept()
    {
        var first = DeploymentCertificates.Create(Pki, ["operator"]);
        var caKey = File.ReadAllBytes(first.CaKeyPath);
        File.Delete(first.CaCertificatePath);

        var refused = Assert.Throws<InvalidOperationException>(() => DeploymentCertificates.Create(Pki, ["operator"]));

        Assert.Contains("ca.crt", refused.Message, StringComparison.Ordinal);
        Assert.Equal(caKey, File.ReadAllBytes(first.CaKeyPath));
        Assert.False(File.Exists(first.CaCertificatePath));
    }

    [Fact]
    public void Create_CaCertificateWithoutKey_RefusedAndNoKeyMade()
    {
        var first = DeploymentCertificates.Create(Pki, ["operator"]);
        File.Delete(first.CaKeyPath);

        Assert.Throws<InvalidOperationException>(() => DeploymentCertificates.Create(Pki, ["operator"]));

        Assert.False(File.Exists(first.CaKeyPath));
    }

    [Fact]
    public void Create_CaKeyReadableByOthers_Refused()
    {
        var first = DeploymentCertificates.Create(Pki, ["operator"]);
        File.SetUnixFileMode(first.CaKeyPath, OwnerReadWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        var refused = Assert.Throws<InvalidOperationException>(() => DeploymentCertificates.Create(Pki, ["store"]));

        Assert.Contains("chmod 600", refused.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(Pki, "store.key")));
    }

    [Fact]
    public void Create_CaKeyOfAnotherCa_RefusedAndKeptAsItIs()
    {
        var ours = DeploymentCertificates.Create(Pki, ["operator"]);
        var theirs = DeploymentCertificates.Create(Path.Combine(_directory, "other"), ["operator"]);
        File.Copy(theirs.CaKeyPath, ours.CaKeyPath, overwrite: true);
        var caKey = File.ReadAllBytes(ours.CaKeyPath);

        var refused = Assert.Throws<InvalidOperationException>(() => DeploymentCertificates.Create(Pki, ["store"]));

        Assert.Contains("not a certificate and its key", refused.Message, StringComparison.Ordinal);
        Assert.Equal(caKey, File.ReadAllBytes(ours.CaKeyPath));
    }

    [Fact]
    public void Create_DirectoryWritableByOthers_RefusedBeforeAnyKey()
    {
        Directory.CreateDirectory(Pki);
        File.SetUnixFileMode(Pki, OwnerReadWrite | UnixFileMode.UserExecute | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute);

        Assert.Throws<InvalidOperationException>(() => DeploymentCertificates.Create(Pki, ["operator"]));

        Assert.Empty(Directory.GetFiles(Pki));
    }

    [Fact]
    public void Create_CaFromAnotherDirectory_DoesNotVerifyTheLeaf()
    {
        var ours = DeploymentCertificates.Create(Pki, ["operator"]);
        var theirs = DeploymentCertificates.Create(Path.Combine(_directory, "other"), ["operator"]);

        using var otherCa = X509CertificateLoader.LoadCertificateFromFile(theirs.CaCertificatePath);
        using var leaf = X509CertificateLoader.LoadCertificateFromFile(ours.Servers[0].CertificatePath);
        using var chain = CustomRootChain(otherCa);
        Assert.False(chain.Build(leaf));
    }

    [Theory]
    [InlineData("ca")]
    [InlineData("Operator")]
    [InlineData("../operator")]
    [InlineData("-x")]
    [InlineData("")]
    public void Create_BadName_Refused(string name)
    {
        Assert.Throws<ArgumentException>(() => DeploymentCertificates.Create(Pki, [name]));

        Assert.False(Directory.Exists(Pki));
    }

    [Fact]
    public void Create_NameTwice_Refused() =>
        Assert.Throws<ArgumentException>(() => DeploymentCertificates.Create(Pki, ["store", "store"]));

    [Theory]
    [InlineData("not a host")]
    [InlineData("*.example")]
    [InlineData("https://example.invalid")]
    public void Create_BadHost_Refused(string host) =>
        Assert.Throws<ArgumentException>(() => DeploymentCertificates.Create(Pki, ["store"], [host]));

    [Fact]
    public void Create_NamesAtTheLimit_AllIssued_OnePastRefused()
    {
        var names = Enumerable.Range(1, DeploymentCertificates.NamesMax).Select(i => $"party-{i}").ToList();

        Assert.Equal(DeploymentCertificates.NamesMax, DeploymentCertificates.Create(Pki, names).Servers.Count);
        Assert.Throws<ArgumentException>(() => DeploymentCertificates.Create(Pki, [.. names, "one-more"]));
    }

    [Fact]
    public void Create_HostsOnePastTheLimit_Refused()
    {
        var hosts = Enumerable.Range(1, DeploymentCertificates.HostsMax + 1).Select(i => $"host-{i}.example").ToList();

        Assert.Throws<ArgumentException>(() => DeploymentCertificates.Create(Pki, ["store"], hosts));
    }

    [Fact]
    public async Task TlsInit_WritesTheFilesAndListsThem()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();

        var exit = await CommandLines.InvokeAsync(OperatorCommandLine.Build(), ["tls", "init", "--out", Pki, "--name", "operator", "--host", "127.0.0.1"], output, error);

        Assert.Equal(CommandLines.ExitOk, exit);
        Assert.Equal("", error.ToString());
        Assert.Contains("Made a new CA", output.ToString(), StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(Pki, "operator.key")));
        Assert.False(File.Exists(Path.Combine(Pki, "store.key")));
    }

    [Theory]
    [InlineData]
    [InlineData("make")]
    [InlineData("init")]
    [InlineData("init", "--out")]
    [InlineData("init", "--out", "x", "--colour", "blue")]
    [InlineData("init", "--out", "x", "--out", "y")]
    public async Task Tls_BadArguments_UsageAndNothingWritten(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();

        var exit = await CommandLines.InvokeAsync(OperatorCommandLine.Build(), ["tls", .. args], output, error);

        Assert.Equal(CommandLines.ExitUsage, exit);
        Assert.Contains("Usage:", error.ToString(), StringComparison.Ordinal);
        Assert.False(Directory.Exists("x"));
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static X509Chain CustomRootChain(X509Certificate2 root)
    {
        var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(root);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.ApplicationPolicy.Add(new Oid("1.3.6.1.5.5.7.3.1"));
        return chain;
    }
}
