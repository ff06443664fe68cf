using System.Security.Cryptography.X509Certificates;
using OpenPurse.Protocol.Transport;

namespace OpenPurse.Wallet.Http;

/// <summary>
/// Which servers the wallet believes: those the system trusts, and those whose certificate comes
/// from the deployment's CA when the person gives it (<c>--trust ca.crt</c> or
/// <see cref="TrustVariable"/>). The check is <see cref="TrustedRoots"/>, the one the operator and
/// the store make; the wallet never turns it off.
/// </summary>
internal static class WalletTrust
{
    public const string TrustVariable = "OPENPURSE_TRUST";

    /// <summary>Reads the deployment's CA certificate(s) from a PEM file.</summary>
    /// <exception cref="FormatException">The file cannot be read, is too long, or holds no CA certificate; the message says which.</exception>
    public static X509Certificate2Collection Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        try
        {
            if (new FileInfo(path).Length > TrustedRoots.PemLengthMax)
            {
                throw new FormatException($"it is longer than the {TrustedRoots.PemLengthMax} bytes a CA certificate takes");
            }

            return TrustedRoots.Parse(File.ReadAllText(path));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new FormatException(e.Message, e);
        }
    }

    /// <summary>The HTTP stack for the wallet's clients: the system's trust, and <paramref name="roots"/> when given.</summary>
    public static HttpMessageHandler CreateHandler(X509Certificate2Collection? roots) =>
        roots is null ? new SocketsHttpHandler() : TrustedRoots.CreateHandler(roots);
}
