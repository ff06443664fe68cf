using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using OpenPurse.Protocol.Transport;
using OpenPurse.Storage;

namespace OpenPurse.Store;

/// <summary>
/// The store's side of HTTPS between parties (docs/operations.md, HTTPS between parties): it serves its https URLs with the
/// configured certificate, and calls the operator trusting the configured roots besides the
/// system's (<see cref="TrustedRoots"/>, the same check the operator and the wallet make).
/// </summary>
internal static class StoreTls
{
    private const int PemFileLengthMax = TrustedRoots.PemLengthMax;

    private const UnixFileMode GroupOrOthers = PrivateFiles.GroupOrOthers;

    /// <summary>When one of <paramref name="urls"/> is https, serves it with the options' certificate and key.</summary>
    /// <exception cref="ArgumentException">An https URL without <see cref="StoreOptions.TlsCertificatePath"/> and <see cref="StoreOptions.TlsKeyPath"/>.</exception>
    /// <exception cref="InvalidOperationException">The key is open to group or others, or the files are not a certificate and its key.</exception>
    public static void ConfigureKestrel(IWebHostBuilder web, StoreOptions options, IReadOnlyList<string> urls)
    {
        ArgumentNullException.ThrowIfNull(web);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(urls);
        if (!urls.Any(url => url.StartsWith("https://", StringComparison.OrdinalIgnoreCase)))
        {
            return;
        }

        if (string.IsNullOrEmpty(options.TlsCertificatePath) || string.IsNullOrEmpty(options.TlsKeyPath))
        {
            // Never Kestrel's fallback, the developer certificate: a store serves the deployment's own.
            throw new ArgumentException($"The store listens on https ({options.Urls}) and needs TlsCertificatePath and TlsKeyPath.", nameof(options));
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

    /// <summary>The roots of <see cref="StoreOptions.TrustedRootsPath"/>, or null when none are configured.</summary>
    /// <exception cref="InvalidOperationException">The file cannot be read or holds no CA certificate.</exception>
    public static X509Certificate2Collection? LoadTrustedRoots(StoreOptions options)
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
