using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using OpenPurse.Storage;

namespace OpenPurse.Operator.Tls;

/// <summary>One server certificate made by <see cref="DeploymentCertificates.Create"/>.</summary>
/// <param name="Name">The party it is for, e.g. <c>operator</c>: the files' names.</param>
/// <param name="CertificatePath"><c>&lt;name&gt;.crt</c>: the certificate, then the CA's (PEM).</param>
/// <param name="KeyPath"><c>&lt;name&gt;.key</c>: its private key (PKCS#8 PEM, owner-only).</param>
internal sealed record ServerCertificateFiles(string Name, string CertificatePath, string KeyPath);

/// <summary>What <see cref="DeploymentCertificates.Create"/> made or found.</summary>
/// <param name="CaCertificatePath"><c>ca.crt</c>: what every client trusts.</param>
/// <param name="CaKeyPath"><c>ca.key</c>: the CA's private key (owner-only; keep it offline once the certificates are made).</param>
/// <param name="CaCreated">False when an existing CA issued the certificates.</param>
/// <param name="Servers">The server certificates, in the order asked for.</param>
internal sealed record DeploymentPki(string CaCertificatePath, string CaKeyPath, bool CaCreated, IReadOnlyList<ServerCertificateFiles> Servers);

/// <summary>
/// A deployment's private PKI for HTTPS between its parties (docs/operations.md, HTTPS between parties): one CA (ECDSA P-256,
/// basic constraints CA with path length 0, key usage keyCertSign and cRLSign) that signs one
/// server certificate per party (ECDSA P-256, serverAuth, the DNS names and IP addresses it is
/// reached by). The operator owns it, as it owns the deployment's other keys.
/// </summary>
/// <remarks>
/// An existing CA key is never overwritten: running again issues new server certificates from the
/// same CA, which is how they are renewed. Private keys are written owner-only (0600) through a new
/// file that is then renamed into place, so no key is ever readable by others, even for a moment.
/// </remarks>
internal static class DeploymentCertificates
{
    public const string CaCertificateFile = "ca.crt";
    public const string CaKeyFile = "ca.key";
    public const string CertificateExtension = ".crt";
    public const string KeyExtension = ".key";

    /// <summary>The CA outlives several renewals of the server certificates.</summary>
    public static readonly TimeSpan CaLifetime = TimeSpan.FromDays(5 * 365);

    /// <summary>Server certificates are renewed yearly.</summary>
    public static readonly TimeSpan ServerLifetime = TimeSpan.FromDays(365);

    /// <summary>Certificates are valid from a little before now, for parties whose clocks lag.</summary>
    public static readonly TimeSpan ClockSkewMax = TimeSpan.FromMinutes(5);

    /// <summary>The parties of one deployment, and a bound on what one command makes.</summary>
    public const int NamesMax = 16;

    /// <summary>The host names and addresses one certificate holds.</summary>
    public const int HostsMax = 16;

    private const int NameLengthMax = 63;
    private const int SerialNumberBytes = 16;

    /// <summary>A PEM key file of a P-256 key is about 250 bytes; a larger one is not ours.</summary>
    private const int KeyFileLengthMax = 16 * 1024;

    private const UnixFileMode OwnerOnlyFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode PublicFile = OwnerOnlyFile | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
    private const UnixFileMode OwnerOnlyDirectory = OwnerOnlyFile | UnixFileMode.UserExecute;

    private const UnixFileMode GroupOrOthers = PrivateFiles.GroupOrOthers;

    private const UnixFileMode GroupOrOthersWrite = UnixFileMode.GroupWrite | UnixFileMode.OtherWrite;

    /// <summary>The parties a deployment has when none are named.</summary>
    public static IReadOnlyList<string> DefaultNames { get; } = ["operator", "store"];

    /// <summary>The hosts a certificate names when none are given: this machine.</summary>
    public static IReadOnlyList<string> DefaultHosts { get; } = ["localhost", "127.0.0.1"];

    /// <summary>
    /// Makes the CA in <paramref name="directory"/> unless it is there, and issues a server
    /// certificate for each of <paramref name="names"/> naming <paramref name="hosts"/>.
    /// </summary>
    /// <param name="directory">Where the files go; made owner-only when new.</param>
    /// <param name="names">The parties, e.g. <c>operator</c> and <c>store</c>: lower-case letters, digits and '-'.</param>
    /// <param name="hosts">DNS names and IP addresses the servers are reached by; <see cref="DefaultHosts"/> when null or empty.</param>
    /// <param name="time">The clock; the system's by default.</param>
    /// <exception cref="ArgumentException">No name, too many, a name or host not of its form, or a name twice.</exception>
    /// <exception cref="InvalidOperationException">The directory is writable by group or others; a CA file is there without its pair, is not a CA, or its key is open to group or others; a key file came out readable by others.</exception>
    public static DeploymentPki Create(string directory, IReadOnlyList<string> names, IReadOnlyList<string>? hosts = null, TimeProvider? time = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(names);
        hosts = hosts is null || hosts.Count == 0 ? DefaultHosts : hosts;
        CheckNames(names);
        var subjectAlternativeName = SubjectAlternativeName(hosts);
        var now = (time ?? TimeProvider.System).GetUtcNow();

        directory = CreateDirectory(directory);
        var caCertificatePath = Path.Combine(directory, CaCertificateFile);
        var caKeyPath = Path.Combine(directory, CaKeyFile);
        var caCreated = !File.Exists(caKeyPath) && !File.Exists(caCertificatePath);
        using var ca = caCreated ? CreateCa(caCertificatePath, caKeyPath, now) : LoadCa(caCertificatePath, caKeyPath, now);
        Debug.Assert(ca.HasPrivateKey, "The CA signs with its key.");

        var caPem = ca.ExportCertificatePem();
        var servers = new List<ServerCertificateFiles>(names.Count);
        foreach (var name in names)
        {
            servers.Add(IssueServer(directory, name, subjectAlternativeName, ca, caPem, now));
        }

        Debug.Assert(servers.Count == names.Count, "One certificate per name.");
        return new DeploymentPki(caCertificatePath, caKeyPath, caCreated, servers);
    }

    /// <summary>Whether a party's name is a safe file name: lower-case letters, digits and '-', not <c>ca</c>.</summary>
    public static bool IsValidName(string? name) =>
        name is { Length: > 0 and <= NameLengthMax }
        && name.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-')
        && name[0] != '-'
        && name != "ca";

    private static void CheckNames(IReadOnlyList<string> names)
    {
        if (names.Count is 0 or > NamesMax)
        {
            throw new ArgumentException($"Name 1 to {NamesMax} parties to make certificates for, not {names.Count}.", nameof(names));
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var name in names)
        {
            if (!IsValidName(name))
            {
                throw new ArgumentException($"'{name}' is not a party's name: lower-case letters, digits and '-', at most {NameLengthMax}, and not 'ca'.", nameof(names));
            }

            if (!seen.Add(name))
            {
                throw new ArgumentException($"The name '{name}' is given twice.", nameof(names));
            }
        }
    }

    private static X509Extension SubjectAlternativeName(IReadOnlyList<string> hosts)
    {
        if (hosts.Count > HostsMax)
        {
            throw new ArgumentException($"A certificate names at most {HostsMax} hosts, not {hosts.Count}.", nameof(hosts));
        }

        var builder = new SubjectAlternativeNameBuilder();
        foreach (var host in hosts)
        {
            if (IPAddress.TryParse(host, out var address))
            {
                builder.AddIpAddress(address);
            }
            else if (Uri.CheckHostName(host) == UriHostNameType.Dns && !host.EndsWith('.'))
            {
                builder.AddDnsName(host.ToLowerInvariant());
            }
            else
            {
                throw new ArgumentException($"'{host}' is neither a DNS name nor an IP address.", nameof(hosts));
            }
        }

        return builder.Build(critical: false);
    }

    private static X509Certificate2 CreateCa(string certificatePath, string keyPath, DateTimeOffset now)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        // A random suffix keeps two deployments' CAs apart in a person's trust store and in logs.
        var subject = new X500DistinguishedName($"CN=OpenPurse deployment CA {Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}, O=OpenPurse");
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: true, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, critical: true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        var ca = request.CreateSelfSigned(now - ClockSkewMax, now + CaLifetime);

        // The key first, never over an existing one: a run that stops between the two files leaves
        // a key without a certificate, which the next run refuses rather than replaces.
        WritePrivateKey(keyPath, key, replace: false);
        WriteCertificates(certificatePath, ca.ExportCertificatePem(), replace: false);
        return ca;
    }

    private static X509Certificate2 LoadCa(string certificatePath, string keyPath, DateTimeOffset now)
    {
        if (!File.Exists(keyPath) || !File.Exists(certificatePath))
        {
            throw new InvalidOperationException(
                $"Found only one of {CaCertificateFile} and {CaKeyFile} in '{Path.GetDirectoryName(keyPath)}'. "
                + "A CA is never made over part of another: restore the missing file, or move both away to start a new CA.");
        }

        CheckOwnerOnly(keyPath);
        if (new FileInfo(keyPath).Length > KeyFileLengthMax)
        {
            throw new InvalidOperationException($"'{keyPath}' is not a CA key of ours (longer than {KeyFileLengthMax} bytes).");
        }

        X509Certificate2 ca;
        try
        {
            ca = X509Certificate2.CreateFromPemFile(certificatePath, keyPath);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            // ArgumentException: the key is not the certificate's.
            throw new InvalidOperationException($"'{certificatePath}' and '{keyPath}' are not a certificate and its key: {e.Message}", e);
        }

        if (ca.Extensions.OfType<X509BasicConstraintsExtension>().FirstOrDefault() is not { CertificateAuthority: true }
            || ca.NotAfter.ToUniversalTime() <= now.UtcDateTime)
        {
            var subject = ca.Subject;
            ca.Dispose();
            throw new InvalidOperationException($"'{certificatePath}' ({subject}) is not a CA certificate that is still valid.");
        }

        return ca;
    }

    private static ServerCertificateFiles IssueServer(string directory, string name, X509Extension subjectAlternativeName, X509Certificate2 ca, string caPem, DateTimeOffset now)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedName($"CN={name}, O=OpenPurse"), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: false, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false));
        request.CertificateExtensions.Add(subjectAlternativeName);
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, includeKeyIdentifier: true, includeIssuerAndSerial: false));

        // RFC 5280 §4.1.2.2: a positive serial of at most 20 bytes, unpredictable.
        var serial = RandomNumberGenerator.GetBytes(SerialNumberBytes);
        serial[0] &= 0x7F;
        var notAfter = now + ServerLifetime;
        var caNotAfter = new DateTimeOffset(ca.NotAfter.ToUniversalTime());
        using var server = request.Create(ca, now - ClockSkewMax, notAfter < caNotAfter ? notAfter : caNotAfter, serial);

        var files = new ServerCertificateFiles(name, Path.Combine(directory, name + CertificateExtension), Path.Combine(directory, name + KeyExtension));
        // A renewal replaces the key and then the certificate; a run that stops between them
        // leaves a pair that does not match, which the server refuses at start.
        WritePrivateKey(files.KeyPath, key, replace: true);
        WriteCertificates(files.CertificatePath, server.ExportCertificatePem() + "\n" + caPem, replace: true);
        return files;
    }

    private static string CreateDirectory(string directory)
    {
        if (OperatingSystem.IsWindows())
        {
            return Directory.CreateDirectory(directory).FullName;
        }

        // Only when it is new: an existing directory keeps its owner's mode, if it is safe.
        var info = Directory.CreateDirectory(directory, OwnerOnlyDirectory);
        if ((info.UnixFileMode & GroupOrOthersWrite) != 0 && (info.UnixFileMode & UnixFileMode.StickyBit) == 0)
        {
            throw new InvalidOperationException(
                $"Refusing to write keys into '{info.FullName}': group or others may write there and could replace them (chmod go-w '{info.FullName}').");
        }

        return info.FullName;
    }

    private static void CheckOwnerOnly(string keyPath)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        var mode = File.GetUnixFileMode(keyPath);
        if ((mode & GroupOrOthers) != 0)
        {
            throw new InvalidOperationException(
                $"Refusing the key file '{keyPath}': its mode {Convert.ToString((int)mode, 8)} lets group or others read or change it (chmod 600 '{keyPath}').");
        }
    }

    private static void WritePrivateKey(string path, ECDsa key, bool replace)
    {
        var der = key.ExportPkcs8PrivateKey();
        char[]? pem = null;
        byte[]? bytes = null;
        try
        {
            pem = PemEncoding.Write("PRIVATE KEY", der);
            bytes = Encoding.ASCII.GetBytes(pem);
            WriteFile(path, bytes, OwnerOnlyFile, replace);
        }
        finally
        {
            // The key's copies in memory are wiped; the PEM text never became a string.
            CryptographicOperations.ZeroMemory(der);
            CryptographicOperations.ZeroMemory(System.Runtime.InteropServices.MemoryMarshal.AsBytes(pem.AsSpan()));
            CryptographicOperations.ZeroMemory(bytes);
        }
    }

    private static void WriteCertificates(string path, string pem, bool replace) =>
        WriteFile(path, Encoding.ASCII.GetBytes(pem.EndsWith('\n') ? pem : pem + "\n"), PublicFile, replace);

    // Writes a new file beside the target with its final mode, checks the mode (a key must come out
    // owner-only whatever the umask or file system does), and renames it into place.
    private static void WriteFile(string path, byte[] content, UnixFileMode mode, bool replace)
    {
        var temporary = path + "." + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4)) + ".new";
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = mode;
        }

        try
        {
            using (var stream = new FileStream(temporary, options))
            {
                stream.Write(content);
                stream.Flush(flushToDisk: true);
            }

            if (!OperatingSystem.IsWindows() && mode == OwnerOnlyFile && (File.GetUnixFileMode(temporary) & GroupOrOthers) != 0)
            {
                throw new InvalidOperationException($"Refusing to write the key file '{path}': it came out readable by others (mode {Convert.ToString((int)File.GetUnixFileMode(temporary), 8)}).");
            }

            File.Move(temporary, path, overwrite: replace);
        }
        catch (IOException) when (!replace && File.Exists(path))
        {
            throw new InvalidOperationException($"'{path}' appeared while it was being written; it is left as it is.");
        }
        finally
        {
            File.Delete(temporary);
        }
    }
}
