using System.Diagnostics;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace OpenPurse.Protocol.Transport;

/// <summary>
/// How every party's HTTP client trusts a deployment's own certificate authority (docs/operations.md,
/// "HTTPS between parties"): a server is accepted when the system trusts its certificate, or when
/// its certificate chains to one of the configured roots for server authentication; in both cases
/// the certificate must name the host the client asked for. Checks are never turned off.
/// </summary>
/// <remarks>
/// The operator (calling stores), the store (calling the operator) and the wallet (calling both)
/// use this one class, so that the three cannot drift apart in what they accept. It parses and
/// checks only; reading the roots' file is the caller's, as this library performs no I/O.
/// </remarks>
public static class TrustedRoots
{
    /// <summary>The most root certificates one configuration may hold: a deployment has one CA, perhaps two while it rolls over.</summary>
    public const int RootCountMax = 16;

    /// <summary>The longest PEM text read: a P-256 CA certificate is well under a kilobyte.</summary>
    public const int PemLengthMax = 64 * 1024;

    // RFC 5280 §4.2.1.12: id-kp-serverAuth.
    private const string ServerAuthenticationOid = "1.3.6.1.5.5.7.3.1";

    /// <summary>Reads the root certificates of a PEM text (other PEM blocks, such as keys, are ignored).</summary>
    /// <param name="pem">One or more <c>-----BEGIN CERTIFICATE-----</c> blocks.</param>
    /// <returns>The roots, each a certificate authority.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="pem"/> is null.</exception>
    /// <exception cref="FormatException">The text is longer than <see cref="PemLengthMax"/>, holds no certificate or more than <see cref="RootCountMax"/>, a block is not a certificate, or a certificate is not a certificate authority.</exception>
    public static X509Certificate2Collection Parse(string pem)
    {
        ArgumentNullException.ThrowIfNull(pem);
        if (pem.Length > PemLengthMax)
        {
            throw new FormatException($"The trusted roots are {pem.Length} characters of PEM, more than the {PemLengthMax} read.");
        }

        var roots = new X509Certificate2Collection();
        try
        {
            roots.ImportFromPem(pem);
        }
        catch (CryptographicException e)
        {
            throw new FormatException("The trusted roots are not PEM certificates: " + e.Message, e);
        }

        if (roots.Count is 0 or > RootCountMax)
        {
            throw new FormatException($"The trusted roots hold {roots.Count} certificates; 1 to {RootCountMax} are read.");
        }

        foreach (var root in roots)
        {
            // A server certificate given as a root is a configuration mistake (the file of the wrong
            // party): name it here rather than let it pin one server or fail every connection later.
            if (root.Extensions.OfType<X509BasicConstraintsExtension>().FirstOrDefault() is not { CertificateAuthority: true })
            {
                throw new FormatException($"The trusted root '{root.Subject}' is not a certificate authority (no basic constraints CA=true).");
            }
        }

        return roots;
    }

    /// <summary>
    /// Whether a server's certificate is accepted: it names the host asked for, and the system
    /// trusts it or it chains to one of <paramref name="roots"/> with the server-authentication
    /// purpose, within its validity. Revocation is not checked: a private deployment CA publishes
    /// no revocation lists, and its certificates live a year.
    /// </summary>
    /// <param name="roots">The deployment's roots, from <see cref="Parse"/>.</param>
    /// <param name="certificate">The server's certificate, as TLS gave it.</param>
    /// <param name="chain">The chain the system built, whose extra store holds the certificates the server sent.</param>
    /// <param name="errors">What the system's own check found.</param>
    /// <exception cref="ArgumentNullException"><paramref name="roots"/> is null.</exception>
    public static bool Validate(X509Certificate2Collection roots, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        ArgumentNullException.ThrowIfNull(roots);
        if (certificate is not X509Certificate2 leaf
            || (errors & (SslPolicyErrors.RemoteCertificateNotAvailable | SslPolicyErrors.RemoteCertificateNameMismatch)) != 0)
        {
            return false;
        }

        if (errors == SslPolicyErrors.None)
        {
            return true;
        }

        Debug.Assert(errors == SslPolicyErrors.RemoteCertificateChainErrors, "Name and availability errors were refused above.");
        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.CustomTrustStore.AddRange(roots);
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        custom.ChainPolicy.DisableCertificateDownloads = true;
        custom.ChainPolicy.ApplicationPolicy.Add(new Oid(ServerAuthenticationOid));
        if (chain is not null)
        {
            // Intermediates the server sent; none of them is trusted for being here.
            custom.ChainPolicy.ExtraStore.AddRange(chain.ChainPolicy.ExtraStore);
        }

        return custom.Build(leaf);
    }

    /// <summary>An HTTP handler whose TLS connections accept servers as <see cref="Validate"/> does.</summary>
    /// <param name="roots">The deployment's roots, from <see cref="Parse"/>; kept, not copied.</param>
    /// <exception cref="ArgumentNullException"><paramref name="roots"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="roots"/> is empty.</exception>
    public static SocketsHttpHandler CreateHandler(X509Certificate2Collection roots)
    {
        ArgumentNullException.ThrowIfNull(roots);
        if (roots.Count == 0)
        {
            throw new ArgumentException("A handler that trusts no root would refuse every private certificate; give the deployment's CA.", nameof(roots));
        }

        return new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, certificate, chain, errors) => Validate(roots, certificate, chain, errors),
            },
        };
    }
}
