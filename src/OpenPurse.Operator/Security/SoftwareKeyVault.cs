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

    /// <summary>The card master key's name in the vault file (version 01; later versions add "-02", "-03", …).</summary>
    public const string MasterKeyLabel = "card-master";

    /// <summary>The operator signing key's name in the vault file (the first key; rotated keys add "-" and a random suffix).</summary>
    public const string SigningKeyLabel = "operator-signing";

    /// <summary>The version of the card keys the first master key diversifies.</summary>
    public const byte MasterKeyVersion = 0x01;

    private readonly Lock _lock = new();
    private readonly string? _directory;
    private readonly Dictionary<byte, AesCmac> _masters = [];
    private readonly Dictionary<string, EcdsaSigningKey> _signing = new(StringComparer.Ordinal);
    private readonly HashSet<string> _loaded = new(StringComparer.Ordinal);
    private readonly EcdsaSigningKey _operatorKey;
    private DateTime _fileWrittenAt;
    private long _reloadedAt;

    private SoftwareKeyVault(string? directory, byte[] master, ECDsa operatorKey)
    {
        _directory = directory;
        _masters[MasterKeyVersion] = new AesCmac(master);
        CryptographicOperations.ZeroMemory(master);
        _operatorKey = new EcdsaSigningKey(operatorKey);
        _signing[_operatorKey.KeyId] = _operatorKey;
        _loaded.Add(MasterKeyLabel);
        _loaded.Add(SigningKeyLabel);
    }

    /// <summary>The vault's first signing key; which key signs is the registry's to say (<see cref="OperatorKeyRing"/>).</summary>
    public ISigningKey OperatorKey => _operatorKey;

    public IReadOnlyList<byte> MasterKeyVersions
    {
        get
        {
            lock (_lock)
            {
                return [.. _masters.Keys.Order()];
            }
        }
    }

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
                [MasterKeyLabel] = Wrap(kekNew, MasterKeyLabel, RandomNumberGenerator.GetBytes(16)),
                [SigningKeyLabel] = Wrap(kekNew, SigningKeyLabel, signing.ExportPkcs8PrivateKey()),
            };
            WriteOwnerOnly(keysPath, JsonSerializer.SerializeToUtf8Bytes(new VaultFile(1, wrapped)));
            CryptographicOperations.ZeroMemory(kekNew);
        }

        var kek = ReadKek(directory);
        try
        {
            var file = ReadFile(keysPath);
            var master = Unwrap(kek, MasterKeyLabel, file.Keys);
            var pkcs8 = Unwrap(kek, SigningKeyLabel, file.Keys);
            var signing = ECDsa.Create();
            signing.ImportPkcs8PrivateKey(pkcs8, out _);
            CryptographicOperations.ZeroMemory(pkcs8);
            var vault = new SoftwareKeyVault(directory, master, signing);
            vault.LoadMore(kek, file);
            return vault;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(kek);
        }
    }

    /// <summary>A vault over given keys, in memory only (tests compare vaults on one master key).</summary>
    /// <param name="master">The AES-128 master key; zeroed here.</param>
    /// <param name="operatorKey">A P-256 private key; owned from here on.</param>
    internal static SoftwareKeyVault FromKeys(byte[] master, ECDsa operatorKey) => new(null, master, operatorKey);

    public CardHostSession? OpenCardSession(CardId cardId, ReadOnlySpan<byte> hostChallenge, CardGreeting greeting, out CardAuthenticationError error)
    {
        ArgumentNullException.ThrowIfNull(greeting);
        if (Diversify(greeting.KeyVersion, cardId) is not var (enc, mac))
        {
            error = CardAuthenticationError.KeyVersionUnknown;
            return null;
        }

        using var staticEnc = new AesCmac(enc);
        using var staticMac = new AesCmac(mac);
        CryptographicOperations.ZeroMemory(enc);
        CryptographicOperations.ZeroMemory(mac);
        return CardHostSession.TryOpen(staticEnc, staticMac, hostChallenge, greeting, out error);
    }

    public IssuedCardKeys IssueCardKeys(CardId cardId)
    {
        // New cards are personalized under the newest master key.
        var version = MasterKeyVersions[^1];
        var (enc, mac) = Diversify(version, cardId) ?? throw new InvalidOperationException("The newest master key went away.");
        return new IssuedCardKeys(cardId, version, enc, mac);
    }

    public ISigningKey? FindSigningKey(string kid)
    {
        ArgumentNullException.ThrowIfNull(kid);
        lock (_lock)
        {
            if (_signing.TryGetValue(kid, out var key))
            {
                return key;
            }
        }

        // Another process (a station's `key rotate`) may have added it to the file since.
        Reload();
        lock (_lock)
        {
            return _signing.GetValueOrDefault(kid);
        }
    }

    public ISigningKey CreateSigningKey()
    {
        using var signing = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var name = $"{SigningKeyLabel}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}";
        AddToFile(name, signing.ExportPkcs8PrivateKey());
        var kid = JsonWebKey.FromECDsa(signing).Kid!;
        return FindSigningKey(kid) ?? throw new KeyVaultException($"The new signing key '{name}' is not in the vault file after writing it.");
    }

    public byte CreateMasterKey()
    {
        Reload();
        var version = MasterKeyVersions[^1] + 1;
        if (version > byte.MaxValue)
        {
            throw new KeyVaultException("The card master key is at its last version (FF).");
        }

        AddToFile(MasterName((byte)version), RandomNumberGenerator.GetBytes(16));
        Reload();
        return MasterKeyVersions[^1] == version ? (byte)version : throw new KeyVaultException($"Master key version {version:X2} is not in the vault file after writing it.");
    }

    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var master in _masters.Values)
            {
                master.Dispose();
            }

            foreach (var key in _signing.Values)
            {
                key.Dispose();
            }

            _masters.Clear();
            _signing.Clear();
        }
    }

    /// <summary>The vault file's name of a master key version: "card-master" for 01, "card-master-02" on.</summary>
    public static string MasterName(byte version) => version == MasterKeyVersion ? MasterKeyLabel : $"{MasterKeyLabel}-{version:X2}";

    private (byte[] Enc, byte[] Mac)? Diversify(byte version, CardId cardId)
    {
        if (!HasMaster(version))
        {
            // A card personalized since this node opened the vault (another node's `key rotate-master`).
            ReloadAtMostEverySecond();
        }

        var enc = new byte[16];
        var mac = new byte[16];
        lock (_lock)
        {
            if (!_masters.TryGetValue(version, out var master))
            {
                return null;
            }

            KeyDiversification.An10922Aes128(master, KeyDiversification.CardKeyInput(CardKeyUsage.Encryption, cardId), enc);
            KeyDiversification.An10922Aes128(master, KeyDiversification.CardKeyInput(CardKeyUsage.Mac, cardId), mac);
        }

        return (enc, mac);
    }

    private bool HasMaster(byte version)
    {
        lock (_lock)
        {
            return _masters.ContainsKey(version);
        }
    }

    // A greeting names any version it likes: an unknown one reads the file again at most once a second, and only when it changed.
    private void ReloadAtMostEverySecond()
    {
        var now = Environment.TickCount64;
        var last = Interlocked.Read(ref _reloadedAt);
        if (now - last < 1000 || Interlocked.CompareExchange(ref _reloadedAt, now, last) != last)
        {
            return;
        }

        Reload();
    }

    private void Reload()
    {
        if (_directory is null)
        {
            return;
        }

        var keysPath = Path.Combine(_directory, KeysFile);
        lock (_lock)
        {
            if (File.GetLastWriteTimeUtc(keysPath) == _fileWrittenAt)
            {
                return;
            }
        }

        var kek = ReadKek(_directory);
        try
        {
            LoadMore(kek, ReadFile(keysPath));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(kek);
        }
    }

    // The file's keys not yet in memory: master key versions and rotated signing keys.
    private void LoadMore(byte[] kek, VaultFile file)
    {
        lock (_lock)
        {
            if (_directory is not null)
            {
                _fileWrittenAt = File.GetLastWriteTimeUtc(Path.Combine(_directory, KeysFile));
            }

            foreach (var name in file.Keys.Keys.Where(n => !_loaded.Contains(n)))
            {
                if (name.StartsWith(MasterKeyLabel + "-", StringComparison.Ordinal)
                    && byte.TryParse(name.AsSpan(MasterKeyLabel.Length + 1), System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture, out var version)
                    && MasterName(version) == name)
                {
                    var master = Unwrap(kek, name, file.Keys);
                    _masters[version] = new AesCmac(master);
                    CryptographicOperations.ZeroMemory(master);
                }
                else if (name.StartsWith(SigningKeyLabel + "-", StringComparison.Ordinal))
                {
                    var pkcs8 = Unwrap(kek, name, file.Keys);
                    var signing = ECDsa.Create();
                    signing.ImportPkcs8PrivateKey(pkcs8, out _);
                    CryptographicOperations.ZeroMemory(pkcs8);
                    var key = new EcdsaSigningKey(signing);
                    if (!_signing.TryAdd(key.KeyId, key))
                    {
                        key.Dispose();
                    }
                }

                _loaded.Add(name);
            }
        }
    }

    // Rewrites the file with one more key: a new file beside it, then renamed over it, so that a
    // node reading it meanwhile sees the old or the new file whole. One station at a time.
    private void AddToFile(string name, byte[] key)
    {
        var directory = _directory ?? throw new InvalidOperationException("An in-memory vault has no file to add keys to.");
        var keysPath = Path.Combine(directory, KeysFile);
        var kek = ReadKek(directory);
        try
        {
            var file = ReadFile(keysPath);
            var keys = new Dictionary<string, WrappedKey>(file.Keys, StringComparer.Ordinal);
            if (!keys.TryAdd(name, Wrap(kek, name, key)))
            {
                throw new KeyVaultException($"The key vault holds a key named '{name}' already.");
            }

            var newPath = keysPath + ".new";
            File.Delete(newPath);
            WriteOwnerOnly(newPath, JsonSerializer.SerializeToUtf8Bytes(file with { Keys = keys }));
            File.Move(newPath, keysPath, overwrite: true);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(kek);
            CryptographicOperations.ZeroMemory(key);
        }
    }

    private static VaultFile ReadFile(string keysPath)
    {
        CheckOwnerOnly(keysPath);
        try
        {
            return JsonSerializer.Deserialize<VaultFile>(File.ReadAllBytes(keysPath)) ?? throw new KeyVaultException("The key vault file is empty.");
        }
        catch (JsonException)
        {
            throw new KeyVaultException("The key vault file is not readable.");
        }
    }

    private static byte[] ReadKek(string directory)
    {
        if (Environment.GetEnvironmentVariable(KekEnvironmentVariable) is { } fromEnvironment)
        {
            return DecodeKek(fromEnvironment);
        }

        var kekPath = Path.Combine(directory, KekFile);
        CheckOwnerOnly(kekPath);
        return File.ReadAllBytes(kekPath);
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
