using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Hosting;
using OpenPurse.Protocol.Transport;
using OpenPurse.Storage;

namespace OpenPurse.Hosting;

/// <summary>
/// A server's side of HTTPS between parties (docs/operations.md, HTTPS between parties), the same
/// for the operator and the store: it serves its https URLs with the deployment's certificate,
/// never Kestrel's development one, and calls the other parties trusting the deployment's roots
/// besides the system's (<see cref="TrustedRoots"/>, the check the wallet makes too).
/// </summary>
internal static class ServerTls
{
    /// <summary>A certificate chain or root file of ours is a few kilobytes.</summary>
    private const int PemFileLengthMax = TrustedRoots.PemLengthMax;

    /// <summary>When one of <paramref name="urls"/> is https, serves it with the certificate and key given.</summary>
    /// <param name="web">The server's web host.</param>
    /// <param name="party">Who listens, for the error: "the operator", "the store".</param>
    /// <param name="urls">Every URL the server listens on.</param>
    /// <param name="certificatePath">PEM certificate chain, the server's first.</param>
    /// <param name="keyPath">PEM private key of the certificate; readable by its owner only.</param>
    /// <exception cref="InvalidOperationException">An https URL without a certificate and key, a key open to group or others, or files that are not a certificate and its key.</exception>
    public static void ConfigureKestrel(IWebHostBuilder web, string party, IEnumerable<string> urls, string? certificatePath, string? keyPath)
    {
        ArgumentNullException.ThrowIfNull(web);
        ArgumentNullException.ThrowIfNull(urls);
        var listening = urls.ToList();
        if (!listening.Any(url => url.StartsWith("https://", StringComparison.OrdinalIgnoreCase)))
        {
            return;
        }

        if (string.IsNullOrEmpty(certificatePath) || string.IsNullOrEmpty(keyPath))
        {
            // Never Kestrel's fallback, the developer certificate: a server serves the deployment's own.
            throw new InvalidOperationException($"{Capitalized(party)} listens on https ({string.Join(';', listening)}) and needs TlsCertificatePath and TlsKeyPath.");
        }

        var (certificate, chain) = LoadServerCertificate(certificatePath, keyPath);
        web.UseKestrelHttpsConfiguration();
        web.ConfigureKestrel(kestrel => kestrel.ConfigureHttpsDefaults(defaults =>
        {
            defaults.ServerCertificate = certificate;
            // The certificates after the leaf go out with it, so clients need only the root.
            defaults.ServerCertificateChain = chain;
        }));
    }

    /// <summary>The roots in <paramref name="path"/>, or null when none are configured.</summary>
    /// <exception cref="InvalidOperationException">The file cannot be read or holds no CA certificate.</exception>
    public static X509Certificate2Collection? LoadTrustedRoots(string? path)
    {
        if (string.IsNullOrEmpty(path))
        {
            return null;
        }

        try
        {
            return TrustedRoots.Parse(ReadPem(path));
        }
        catch (Exception e) when (e is FormatException or IOException or UnauthorizedAccessException)
        {
            throw new InvalidOperationException($"TrustedRootsPath '{path}': {e.Message}", e);
        }
    }

    private static (X509Certificate2 Certificate, X509Certificate2Collection Chain) LoadServerCertificate(string certificatePath, string keyPath)
    {
        try
        {
            if (!OperatingSystem.IsWindows() && (File.GetUnixFileMode(keyPath) & PrivateFiles.GroupOrOthers) != 0)
            {
                throw new InvalidOperationException($"Refusing the TLS key file '{keyPath}': group or others may read or change it (chmod 600 '{keyPath}').");
            }

            var chain = new X509Certificate2Collection();
            chain.ImportFromPem(ReadPem(certificatePath));
            // Throws ArgumentException when the key is not the certificate's.
            var certificate = X509Certificate2.CreateFromPemFile(certificatePath, keyPath);
            chain.RemoveRange(chain.Find(X509FindType.FindByThumbprint, certificate.Thumbprint, validOnly: false));
            return (certificate, chain);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException or IOException or UnauthorizedAccessException or FormatException)
        {
            throw new InvalidOperationException($"TlsCertificatePath '{certificatePath}' and TlsKeyPath '{keyPath}' are not a PEM certificate and its key: {e.Message}", e);
        }
    }

    private static string ReadPem(string path)
    {
        if (new FileInfo(path).Length > PemFileLengthMax)
        {
            throw new FormatException($"'{path}' is longer than the {PemFileLengthMax} bytes a PEM file of ours takes.");
        }

        return File.ReadAllText(path);
    }

    private static string Capitalized(string party) => party.Length == 0 ? party : char.ToUpperInvariant(party[0]) + party[1..];
}
