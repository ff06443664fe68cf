using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Channel;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Purse;
using ISession = Net.Pkcs11Interop.HighLevelAPI.ISession;

namespace OpenPurse.Operator.Security;

/// <summary>
/// The security module in a PKCS#11 token (an HSM; SoftHSM2 in tests). The card master key is a
/// sensitive, non-extractable AES-128 key in the token; each card's static keys are derived inside
/// the token as session objects, the SCP03 key derivation runs as CMACs by the token under them,
/// and the operator's ES256 key is a token key pair. See docs/operations.md, "PKCS#11 key vault".
/// </summary>
/// <remarks>
/// <para>
/// Card keys are AN10922 diversified (docs/card.md, "Keys"): with our 31-byte input M, the card
/// key is the plain CMAC of D = 01 ‖ M, two complete blocks D1 ‖ D2, so
/// key = AES(K, AES(K, D1) ⊕ D2 ⊕ K1) with K1 the CMAC subkey of the master K (SP 800-38B §6.1).
/// C_Sign with CKM_AES_CMAC would return that key to this process. Instead the last AES runs as
/// C_DeriveKey with CKM_AES_CBC_ENCRYPT_DATA (IV = AES(K, D1), data = D2 ⊕ K1), whose single
/// output block becomes a new key object. IV and K1 are AES outputs under K on public inputs
/// (C_Encrypt with CKM_AES_ECB): not the master key, not a card key.
/// </para>
/// <para>
/// The master key may do exactly those two things (CKA_ALLOWED_MECHANISMS = CKM_AES_ECB,
/// CKM_AES_CBC_ENCRYPT_DATA); its value can never be read. A holder of the PIN can still
/// compute card keys in clear through the token, as issuance must; the token guards the master
/// key, the PIN guards the token.
/// </para>
/// </remarks>
internal sealed class Pkcs11KeyVault : ISecurityModule, IDisposable
{
    private const byte FirstKeyVersion = 0x01;
    private const int BlockSize = AesCmac.BlockSize;
    private const int Aes128KeyLength = 16;
    private const int Es256SignatureLength = 64;

    // CKA_EC_PARAMS of a named-curve P-256 key: the DER-encoded OID 1.2.840.10045.3.1.7 (RFC 5480 §2.1.1.1).
    private static readonly byte[] s_p256Parameters = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];

    // A card key used at run time: a session object that can only CMAC (the SCP03 KDF's PRF).
    private static readonly CardKeyTemplate s_cardKeyInToken = new(Extractable: false);

    // A card key for personalization: readable once, then destroyed.
    private static readonly CardKeyTemplate s_cardKeyForIssuance = new(Extractable: true);

    private readonly Pkcs11Options _options;
    private readonly Pkcs11Token _token;
    private readonly Lock _lock = new();
    private readonly Dictionary<byte, MasterKeyInToken> _masters = [];
    private readonly Dictionary<string, Pkcs11SigningKey> _signing = new(StringComparer.Ordinal);
    private readonly Pkcs11SigningKey _operatorKey;
    private long _lookedUpAt;

    private Pkcs11KeyVault(Pkcs11Options options, Pkcs11Token token, IObjectHandle master, byte[] masterK1, Pkcs11SigningKey operatorKey)
    {
        _options = options;
        _token = token;
        _masters[FirstKeyVersion] = new MasterKeyInToken(master, masterK1);
        _operatorKey = operatorKey;
        _signing[operatorKey.KeyId] = operatorKey;
    }

    /// <summary>The token's first signing key; which key signs is the registry's to say (<see cref="OperatorKeyRing"/>).</summary>
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

    /// <summary>The token (for tests that read attributes back).</summary>
    internal Pkcs11Token Token => _token;

    /// <summary>The first master key's handle (for tests that read its attributes back).</summary>
    internal IObjectHandle MasterKey => _masters[FirstKeyVersion].Handle;

    /// <summary>The token label of a master key version: the configured label for 01, then "-02", "-03", … appended.</summary>
    public static string MasterKeyLabel(Pkcs11Options options, byte version)
    {
        ArgumentNullException.ThrowIfNull(options);
        return version == FirstKeyVersion ? options.MasterKeyLabel : $"{options.MasterKeyLabel}-{version:X2}";
    }

    /// <summary>Opens the vault in the configured token; creates its keys first when allowed and absent.</summary>
    /// <exception cref="KeyVaultException">No PIN, no token, a refused PIN, missing keys, or keys whose attributes let them leave the token.</exception>
    public static Pkcs11KeyVault Open(Pkcs11Options options, bool createIfMissing) => Open(options, createIfMissing, out _);

    /// <summary>
    /// <c>openpurse-operator vault init</c>: generates, inside the token, whichever of the master key
    /// and the signing key pair is absent, and checks the attributes of both.
    /// </summary>
    /// <returns>What was done, for the operator's console (no secrets).</returns>
    /// <exception cref="KeyVaultException">As for <see cref="Open(Pkcs11Options, bool)"/>.</exception>
    public static string Initialize(Pkcs11Options options)
    {
        ArgumentNullException.ThrowIfNull(options);
        using var vault = Open(options, createIfMissing: true, out var created);
        return $"""
            Token '{options.TokenLabel}':
              card master key '{options.MasterKeyLabel}' version {FirstKeyVersion:X2} (AES-128, sensitive, not extractable): {(created.Master ? "generated" : "already present")}
              operator signing key '{options.SigningKeyLabel}' (EC P-256, ES256): {(created.Signing ? "generated" : "already present")}, kid {vault.OperatorKey.KeyId}
            """;
    }

    private static Pkcs11KeyVault Open(Pkcs11Options options, bool createIfMissing, out (bool Master, bool Signing) created)
    {
        ArgumentNullException.ThrowIfNull(options);
        var token = Pkcs11Token.Open(options);
        try
        {
            var (made, master, privateKey, publicKey) = token.Use(session =>
            {
                var made = createIfMissing ? CreateMissingKeys(session, options) : (false, false);
                return (
                    made,
                    Pkcs11Token.FindOne(session, CKO.CKO_SECRET_KEY, options.MasterKeyLabel),
                    Pkcs11Token.FindOne(session, CKO.CKO_PRIVATE_KEY, options.SigningKeyLabel),
                    Pkcs11Token.FindOne(session, CKO.CKO_PUBLIC_KEY, options.SigningKeyLabel));
            });
            if (master is null || privateKey is null || publicKey is null)
            {
                throw new KeyVaultException($"Token '{options.TokenLabel}' lacks the key '{(master is null ? options.MasterKeyLabel : options.SigningKeyLabel)}'; run `openpurse-operator vault init` first.");
            }

            var k1 = token.Use(session =>
            {
                CheckMasterKey(session, master, options.MasterKeyLabel);
                return MasterSubkey(session, master, options.MasterKeyLabel);
            });
            var signing = token.Use(session => Pkcs11SigningKey.Load(token, session, privateKey, publicKey, options.SigningKeyLabel));
            created = made;
            var vault = new Pkcs11KeyVault(options, token, master, k1, signing);
            vault.LoadMasterKeysAfter(FirstKeyVersion);
            vault.LoadSigningKeys();
            return vault;
        }
        catch
        {
            token.Dispose();
            throw;
        }
    }

    public CardHostSession? OpenCardSession(CardId cardId, ReadOnlySpan<byte> hostChallenge, CardGreeting greeting, out CardAuthenticationError error)
    {
        ArgumentNullException.ThrowIfNull(greeting);
        if (Master(greeting.KeyVersion) is not { } master)
        {
            error = CardAuthenticationError.KeyVersionUnknown;
            return null;
        }

        var challenge = hostChallenge.ToArray();
        var (session, reason) = _token.Use(tokenSession =>
        {
            var enc = DeriveCardKey(tokenSession, master, CardKeyUsage.Encryption, cardId, s_cardKeyInToken);
            try
            {
                var mac = DeriveCardKey(tokenSession, master, CardKeyUsage.Mac, cardId, s_cardKeyInToken);
                try
                {
                    // The SCP03 KDF's PRF is C_Sign(CKM_AES_CMAC) under the card's key objects: the
                    // session keys come back to this process, where the secure channel runs.
                    var opened = CardHostSession.TryOpen(new TokenCmac(tokenSession, enc), new TokenCmac(tokenSession, mac), challenge, greeting, out var failure);
                    return (opened, failure);
                }
                finally
                {
                    tokenSession.DestroyObject(mac);
                }
            }
            finally
            {
                tokenSession.DestroyObject(enc);
            }
        });
        error = reason;
        return session;
    }

    public IssuedCardKeys IssueCardKeys(CardId cardId)
    {
        // For personalization only: the same derivation into extractable session objects, read
        // once and destroyed. This is the one place card keys leave the token on purpose.
        // New cards are personalized under the newest master key.
        var version = MasterKeyVersions[^1];
        var master = Master(version)!;
        var (enc, mac) = _token.Use(session => (ExtractCardKey(session, master, CardKeyUsage.Encryption, cardId), ExtractCardKey(session, master, CardKeyUsage.Mac, cardId)));
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

        // Another process (a station's `key rotate`) may have made it in the token since.
        LoadSigningKeys();
        lock (_lock)
        {
            return _signing.GetValueOrDefault(kid);
        }
    }

    public ISigningKey CreateSigningKey()
    {
        var label = $"{_options.SigningKeyLabel}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}";
        var key = _token.Use(session =>
        {
            GenerateSigningKeyPair(session, label);
            return Pkcs11SigningKey.Load(_token, session, Pkcs11Token.FindOne(session, CKO.CKO_PRIVATE_KEY, label)!, Pkcs11Token.FindOne(session, CKO.CKO_PUBLIC_KEY, label)!, label);
        });
        lock (_lock)
        {
            _signing.TryAdd(key.KeyId, key);
        }

        return key;
    }

    public byte CreateMasterKey()
    {
        LoadMasterKeysAfter(MasterKeyVersions[^1]);
        var version = MasterKeyVersions[^1] + 1;
        if (version > byte.MaxValue)
        {
            throw new KeyVaultException("The card master key is at its last version (FF).");
        }

        var label = MasterKeyLabel(_options, (byte)version);
        _token.Use(session =>
        {
            if (Pkcs11Token.FindOne(session, CKO.CKO_SECRET_KEY, label) is not null)
            {
                throw new KeyVaultException($"Token '{_options.TokenLabel}' holds a key '{label}' already.");
            }

            GenerateMasterKey(session, label);
            return true;
        });
        LoadMasterKeysAfter((byte)(version - 1));
        return MasterKeyVersions[^1] == version ? (byte)version : throw new KeyVaultException($"Master key '{label}' is not in the token after generating it.");
    }

    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var master in _masters.Values)
            {
                CryptographicOperations.ZeroMemory(master.K1);
            }
        }

        _token.Dispose();
    }

    // The master key of a version; one the token gained since (another process's `key rotate-master`)
    // is looked for at most once a second, since a greeting names any version it likes.
    private MasterKeyInToken? Master(byte version)
    {
        lock (_lock)
        {
            if (_masters.TryGetValue(version, out var master))
            {
                return master;
            }
        }

        var now = Environment.TickCount64;
        var last = Interlocked.Read(ref _lookedUpAt);
        if (now - last >= 1000 && Interlocked.CompareExchange(ref _lookedUpAt, now, last) == last)
        {
            LoadMasterKeysAfter(MasterKeyVersions[^1]);
        }

        lock (_lock)
        {
            return _masters.GetValueOrDefault(version);
        }
    }

    // Master key versions are consecutive: 02 after 01, 03 after 02, … up to the first label the token lacks.
    private void LoadMasterKeysAfter(byte newest)
    {
        for (var version = newest + 1; version <= byte.MaxValue; version++)
        {
            var label = MasterKeyLabel(_options, (byte)version);
            var found = _token.Use(session =>
            {
                if (Pkcs11Token.FindOne(session, CKO.CKO_SECRET_KEY, label) is not { } handle)
                {
                    return null;
                }

                CheckMasterKey(session, handle, label);
                return new MasterKeyInToken(handle, MasterSubkey(session, handle, label));
            });
            if (found is null)
            {
                return;
            }

            lock (_lock)
            {
                if (!_masters.TryAdd((byte)version, found))
                {
                    CryptographicOperations.ZeroMemory(found.K1);
                }
            }
        }
    }

    // The rotated signing keys: every key pair labelled "<SigningKeyLabel>-…".
    private void LoadSigningKeys()
    {
        var prefix = _options.SigningKeyLabel + "-";
        var keys = _token.Use(session =>
        {
            var loaded = new List<Pkcs11SigningKey>();
            foreach (var privateKey in session.FindAllObjects([Pkcs11Token.Attributes.Create(CKA.CKA_CLASS, CKO.CKO_PRIVATE_KEY)]))
            {
                var label = session.GetAttributeValue(privateKey, [CKA.CKA_LABEL])[0].GetValueAsString();
                if (label is null || !label.StartsWith(prefix, StringComparison.Ordinal) || Pkcs11Token.FindOne(session, CKO.CKO_PUBLIC_KEY, label) is not { } publicKey)
                {
                    continue;
                }

                loaded.Add(Pkcs11SigningKey.Load(_token, session, privateKey, publicKey, label));
            }

            return loaded;
        });
        lock (_lock)
        {
            foreach (var key in keys)
            {
                _signing.TryAdd(key.KeyId, key);
            }
        }
    }

    /// <summary>The attributes of a generated (or, in tests, imported) master key, without class, type and length.</summary>
    internal static List<IObjectAttribute> MasterKeyAttributes(string label) =>
    [
        Pkcs11Token.Attributes.Create(CKA.CKA_TOKEN, true),
        Pkcs11Token.Attributes.Create(CKA.CKA_PRIVATE, true),
        Pkcs11Token.Attributes.Create(CKA.CKA_LABEL, label),
        Pkcs11Token.Attributes.Create(CKA.CKA_ID, Encoding.UTF8.GetBytes(label)),
        // SoftHSM2 defaults CKA_SENSITIVE to false: say it.
        Pkcs11Token.Attributes.Create(CKA.CKA_SENSITIVE, true),
        Pkcs11Token.Attributes.Create(CKA.CKA_EXTRACTABLE, false),
        Pkcs11Token.Attributes.Create(CKA.CKA_MODIFIABLE, false),
        Pkcs11Token.Attributes.Create(CKA.CKA_COPYABLE, false),
        Pkcs11Token.Attributes.Create(CKA.CKA_ENCRYPT, true),
        Pkcs11Token.Attributes.Create(CKA.CKA_DERIVE, true),
        Pkcs11Token.Attributes.Create(CKA.CKA_DECRYPT, false),
        Pkcs11Token.Attributes.Create(CKA.CKA_SIGN, false),
        Pkcs11Token.Attributes.Create(CKA.CKA_VERIFY, false),
        Pkcs11Token.Attributes.Create(CKA.CKA_WRAP, false),
        Pkcs11Token.Attributes.Create(CKA.CKA_UNWRAP, false),
        Pkcs11Token.Attributes.Create(CKA.CKA_ALLOWED_MECHANISMS, new List<CKM> { CKM.CKM_AES_ECB, CKM.CKM_AES_CBC_ENCRYPT_DATA }),
    ];

    private static (bool Master, bool Signing) CreateMissingKeys(ISession session, Pkcs11Options options)
    {
        var master = false;
        if (Pkcs11Token.FindOne(session, CKO.CKO_SECRET_KEY, options.MasterKeyLabel) is null)
        {
            GenerateMasterKey(session, options.MasterKeyLabel);
            master = true;
        }

        var hasPrivate = Pkcs11Token.FindOne(session, CKO.CKO_PRIVATE_KEY, options.SigningKeyLabel) is not null;
        var hasPublic = Pkcs11Token.FindOne(session, CKO.CKO_PUBLIC_KEY, options.SigningKeyLabel) is not null;
        if (hasPrivate != hasPublic)
        {
            throw new KeyVaultException($"Token '{options.TokenLabel}' holds only half of the key pair '{options.SigningKeyLabel}'; remove it or restore the other half.");
        }

        if (!hasPrivate)
        {
            GenerateSigningKeyPair(session, options.SigningKeyLabel);
        }

        return (master, !hasPrivate);
    }

    private static void GenerateMasterKey(ISession session, string label)
    {
        var attributes = MasterKeyAttributes(label);
        attributes.Add(Pkcs11Token.Attributes.Create(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY));
        attributes.Add(Pkcs11Token.Attributes.Create(CKA.CKA_KEY_TYPE, CKK.CKK_AES));
        attributes.Add(Pkcs11Token.Attributes.Create(CKA.CKA_VALUE_LEN, (ulong)Aes128KeyLength));
        session.GenerateKey(Pkcs11Token.Mechanisms.Create(CKM.CKM_AES_KEY_GEN), attributes);
    }

    private static void GenerateSigningKeyPair(ISession session, string label)
    {
        var id = Encoding.UTF8.GetBytes(label);
        List<IObjectAttribute> publicAttributes =
        [
            Pkcs11Token.Attributes.Create(CKA.CKA_TOKEN, true),
            Pkcs11Token.Attributes.Create(CKA.CKA_PRIVATE, false),
            Pkcs11Token.Attributes.Create(CKA.CKA_LABEL, label),
            Pkcs11Token.Attributes.Create(CKA.CKA_ID, id),
            Pkcs11Token.Attributes.Create(CKA.CKA_EC_PARAMS, s_p256Parameters),
            Pkcs11Token.Attributes.Create(CKA.CKA_VERIFY, true),
            Pkcs11Token.Attributes.Create(CKA.CKA_ENCRYPT, false),
            Pkcs11Token.Attributes.Create(CKA.CKA_WRAP, false),
            Pkcs11Token.Attributes.Create(CKA.CKA_DERIVE, false),
            Pkcs11Token.Attributes.Create(CKA.CKA_MODIFIABLE, false),
        ];
        List<IObjectAttribute> privateAttributes =
        [
            Pkcs11Token.Attributes.Create(CKA.CKA_TOKEN, true),
            Pkcs11Token.Attributes.Create(CKA.CKA_PRIVATE, true),
            Pkcs11Token.Attributes.Create(CKA.CKA_LABEL, label),
            Pkcs11Token.Attributes.Create(CKA.CKA_ID, id),
            Pkcs11Token.Attributes.Create(CKA.CKA_SENSITIVE, true),
            Pkcs11Token.Attributes.Create(CKA.CKA_EXTRACTABLE, false),
            Pkcs11Token.Attributes.Create(CKA.CKA_MODIFIABLE, false),
            Pkcs11Token.Attributes.Create(CKA.CKA_COPYABLE, false),
            Pkcs11Token.Attributes.Create(CKA.CKA_SIGN, true),
            Pkcs11Token.Attributes.Create(CKA.CKA_DECRYPT, false),
            Pkcs11Token.Attributes.Create(CKA.CKA_UNWRAP, false),
            Pkcs11Token.Attributes.Create(CKA.CKA_DERIVE, false),
            Pkcs11Token.Attributes.Create(CKA.CKA_ALLOWED_MECHANISMS, new List<CKM> { CKM.CKM_ECDSA }),
        ];
        session.GenerateKeyPair(Pkcs11Token.Mechanisms.Create(CKM.CKM_EC_KEY_PAIR_GEN), publicAttributes, privateAttributes, out _, out _);
    }

    // Always on: a master key that could leave the token is refused, whoever made it.
    private static void CheckMasterKey(ISession session, IObjectHandle master, string label)
    {
        var attributes = session.GetAttributeValue(master, [CKA.CKA_KEY_TYPE, CKA.CKA_VALUE_LEN, CKA.CKA_SENSITIVE, CKA.CKA_EXTRACTABLE]);
        if (attributes[0].GetValueAsUlong() != (ulong)CKK.CKK_AES || attributes[1].GetValueAsUlong() != Aes128KeyLength)
        {
            throw new KeyVaultException($"The master key '{label}' is not an AES-128 key.");
        }

        if (!attributes[2].GetValueAsBool() || attributes[3].GetValueAsBool())
        {
            throw new KeyVaultException($"The master key '{label}' is not sensitive or is extractable; it must never leave the token. Make a new one with `openpurse-operator vault init`.");
        }
    }

    // K1 = dbl(L), L = AES(K, 0^128) (SP 800-38B §6.1): what the last CMAC block is XORed with.
    private static byte[] MasterSubkey(ISession session, IObjectHandle master, string label)
    {
        byte[] l;
        try
        {
            l = session.Encrypt(Pkcs11Token.Mechanisms.Create(CKM.CKM_AES_ECB), master, new byte[BlockSize]);
        }
        catch (Pkcs11Exception e) when (e.RV is CKR.CKR_KEY_FUNCTION_NOT_PERMITTED or CKR.CKR_MECHANISM_INVALID or CKR.CKR_KEY_TYPE_INCONSISTENT)
        {
            throw new KeyVaultException($"The master key '{label}' does not allow CKM_AES_ECB encryption ({e.RV}), which the in-token diversification needs; see docs/operations.md.");
        }

        var k1 = new byte[BlockSize];
        Double(l, k1);
        CryptographicOperations.ZeroMemory(l);
        return k1;
    }

    private static IObjectHandle DeriveCardKey(ISession session, MasterKeyInToken master, CardKeyUsage usage, CardId cardId, CardKeyTemplate template)
    {
        // D = 01 ‖ M is two complete blocks, so AN10922 here is the plain CMAC (KeyDiversification).
        var d = new byte[2 * BlockSize];
        d[0] = 0x01;
        KeyDiversification.CardKeyInput(usage, cardId).CopyTo(d, 1);
        var iv = session.Encrypt(Pkcs11Token.Mechanisms.Create(CKM.CKM_AES_ECB), master.Handle, d[..BlockSize]);
        var data = new byte[BlockSize];
        for (var i = 0; i < BlockSize; i++)
        {
            data[i] = (byte)(d[BlockSize + i] ^ master.K1[i]);
        }

        Debug.Assert(iv.Length == BlockSize, "ECB of one block is one block.");
        var parameters = Pkcs11Token.MechanismParams.CreateCkAesCbcEncryptDataParams(iv, data);
        var key = session.DeriveKey(Pkcs11Token.Mechanisms.Create(CKM.CKM_AES_CBC_ENCRYPT_DATA, parameters), master.Handle, template.Attributes());
        CryptographicOperations.ZeroMemory(iv);
        CryptographicOperations.ZeroMemory(data);
        return key;
    }

    private static byte[] ExtractCardKey(ISession session, MasterKeyInToken master, CardKeyUsage usage, CardId cardId)
    {
        var handle = DeriveCardKey(session, master, usage, cardId, s_cardKeyForIssuance);
        try
        {
            var value = session.GetAttributeValue(handle, [CKA.CKA_VALUE])[0].GetValueAsByteArray();
            if (value is not { Length: Aes128KeyLength })
            {
                throw new InvalidOperationException("The token derived a card key of the wrong length.");
            }

            return value;
        }
        finally
        {
            session.DestroyObject(handle);
        }
    }

    // Multiplication by x in GF(2^128), as in AesCmac: shift left one bit, 0x87 into the last byte on carry.
    private static void Double(ReadOnlySpan<byte> input, Span<byte> output)
    {
        Debug.Assert(input.Length == BlockSize && output.Length == BlockSize, "One block in, one block out.");
        var carry = input[0] >> 7;
        for (var i = 0; i < BlockSize - 1; i++)
        {
            output[i] = (byte)((input[i] << 1) | (input[i + 1] >> 7));
        }

        output[BlockSize - 1] = (byte)((input[BlockSize - 1] << 1) ^ (0x87 * carry));
    }

    /// <summary>A master key version in the token: its handle, and its CMAC subkey K1 (an AES output, not the key).</summary>
    private sealed record MasterKeyInToken(IObjectHandle Handle, byte[] K1);

    private sealed record CardKeyTemplate(bool Extractable)
    {
        public List<IObjectAttribute> Attributes()
        {
            List<IObjectAttribute> attributes =
            [
                Pkcs11Token.Attributes.Create(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY),
                Pkcs11Token.Attributes.Create(CKA.CKA_KEY_TYPE, CKK.CKK_AES),
                Pkcs11Token.Attributes.Create(CKA.CKA_VALUE_LEN, (ulong)Aes128KeyLength),
                // A session object: gone when its session closes, even if this process dies first.
                Pkcs11Token.Attributes.Create(CKA.CKA_TOKEN, false),
                Pkcs11Token.Attributes.Create(CKA.CKA_PRIVATE, true),
                Pkcs11Token.Attributes.Create(CKA.CKA_SENSITIVE, !Extractable),
                Pkcs11Token.Attributes.Create(CKA.CKA_EXTRACTABLE, Extractable),
                Pkcs11Token.Attributes.Create(CKA.CKA_SIGN, !Extractable),
                Pkcs11Token.Attributes.Create(CKA.CKA_VERIFY, false),
                Pkcs11Token.Attributes.Create(CKA.CKA_ENCRYPT, false),
                Pkcs11Token.Attributes.Create(CKA.CKA_DECRYPT, false),
                Pkcs11Token.Attributes.Create(CKA.CKA_WRAP, false),
                Pkcs11Token.Attributes.Create(CKA.CKA_UNWRAP, false),
                Pkcs11Token.Attributes.Create(CKA.CKA_DERIVE, false),
            ];
            if (!Extractable)
            {
                attributes.Add(Pkcs11Token.Attributes.Create(CKA.CKA_ALLOWED_MECHANISMS, new List<CKM> { CKM.CKM_AES_CMAC }));
            }

            return attributes;
        }
    }

    /// <summary>AES-CMAC computed by the token under a key object (C_Sign with CKM_AES_CMAC).</summary>
    private sealed class TokenCmac(ISession session, IObjectHandle key) : ICmac
    {
        public void Compute(ReadOnlySpan<byte> message, Span<byte> mac)
        {
            if (mac.Length < BlockSize)
            {
                throw new ArgumentException($"The MAC needs {BlockSize} bytes.", nameof(mac));
            }

            var full = session.Sign(Pkcs11Token.Mechanisms.Create(CKM.CKM_AES_CMAC), key, message.ToArray());
            if (full.Length != BlockSize)
            {
                throw new InvalidOperationException($"The token's CMAC has {full.Length} bytes, not {BlockSize}.");
            }

            full.CopyTo(mac);
            CryptographicOperations.ZeroMemory(full);
        }
    }

    /// <summary>The operator's ES256 key pair in the token.</summary>
    private sealed class Pkcs11SigningKey(Pkcs11Token token, IObjectHandle privateKey, JsonWebKey publicKey) : ISigningKey
    {
        public string KeyId => PublicKey.Kid!;

        public JsonWebKey PublicKey { get; } = publicKey;

        public static Pkcs11SigningKey Load(Pkcs11Token token, ISession session, IObjectHandle privateKey, IObjectHandle publicKey, string label)
        {
            var secrecy = session.GetAttributeValue(privateKey, [CKA.CKA_KEY_TYPE, CKA.CKA_SENSITIVE, CKA.CKA_EXTRACTABLE]);
            if (secrecy[0].GetValueAsUlong() != (ulong)CKK.CKK_EC || !secrecy[1].GetValueAsBool() || secrecy[2].GetValueAsBool())
            {
                throw new KeyVaultException($"The signing key '{label}' is not a sensitive, non-extractable EC key.");
            }

            var publicAttributes = session.GetAttributeValue(publicKey, [CKA.CKA_EC_PARAMS, CKA.CKA_EC_POINT]);
            if (!publicAttributes[0].GetValueAsByteArray().AsSpan().SequenceEqual(s_p256Parameters))
            {
                throw new KeyVaultException($"The signing key '{label}' is not on P-256; ES256 needs P-256.");
            }

            using var verifier = ECDsa.Create(new ECParameters { Curve = ECCurve.NamedCurves.nistP256, Q = PublicPoint(publicAttributes[1].GetValueAsByteArray(), label) });
            return new Pkcs11SigningKey(token, privateKey, JsonWebKey.FromECDsa(verifier));
        }

        public byte[] SignEs256(ReadOnlySpan<byte> signingInput)
        {
            // SoftHSM 2.6.1 has no CKM_ECDSA_SHA256 (it came in 2.7.0): hash here, sign the digest there.
            var digest = SHA256.HashData(signingInput);
            var signature = token.Use(session => session.Sign(Pkcs11Token.Mechanisms.Create(CKM.CKM_ECDSA), privateKey, digest));
            // CKM_ECDSA gives r ‖ s, each as long as the order: 64 bytes for P-256, as JWS wants (RFC 7518 §3.4).
            if (signature.Length != Es256SignatureLength)
            {
                throw new CryptographicException($"The token's ECDSA signature has {signature.Length} bytes, not {Es256SignatureLength}.");
            }

            return signature;
        }

        // CKA_EC_POINT is the DER OCTET STRING of the uncompressed point (04 41 ‖ 04 ‖ X ‖ Y);
        // some tokens give the bare point: both are accepted, nothing else.
        private static ECPoint PublicPoint(byte[] ecPoint, string label)
        {
            const int PointLength = 1 + (2 * 32);
            ReadOnlySpan<byte> point = ecPoint.Length == PointLength + 2 && ecPoint[0] == 0x04 && ecPoint[1] == PointLength ? ecPoint.AsSpan(2) : ecPoint;
            if (point.Length != PointLength || point[0] != 0x04)
            {
                throw new KeyVaultException($"The public key '{label}' is not an uncompressed P-256 point.");
            }

            return new ECPoint { X = point.Slice(1, 32).ToArray(), Y = point.Slice(33, 32).ToArray() };
        }
    }
}
