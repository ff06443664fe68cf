using System.Security.Cryptography;
using OpenPurse.Card;
using OpenPurse.Operator.Security;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Purse;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// What every key vault must do, whatever holds its keys: the checks run once per vault kind
/// through the subclasses (<see cref="SoftwareKeyVaultContractTest"/>, <see cref="Pkcs11KeyVaultContractTest"/>),
/// whose test methods carry the attribute their kind needs.
/// </summary>
public abstract class KeyVaultContract : IDisposable
{
    private const int CardOffsetCryptogram = 10 + 3 + 8;
    private const int CardOffsetCounterLastByte = 10 + 3 + 8 + 8 + 4 + CardId.Length + 3; // after the 4-byte session counter
    private const int ConcurrentUsers = 24;

    private readonly string _directory = Directory.CreateTempSubdirectory("openpurse-vault-contract-").FullName;
    private int _cards;

    /// <summary>Opens the vault under test: the first call creates its keys, later calls open the same ones.</summary>
    internal abstract ISecurityModule Open();

    public virtual void Dispose()
    {
        Directory.Delete(_directory, recursive: true);
        GC.SuppressFinalize(this);
    }

    /// <summary>A card personalized with the vault's keys greets; the vault accepts it and the card accepts the vault's EXTERNAL AUTHENTICATE; a changed greeting is refused.</summary>
    protected void IssuedCard_Greeting_GenuineAcceptedTamperedRefusedContract()
    {
        using var opened = new Opened(Open());
        var cardId = CardId.FromSerial(940_000_000_000_101);
        using var card = Personalize(opened.Vault.IssueCardKeys(cardId));

        var (hostChallenge, answer) = Greet(card);
        Assert.True(CardGreeting.TryParse(answer, out var greeting));
        using (var session = opened.Vault.OpenCardSession(cardId, hostChallenge, greeting, out var error))
        {
            Assert.True(session is not null, $"The genuine greeting was refused: {error}.");
            Assert.Equal(StatusWord.Ok, Transmit(card, session.ExternalAuthenticate()).Status);
            Assert.True(session.TryUnwrap(Transmit(card, session.ReadPurse()), out var purse));
            Assert.Equal(StatusWord.Ok, purse.Status);
        }

        var (challenge2, answer2) = Greet(card);
        var changedCryptogram = answer2.ToArray();
        changedCryptogram[CardOffsetCryptogram] ^= 0x01;
        Assert.True(CardGreeting.TryParse(changedCryptogram, out var forged));
        Assert.Null(opened.Vault.OpenCardSession(cardId, challenge2, forged, out var cryptogramError));
        Assert.Equal(CardAuthenticationError.CardCryptogramInvalid, cryptogramError);

        var changedCounter = answer2.ToArray();
        changedCounter[CardOffsetCounterLastByte] ^= 0x01;
        Assert.True(CardGreeting.TryParse(changedCounter, out var misread));
        Assert.Null(opened.Vault.OpenCardSession(cardId, challenge2, misread, out var statusError));
        Assert.Equal(CardAuthenticationError.StatusMacInvalid, statusError);

        // The same genuine answer under another host challenge is a replay: refused too.
        Assert.True(CardGreeting.TryParse(answer2, out var replayed));
        Assert.Null(opened.Vault.OpenCardSession(cardId, RandomNumberGenerator.GetBytes(8), replayed, out var replayError));
        Assert.Equal(CardAuthenticationError.CardCryptogramInvalid, replayError);
    }

    /// <summary>The operator key signs JWS that verify with its published JWK, whose kid is its RFC 7638 thumbprint.</summary>
    protected void OperatorKey_Jws_VerifiesWithPublishedJwkContract()
    {
        using var opened = new Opened(Open());
        var key = opened.Vault.OperatorKey;
        var payload = "{\"settlement\":\"0190f2a4\"}"u8.ToArray();

        var jws = Jws.Sign(key, payload, "openpurse-test+jws");

        Assert.Equal(key.PublicKey.Thumbprint(), key.KeyId);
        Assert.True(Jws.TryVerify(jws, new JsonWebKeySet([key.PublicKey]), "openpurse-test+jws", out var verified, out var error), error.ToString());
        Assert.Equal(payload, verified);
        var parts = jws.Split('.');
        var otherSignature = Jws.Sign(key, "{}"u8, "openpurse-test+jws").Split('.')[2];
        Assert.False(Jws.TryVerify($"{parts[0]}.{parts[1]}.{otherSignature}", key.PublicKey, "openpurse-test+jws", out _, out var forgedError));
        Assert.Equal(JwsError.BadSignature, forgedError);
    }

    /// <summary>Each card gets its own pair of keys, and its two keys differ.</summary>
    protected void IssueCardKeys_TwoCards_KeysDifferContract()
    {
        using var opened = new Opened(Open());

        var a = opened.Vault.IssueCardKeys(CardId.FromSerial(940_000_000_000_001));
        var b = opened.Vault.IssueCardKeys(CardId.FromSerial(940_000_000_000_002));

        Assert.Equal((16, 16), (a.EncKey.Length, a.MacKey.Length));
        Assert.NotEqual(a.EncKey, b.EncKey);
        Assert.NotEqual(a.MacKey, b.MacKey);
        Assert.NotEqual(a.EncKey, a.MacKey);
        Assert.Equal(a.EncKey, opened.Vault.IssueCardKeys(CardId.FromSerial(940_000_000_000_001)).EncKey);
    }

    /// <summary>Closing and opening the vault again gives the same signing key and the same card keys.</summary>
    protected void Open_Reopened_SameKeysContract()
    {
        var cardId = CardId.FromSerial(940_000_000_000_003);
        string kid;
        IssuedCardKeys keys;
        using (var first = new Opened(Open()))
        {
            kid = first.Vault.OperatorKey.KeyId;
            keys = first.Vault.IssueCardKeys(cardId);
        }

        using var reopened = new Opened(Open());
        var again = reopened.Vault.IssueCardKeys(cardId);

        Assert.Equal(kid, reopened.Vault.OperatorKey.KeyId);
        Assert.Equal(keys.EncKey, again.EncKey);
        Assert.Equal(keys.MacKey, again.MacKey);
        Assert.Equal(keys.KeyVersion, again.KeyVersion);
        using var card = Personalize(keys);
        var (hostChallenge, answer) = Greet(card);
        Assert.True(CardGreeting.TryParse(answer, out var greeting));
        using var session = reopened.Vault.OpenCardSession(cardId, hostChallenge, greeting, out var error);
        Assert.True(session is not null, $"The reopened vault refused the card: {error}.");
    }

    /// <summary>One vault serves many requests at once (an operator node does).</summary>
    protected void OpenCardSessionAndSign_Concurrently_AllSucceedContract()
    {
        using var opened = new Opened(Open());
        var cardId = CardId.FromSerial(940_000_000_000_004);
        var keys = opened.Vault.IssueCardKeys(cardId);
        var greetings = new List<(byte[] HostChallenge, CardGreeting Greeting)>();
        using (var card = Personalize(keys))
        {
            for (var i = 0; i < ConcurrentUsers; i++)
            {
                var (hostChallenge, answer) = Greet(card);
                Assert.True(CardGreeting.TryParse(answer, out var greeting));
                greetings.Add((hostChallenge, greeting));
            }
        }

        var failures = 0;
        Parallel.For(0, ConcurrentUsers, new ParallelOptions { MaxDegreeOfParallelism = ConcurrentUsers }, i =>
        {
            using var session = opened.Vault.OpenCardSession(cardId, greetings[i].HostChallenge, greetings[i].Greeting, out _);
            var jws = Jws.Sign(opened.Vault.OperatorKey, [(byte)i], "openpurse-test+jws");
            if (session is null || !Jws.TryVerify(jws, opened.Vault.OperatorKey.PublicKey, "openpurse-test+jws", out _, out _))
            {
                Interlocked.Increment(ref failures);
            }
        });

        Assert.Equal(0, failures);
    }

    /// <summary>
    /// <c>key rotate</c>: a second signing key in the vault, found by its kid by another instance on
    /// the same storage (another node) and after reopening; the first key stays the vault's own.
    /// </summary>
    protected void CreateSigningKey_FoundByKid_InAnotherInstanceAndAfterReopenContract()
    {
        string kid;
        string first;
        using (var station = new Opened(Open()))
        using (var node = new Opened(Open()))
        {
            first = node.Vault.OperatorKey.KeyId;
            var created = station.Vault.CreateSigningKey();
            kid = created.KeyId;
            var found = node.Vault.FindSigningKey(kid);

            Assert.NotEqual(first, kid);
            Assert.NotNull(found);
            var jws = Jws.Sign(found, "{}"u8, "openpurse-test+jws");
            Assert.True(Jws.TryVerify(jws, created.PublicKey, "openpurse-test+jws", out _, out var error), error.ToString());
            Assert.Equal(first, node.Vault.OperatorKey.KeyId);
            Assert.Null(node.Vault.FindSigningKey("no-such-kid"));
        }

        using var reopened = new Opened(Open());
        Assert.Equal(first, reopened.Vault.OperatorKey.KeyId);
        Assert.Equal(kid, reopened.Vault.FindSigningKey(kid)?.KeyId);
    }

    /// <summary>
    /// <c>key rotate-master</c>: cards of version 01 and 02 both open, on the vault that rotated, on
    /// another instance opened before (another node) and after reopening; new cards get 02; a card
    /// of a version the vault lacks is refused as such.
    /// </summary>
    protected void CreateMasterKey_OldAndNewCardsOpen_UnknownVersionRefusedContract()
    {
        using var station = new Opened(Open());
        using var node = new Opened(Open());
        var oldKeys = station.Vault.IssueCardKeys(CardId.FromSerial(940_000_000_000_201));

        var version = station.Vault.CreateMasterKey();
        var newKeys = station.Vault.IssueCardKeys(CardId.FromSerial(940_000_000_000_202));
        var otherKeys = station.Vault.IssueCardKeys(CardId.FromSerial(940_000_000_000_203));
        using var oldCard = Personalize(oldKeys);
        using var newCard = Personalize(newKeys);
        using var unknownCard = Personalize(otherKeys with { KeyVersion = 0x07 });

        Assert.Equal(0x02, version);
        Assert.Equal((byte)0x01, oldKeys.KeyVersion);
        Assert.Equal((byte)0x02, newKeys.KeyVersion);
        Assert.Equal([0x01, 0x02], station.Vault.MasterKeyVersions);
        foreach (var vault in new[] { station.Vault, node.Vault })
        {
            foreach (var card in new[] { oldCard, newCard })
            {
                var (hostChallenge, answer) = Greet(card);
                Assert.True(CardGreeting.TryParse(answer, out var greeting));
                using var session = vault.OpenCardSession(greeting.CardId, hostChallenge, greeting, out var error);
                Assert.True(session is not null, $"Version {greeting.KeyVersion:X2} refused: {error}.");
            }

            var (challenge, unknownAnswer) = Greet(unknownCard);
            Assert.True(CardGreeting.TryParse(unknownAnswer, out var unknownGreeting));
            Assert.Null(vault.OpenCardSession(unknownGreeting.CardId, challenge, unknownGreeting, out var unknownError));
            Assert.Equal(CardAuthenticationError.KeyVersionUnknown, unknownError);
        }

        using var reopened = new Opened(Open());
        Assert.Equal([0x01, 0x02], reopened.Vault.MasterKeyVersions);
        Assert.Equal((byte)0x02, reopened.Vault.IssueCardKeys(CardId.FromSerial(940_000_000_000_204)).KeyVersion);
    }

    /// <summary>A new emulated card personalized with issued keys (the keys are zeroed after).</summary>
    private protected EmulatedCard Personalize(IssuedCardKeys keys)
    {
        var path = Path.Combine(_directory, $"card-{Interlocked.Increment(ref _cards)}.bin");
        var card = EmulatedCard.Create(path, new CardPersonalization(keys.CardId, keys.KeyVersion, keys.EncKey.ToArray(), keys.MacKey.ToArray(), 1_000_000));
        return card;
    }

    /// <summary>SELECT and INITIALIZE UPDATE with a fresh host challenge: the challenge and the card's answer.</summary>
    private protected static (byte[] HostChallenge, byte[] Answer) Greet(EmulatedCard card)
    {
        Assert.Equal(StatusWord.Ok, Transmit(card, CardHostSession.Select()).Status);
        var hostChallenge = RandomNumberGenerator.GetBytes(8);
        var answer = Transmit(card, CardHostSession.InitializeUpdate(hostChallenge));
        Assert.Equal(StatusWord.Ok, answer.Status);
        return (hostChallenge, answer.Data.ToArray());
    }

    private protected static ResponseApdu Transmit(EmulatedCard card, CommandApdu command) =>
        ResponseApdu.Parse(card.Transmit(command.ToBytes()));

    /// <summary>Both vaults are disposable; the interface is not.</summary>
    private protected sealed class Opened(ISecurityModule vault) : IDisposable
    {
        public ISecurityModule Vault { get; } = vault;

        public void Dispose() => ((IDisposable)Vault).Dispose();
    }
}

/// <summary>The contract on the software vault.</summary>
public sealed class SoftwareKeyVaultContractTest : KeyVaultContract
{
    private readonly string _vaultDirectory = Directory.CreateTempSubdirectory("openpurse-vault-").FullName;

    [Fact]
    public void IssuedCard_Greeting_GenuineAcceptedTamperedRefused() => IssuedCard_Greeting_GenuineAcceptedTamperedRefusedContract();

    [Fact]
    public void OperatorKey_Jws_VerifiesWithPublishedJwk() => OperatorKey_Jws_VerifiesWithPublishedJwkContract();

    [Fact]
    public void IssueCardKeys_TwoCards_KeysDiffer() => IssueCardKeys_TwoCards_KeysDifferContract();

    [Fact]
    public void Open_Reopened_SameKeys() => Open_Reopened_SameKeysContract();

    [Fact]
    public void OpenCardSessionAndSign_Concurrently_AllSucceed() => OpenCardSessionAndSign_Concurrently_AllSucceedContract();

    [Fact]
    public void CreateSigningKey_FoundByKid_InAnotherInstanceAndAfterReopen() => CreateSigningKey_FoundByKid_InAnotherInstanceAndAfterReopenContract();

    [Fact]
    public void CreateMasterKey_OldAndNewCardsOpen_UnknownVersionRefused() => CreateMasterKey_OldAndNewCardsOpen_UnknownVersionRefusedContract();

    public override void Dispose()
    {
        Directory.Delete(_vaultDirectory, recursive: true);
        base.Dispose();
    }

    internal override ISecurityModule Open() => SoftwareKeyVault.Open(_vaultDirectory, createIfMissing: true);
}
