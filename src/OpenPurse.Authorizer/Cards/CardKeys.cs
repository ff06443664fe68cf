using System.Security.Cryptography;
using System.Text;
using OpenPurse.Protocol.Jose;
using OpenPurse.Storage;

namespace OpenPurse.Authorizer.Cards;

/// <summary>
/// The authorizer's two secrets, made on its first start and kept in <c>keys/</c> of its data
/// directory, readable by the owner only: the P-256 key that card data is encrypted to
/// (<c>encryption.p8</c>, PKCS#8, published as a JWK at <c>GET /v1/keys</c>), and the key that turns
/// a card number into its token (<c>token.key</c>, 32 random bytes, HMAC-SHA256). Key bytes are
/// zeroed after use; only the key id is ever logged.
/// </summary>
internal sealed class CardKeys : IDisposable
{
    public const string DirectoryName = "keys";
    public const string EncryptionKeyFile = "encryption.p8";
    public const string TokenKeyFile = "token.key";

    private const int TokenKeyLength = 32;

    /// <summary>A P-256 PKCS#8 key is about 138 bytes; anything far larger is not a key file of ours.</summary>
    private const int KeyFileLengthMax = 4096;

    private readonly ECDiffieHellman _encryption;
    private readonly byte[] _tokenKey;
    private readonly Lock _lock = new();

    private CardKeys(ECDiffieHellman encryption, byte[] tokenKey, bool generated)
    {
        _encryption = encryption;
        _tokenKey = tokenKey;
        PublicKey = Jwe.PublicKeyOf(encryption);
        Set = new JsonWebKeySet([PublicKey]);
        Generated = generated;
    }

    /// <summary>The public encryption key, with its thumbprint as kid.</summary>
    public JsonWebKey PublicKey { get; }

    /// <summary>What <c>GET /v1/keys</c> publishes.</summary>
    public JsonWebKeySet Set { get; }

    /// <summary>Whether the keys were made at this start (for the start-up line).</summary>
    public bool Generated { get; }

    /// <summary>Loads the keys from <paramref name="dataDirectory"/>, making them on first start.</summary>
    /// <exception cref="InvalidOperationException">A key file is open to group or others, or is not a key of its kind.</exception>
    public static CardKeys LoadOrCreate(string dataDirectory)
    {
        ArgumentException.ThrowIfNullOrEmpty(dataDirectory);
        var directory = PrivateFiles.CreateDirectory(Path.Combine(dataDirectory, DirectoryName));
        var encryptionPath = Path.Combine(directory, EncryptionKeyFile);
        var tokenPath = Path.Combine(directory, TokenKeyFile);
        var generated = false;
        if (!File.Exists(encryptionPath))
        {
            using var fresh = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
            WriteSecret(encryptionPath, fresh.ExportPkcs8PrivateKey());
            generated = true;
        }

        if (!File.Exists(tokenPath))
        {
            WriteSecret(tokenPath, RandomNumberGenerator.GetBytes(TokenKeyLength));
            generated = true;
        }

        var tokenKey = PrivateFiles.ReadSecret(tokenPath, KeyFileLengthMax, "a token key");
        if (tokenKey.Length != TokenKeyLength)
        {
            CryptographicOperations.ZeroMemory(tokenKey);
            throw new InvalidOperationException($"The token key file '{tokenPath}' does not hold {TokenKeyLength} bytes.");
        }

        var der = PrivateFiles.ReadSecret(encryptionPath, KeyFileLengthMax, "a P-256 PKCS#8 private key");
        var encryption = ECDiffieHellman.Create();
        try
        {
            encryption.ImportPkcs8PrivateKey(der, out var read);
            if (read != der.Length || encryption.ExportParameters(false).Curve.Oid.Value != ECCurve.NamedCurves.nistP256.Oid.Value)
            {
                throw new CryptographicException("Not a P-256 key alone.");
            }

            return new CardKeys(encryption, tokenKey, generated);
        }
        catch (CryptographicException e)
        {
            encryption.Dispose();
            CryptographicOperations.ZeroMemory(tokenKey);
            throw new InvalidOperationException($"The key file '{encryptionPath}' is not a P-256 PKCS#8 private key: {e.Message}", e);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(der);
        }
    }

    /// <summary>Decrypts card data encrypted to this key.</summary>
    /// <exception cref="JweException">It is not a JWE for this key, or it does not decrypt.</exception>
    public byte[] Decrypt(string compact)
    {
        // An ECDiffieHellman instance is not documented as thread-safe; one key serves every request.
        lock (_lock)
        {
            return Jwe.Decrypt(compact, _encryption, PublicKey.Kid!);
        }
    }

    /// <summary>The card's token: HMAC-SHA256 of the number under the token key, base64url; the number cannot be had back from it.</summary>
    public string TokenOf(string pan) =>
        "tok_" + System.Buffers.Text.Base64Url.EncodeToString(HMACSHA256.HashData(_tokenKey, Encoding.ASCII.GetBytes(pan)));

    public void Dispose()
    {
        _encryption.Dispose();
        CryptographicOperations.ZeroMemory(_tokenKey);
    }

    // A fresh secret goes to its file and is then zeroed; the file is read back like any later start's.
    private static void WriteSecret(string path, byte[] secret)
    {
        try
        {
            PrivateFiles.WriteSecret(path, secret);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
        }
    }
}
