using System.Diagnostics;
using System.Security.Cryptography;
using OpenPurse.Protocol.Jose;
using OpenPurse.Storage;

namespace OpenPurse.Store.Keys;

/// <summary>
/// The member stores' ES256 keys, which sign bills (SIG1) and receipts (SIG4): one per store, made
/// on first start and kept in <c>keys/&lt;storeId&gt;.p8</c> (PKCS#8 DER) readable by the owner only.
/// </summary>
/// <remarks>Key bytes are zeroed after use and never written anywhere else; only key ids are logged.</remarks>
internal sealed class MemberKeys : IDisposable
{
    public const string DirectoryName = "keys";
    public const string FileExtension = ".p8";

    /// <summary>A P-256 PKCS#8 key is about 138 bytes; anything far larger is not a key file of ours.</summary>
    private const int KeyFileLengthMax = 4096;

    private readonly Dictionary<string, EcdsaSigningKey> _byStore;
    private readonly Dictionary<string, JsonWebKeySet> _setByStore;

    private MemberKeys(Dictionary<string, EcdsaSigningKey> byStore, IReadOnlyList<string> generated)
    {
        _byStore = byStore;
        _setByStore = byStore.ToDictionary(p => p.Key, p => new JsonWebKeySet([p.Value.PublicKey]), StringComparer.Ordinal);
        Set = new JsonWebKeySet(byStore.Values.Select(k => k.PublicKey));
        Generated = generated;
    }

    /// <summary>Every member store's public key: what <c>/.well-known/jwks.json</c> publishes.</summary>
    public JsonWebKeySet Set { get; }

    /// <summary>The stores whose key was made at this start (for the start-up log).</summary>
    public IReadOnlyList<string> Generated { get; }

    public IEnumerable<string> StoreIds => _byStore.Keys;

    /// <summary>The signing key of one store.</summary>
    /// <exception cref="KeyNotFoundException">The store is not served here (a bug: callers look the store up first).</exception>
    public ISigningKey For(string storeId) => _byStore[storeId];

    /// <summary>The key set holding only one store's key, to check what that store signed.</summary>
    public JsonWebKeySet SetFor(string storeId) => _setByStore[storeId];

    /// <summary>Loads each store's key, making the missing ones.</summary>
    /// <exception cref="InvalidOperationException">A key file is open to group or others, or is not a P-256 PKCS#8 key.</exception>
    public static MemberKeys LoadOrCreate(string dataDirectory, IEnumerable<string> storeIds)
    {
        ArgumentException.ThrowIfNullOrEmpty(dataDirectory);
        ArgumentNullException.ThrowIfNull(storeIds);
        var directory = Path.Combine(dataDirectory, DirectoryName);
        PrivateFiles.CreateDirectory(directory);

        var keys = new Dictionary<string, EcdsaSigningKey>(StringComparer.Ordinal);
        var generated = new List<string>();
        try
        {
            foreach (var storeId in storeIds)
            {
                // Store ids were checked to be [a-z0-9-]: safe as a file name, no path separators.
                Debug.Assert(Catalog.StoreDirectory.IsValidId(storeId), "Store ids are validated before their keys are loaded.");
                var path = Path.Combine(directory, storeId + FileExtension);
                if (!File.Exists(path))
                {
                    Generate(path);
                    generated.Add(storeId);
                }

                keys.Add(storeId, Load(path));
            }

            return new MemberKeys(keys, generated);
        }
        catch
        {
            foreach (var key in keys.Values)
            {
                key.Dispose();
            }

            throw;
        }
    }

    public void Dispose()
    {
        foreach (var key in _byStore.Values)
        {
            key.Dispose();
        }
    }

    private static EcdsaSigningKey Load(string path)
    {
        var der = PrivateFiles.ReadSecret(path, KeyFileLengthMax, "a P-256 PKCS#8 private key");
        var ecdsa = ECDsa.Create();
        try
        {
            ecdsa.ImportPkcs8PrivateKey(der, out var read);
            if (read != der.Length)
            {
                throw new CryptographicException("Trailing bytes after the key.");
            }

            return new EcdsaSigningKey(ecdsa);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            // ArgumentException: a valid key on another curve (EcdsaSigningKey takes P-256 only).
            ecdsa.Dispose();
            throw new InvalidOperationException($"The key file '{path}' is not a P-256 PKCS#8 private key: {e.Message}", e);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(der);
        }
    }

    private static void Generate(string path)
    {
        using var ecdsa = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var der = ecdsa.ExportPkcs8PrivateKey();
        try
        {
            PrivateFiles.WriteSecret(path, der);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(der);
        }
    }
}
