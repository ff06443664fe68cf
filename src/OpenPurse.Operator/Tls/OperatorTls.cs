using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Hosting;
using OpenPurse.Protocol.Transport;
using OpenPurse.Storage;

namespace OpenPurse.Operator.Tls;

/// <summary>
/// The operator's side of HTTPS between parties (docs/operations.md, HTTPS between parties): it serves its https URLs with the
/// configured certificate, and calls stores trusting the configured roots besides the system's.
/// </summary>
internal static class OperatorTls
{
    /// <summary>A certificate chain or root file of ours is a few kilobytes.</summary>
    private const int PemFileLengthMax = TrustedRoots.PemLengthMax;

    private const UnixFileMode GroupOrOthers = PrivateFiles.GroupOrOthers;

    /// <summary>When an https URL is configured (public or admin), serves it with <see cref="OperatorOptions.TlsCertificatePath"/> and its key.</summary>
    /// <exception cref="InvalidOperationException">An https URL without a certificate and key, a key open to group or others, or files that are not a certificate and its key.</exception>
    public static void ConfigureKestrel(IWebHostBuilder web, OperatorOptions options)
    {
        ArgumentNullException.ThrowIfNull(web);
        ArgumentNullException.ThrowIfNull(options);
        var https = $"{options.Urls};{options.AdminUrls}".Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Any(url => url.StartsWith("https://", StringComparison.OrdinalIgnoreCase));
        if (!https)
        {
            return;
        }

        if (string.IsNullOrEmpty(options.TlsCertificatePath) || string.IsNullOrEmpty(options.TlsKeyPath))
        {
            // Never Kestrel's fallback, the developer certificate: a node serves the deployment's own.
            throw new InvalidOperationException($"The operator listens on https ({options.Urls};{options.AdminUrls}) and needs TlsCertificatePath and TlsKeyPath.");
        }

        var (certificate, chain) = LoadServerCertificate(options.TlsCertificatePath, options.TlsKeyPath);
        web.UseKestrelHttpsConfiguration();
        web.ConfigureKestrel(kestrel => kestrel.ConfigureHttpsDefaults(defaults =>
        {
            defaults.ServerCertificate = certificate;
            // The certificates after the leaf go out with it, so clients need only the root.
            defaults.ServerCertificateChain = chain;
        }));
    }

    /// <summary>The roots of <see cref="OperatorOptions.TrustedRootsPath"/>, or null when none are configured.</summary>
    /// <exception cref="InvalidOperationException">The file cannot be read or holds no CA certificate.</exception>
    public static X509Certificate2Collection? LoadTrustedRoots(OperatorOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrEmpty(options.TrustedRootsPath))
        {
            return null;
        }

        try
        {
            return TrustedRoots.Parse(ReadPem(options.TrustedRootsPath));
        }
        catch (Exception e) when (e is FormatException or IOException or UnauthorizedAccessException)
        {
            throw new InvalidOperationException($"TrustedRootsPath '{options.TrustedRootsPath}': {e.Message}", e);
        }
    }

    private static (X509Certificate2 Certificate, X509Certificate2Collection Chain) LoadServerCertificate(string certificatePath, string keyPath)
    {
        try
        {
            if (!OperatingSystem.IsWindows() && (File.GetUnixFileMode(keyPath) & GroupOrOthers) != 0)
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
}
