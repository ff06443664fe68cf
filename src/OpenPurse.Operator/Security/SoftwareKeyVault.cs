using System.Security.Cryptography;
using System.Text.Json;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Channel;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Purse;
using OpenPurse.Storage;

namespace OpenPurse.Operator.Security;

/// <summary>
/// The embedded security module: keys in a file, wrapped at rest with AES-256-GCM under a
/// key-encryption key (KEK) that lives in another file or in the environment. Both files must be
/// readable by their owner only; the vault refuses to open otherwise.
/// </summary>
/// <remarks>
/// In this vault the master key is in process memory while the operator runs; the PKCS#11 vault
/// keeps it inside a token instead. Either way nothing here ever logs or returns it.
/// </remarks>
internal sealed class SoftwareKeyVault : ISecurityModule, IDisposable
{
    public const string KekEnvironmentVariable = "OPENPURSE_VAULT_KEK";
    private const string KeysFile = "vault.keys";
    private const string KekFile = "vault.kek";
    private const byte KeyVersion = 0x01;

    /// <summary>The card master key's name in the vault file.</summary>
    public const string MasterKeyLabel = "card-master";

    /// <summary>The operator signing key's name in the vault file.</summary>
    public const string SigningKeyLabel = "operator-signing";

    /// <summary>The version of the card keys the master key diversifies (the cards' key version).</summary>
    public const byte MasterKeyVersion = KeyVersion;

    private readonly Lock _masterLock = new();
    private readonly AesCmac _master;
    private readonly EcdsaSigningKey _operatorKey;

    private SoftwareKeyVault(byte[] master, ECDsa operatorKey)
    {
        _master = new AesCmac(master);
        CryptographicOperations.ZeroMemory(master);
        _operatorKey = new EcdsaSigningKey(operatorKey);
    }

    public ISigningKey OperatorKey => _operatorKey;

    /// <summary>Whether a vault file is in the directory (it may still be unreadable).</summary>
    public static bool Exists(string directory) => File.Exists(Path.Combine(directory, KeysFile));

    /// <summary>Opens the vault in a directory, creating keys and KEK on first use when allowed.</summary>
    /// <exception cref="KeyVaultException">Missing, unreadable, tampered, or too widely readable files.</exception>
    public static SoftwareKeyVault Open(string directory, bool createIfMissing)
    {
        PrivateFiles.CreateDirectory(directory);
        var keysPath = Path.Combine(directory, KeysFile);
        var kekPath = Path.Combine(directory, KekFile);
        var kekFromEnvironment = Environment.GetEnvironmentVariable(KekEnvironmentVariable);
        if (!File.Exists(keysPath))
        {
            if (!createIfMissing)
            {
                throw new KeyVaultException($"No key vault at {keysPath}; initialize one first.");
            }

            var kekNew = kekFromEnvironment is null ? RandomNumberGenerator.GetBytes(32) : DecodeKek(kekFromEnvironment);
            if (kekFromEnvironment is null)
            {
                WriteOwnerOnly(kekPath, kekNew);
            }

            using var signing = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var wrapped = new Dictionary<string, WrappedKey>
            {
                ["card-master"] = Wrap(kekNew, "card-master", RandomNumberGenerator.GetBytes(16)),
                ["operator-signing"] = Wrap(kekNew, "operator-signing", signing.ExportPkcs8PrivateKey()),
            };
            WriteOwnerOnly(keysPath, JsonSerializer.SerializeToUtf8Bytes(new VaultFile(1, wrapped)));
            CryptographicOperations.ZeroMemory(kekNew);
        }

        CheckOwnerOnly(keysPath);
        byte[] kek;
        if (kekFromEnvironment is not null)
        {
            kek = DecodeKek(kekFromEnvironment);
        }
        else
        {
            CheckOwnerOnly(kekPath);
            kek = File.ReadAllBytes(kekPath);
        }

        try
        {
            var file = JsonSerializer.Deserialize<VaultFile>(File.ReadAllBytes(keysPath)) ?? throw new KeyVaultException("The key vault file is empty.");
            var master = Unwrap(kek, "card-master", file.Keys);
            var pkcs8 = Unwrap(kek, "operator-signing", file.Keys);
            var signing = ECDsa.Create();
            signing.ImportPkcs8PrivateKey(pkcs8, out _);
            CryptographicOperations.ZeroMemory(pkcs8);
            return new SoftwareKeyVault(master, signing);
        }
        catch (JsonException)
        {
            throw new KeyVaultException("The key vault file is not readable.");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(kek);
        }
    }

    /// <summary>A vault over given keys, in memory only (tests compare vaults on one master key).</summary>
    /// <param name="master">The AES-128 master key; zeroed here.</param>
    /// <param name="operatorKey">A P-256 private key; owned from here on.</param>
    internal static SoftwareKeyVault FromKeys(byte[] master, ECDsa operatorKey) => new(master, operatorKey);

    public CardHostSession? OpenCardSession(CardId cardId, ReadOnlySpan<byte> hostChallenge, CardGreeting greeting, out CardAuthenticationError error)
    {
        var (enc, mac) = Diversify(cardId);
        using var staticEnc = new AesCmac(enc);
        using var staticMac = new AesCmac(mac);
        CryptographicOperations.ZeroMemory(enc);
        CryptographicOperations.ZeroMemory(mac);
        return CardHostSession.TryOpen(staticEnc, staticMac, hostChallenge, greeting, out error);
    }

    public IssuedCardKeys IssueCardKeys(CardId cardId)
    {
        var (enc, mac) = Diversify(cardId);
        return new IssuedCardKeys(cardId, KeyVersion, enc, mac);
    }

    public void Dispose()
    {
        _master.Dispose();
        _operatorKey.Dispose();
    }

    private (byte[] Enc, byte[] Mac) Diversify(CardId cardId)
    {
        var enc = new byte[16];
        var mac = new byte[16];
        lock (_masterLock)
        {
            KeyDiversification.An10922Aes128(_master, KeyDiversification.CardKeyInput(CardKeyUsage.Encryption, cardId), enc);
            KeyDiversification.An10922Aes128(_master, KeyDiversification.CardKeyInput(CardKeyUsage.Mac, cardId), mac);
        }

        return (enc, mac);
    }

    private static byte[] DecodeKek(string base64)
    {
        try
        {
            var kek = Convert.FromBase64String(base64);
            return kek.Length == 32 ? kek : throw new KeyVaultException($"{KekEnvironmentVariable} must hold 32 bytes in base64.");
        }
        catch (FormatException)
        {
            throw new KeyVaultException($"{KekEnvironmentVariable} is not base64.");
        }
    }

    private static WrappedKey Wrap(byte[] kek, string name, byte[] key)
    {
        using var gcm = new AesGcm(kek, AesGcm.TagByteSizes.MaxSize);
        var nonce = RandomNumberGenerator.GetBytes(AesGcm.NonceByteSizes.MaxSize);
        var ciphertext = new byte[key.Length];
        var tag = new byte[AesGcm.TagByteSizes.MaxSize];
        // The key's name is authenticated too, so wrapped keys cannot be swapped between entries.
        gcm.Encrypt(nonce, key, ciphertext, tag, System.Text.Encoding.UTF8.GetBytes(name));
        CryptographicOperations.ZeroMemory(key);
        return new WrappedKey(nonce, ciphertext, tag);
    }

    private static byte[] Unwrap(byte[] kek, string name, IReadOnlyDictionary<string, WrappedKey> keys)
    {
        if (!keys.TryGetValue(name, out var wrapped))
        {
            throw new KeyVaultException($"The key vault holds no '{name}' key.");
        }

        using var gcm = new AesGcm(kek, AesGcm.TagByteSizes.MaxSize);
        var key = new byte[wrapped.Ciphertext.Length];
        try
        {
            gcm.Decrypt(wrapped.Nonce, wrapped.Ciphertext, wrapped.Tag, key, System.Text.Encoding.UTF8.GetBytes(name));
        }
        catch (AuthenticationTagMismatchException)
        {
            throw new KeyVaultException($"The '{name}' key does not open under this key-encryption key (wrong KEK, or the file was changed).");
        }

        return key;
    }

    private static void WriteOwnerOnly(string path, byte[] bytes)
    {
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = PrivateFiles.OwnerOnlyFile;
        }

        using var stream = new FileStream(path, options);
        stream.Write(bytes);
        stream.Flush(flushToDisk: true);
    }

    private static void CheckOwnerOnly(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        var mode = File.GetUnixFileMode(path);
        if ((mode & PrivateFiles.GroupOrOthers) != 0)
        {
            throw new KeyVaultException($"{path} is readable by others (mode {Convert.ToString((int)mode, 8)}); key files must be 0600.");
        }
    }

    private sealed record VaultFile(int Version, Dictionary<string, WrappedKey> Keys);

    private sealed record WrappedKey(byte[] Nonce, byte[] Ciphertext, byte[] Tag);
}
