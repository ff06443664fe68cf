using System.Security.Cryptography;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;
using OpenPurse.Operator.Security;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Purse;
using OpenPurse.Testing;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// Tests that load the PKCS#11 module in this process. SoftHSM2 scans its tokens in C_Initialize,
/// once per process and module: these tests make a token each, so they run one at a time and
/// close their vaults, and the module is initialized afresh for the next (see <see cref="SoftHsmToken"/>).
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SoftHsmInProcess
{
    public const string Name = "SoftHSM2 in process";
}

/// <summary>The contract on the PKCS#11 vault over a fresh SoftHSM2 token, and what only a token can show.</summary>
[Collection(SoftHsmInProcess.Name)]
public sealed class Pkcs11KeyVaultContractTest : KeyVaultContract
{
    private readonly SoftHsmToken _token = SoftHsmToken.Create();

    private Pkcs11Options Options => new()
    {
        Library = SoftHsmToken.Library,
        TokenLabel = _token.Label,
        PinEnvironmentVariable = _token.PinEnvironmentVariable,
    };

    [IntegrationFact(Components.SoftHsm)]
    public void IssuedCard_Greeting_GenuineAcceptedTamperedRefused() => IssuedCard_Greeting_GenuineAcceptedTamperedRefusedContract();

    [IntegrationFact(Components.SoftHsm)]
    public void OperatorKey_Jws_VerifiesWithPublishedJwk() => OperatorKey_Jws_VerifiesWithPublishedJwkContract();

    [IntegrationFact(Components.SoftHsm)]
    public void IssueCardKeys_TwoCards_KeysDiffer() => IssueCardKeys_TwoCards_KeysDifferContract();

    [IntegrationFact(Components.SoftHsm)]
    public void Open_Reopened_SameKeys() => Open_Reopened_SameKeysContract();

    [IntegrationFact(Components.SoftHsm)]
    public void OpenCardSessionAndSign_Concurrently_AllSucceed() => OpenCardSessionAndSign_Concurrently_AllSucceedContract();

    [IntegrationFact(Components.SoftHsm)]
    public void CreateSigningKey_FoundByKid_InAnotherInstanceAndAfterReopen() => CreateSigningKey_FoundByKid_InAnotherInstanceAndAfterReopenContract();

    [IntegrationFact(Components.SoftHsm)]
    public void CreateMasterKey_OldAndNewCardsOpen_UnknownVersionRefused() => CreateMasterKey_OldAndNewCardsOpen_UnknownVersionRefusedContract();

    [IntegrationFact(Components.SoftHsm)]
    public void CreateMasterKey_LabelledWithItsVersion_SensitiveAndNotExtractable()
    {
        using var vault = Pkcs11KeyVault.Open(Options, createIfMissing: true);

        var version = vault.CreateMasterKey();
        var attributes = vault.Token.Use(session => session.GetAttributeValue(
            Pkcs11Token.FindOne(session, CKO.CKO_SECRET_KEY, "openpurse-card-master-02")!, [CKA.CKA_SENSITIVE, CKA.CKA_EXTRACTABLE, CKA.CKA_VALUE_LEN]));

        Assert.Equal(0x02, version);
        Assert.Equal("openpurse-card-master-02", Pkcs11KeyVault.MasterKeyLabel(Options, version));
        Assert.Equal((true, false, 16UL), (attributes[0].GetValueAsBool(), attributes[1].GetValueAsBool(), attributes[2].GetValueAsUlong()));
    }

    [IntegrationFact(Components.SoftHsm)]
    public void Initialize_NewToken_KeysSensitiveAndNotExtractable()
    {
        var report = Pkcs11KeyVault.Initialize(Options);

        using var vault = Pkcs11KeyVault.Open(Options, createIfMissing: false);
        var master = vault.Token.Use(session => session.GetAttributeValue(vault.MasterKey, [
            CKA.CKA_SENSITIVE, CKA.CKA_EXTRACTABLE, CKA.CKA_ALWAYS_SENSITIVE, CKA.CKA_NEVER_EXTRACTABLE, CKA.CKA_TOKEN, CKA.CKA_VALUE_LEN, CKA.CKA_ALLOWED_MECHANISMS]));
        var signing = vault.Token.Use(session => session.GetAttributeValue(
            Pkcs11Token.FindOne(session, CKO.CKO_PRIVATE_KEY, Options.SigningKeyLabel)!, [CKA.CKA_SENSITIVE, CKA.CKA_EXTRACTABLE, CKA.CKA_ALLOWED_MECHANISMS]));
        var masterValue = vault.Token.Use(session => session.GetAttributeValue(vault.MasterKey, [CKA.CKA_VALUE])[0]);

        Assert.Contains("generated", report, StringComparison.Ordinal);
        Assert.Contains(vault.OperatorKey.KeyId, report, StringComparison.Ordinal);
        Assert.Equal([true, false, true, true, true], master.Take(5).Select(a => a.GetValueAsBool()));
        Assert.Equal(16UL, master[5].GetValueAsUlong());
        Assert.Equal([CKM.CKM_AES_ECB, CKM.CKM_AES_CBC_ENCRYPT_DATA], master[6].GetValueAsCkmList().Order());
        Assert.True(masterValue.CannotBeRead);
        Assert.Equal((true, false), (signing[0].GetValueAsBool(), signing[1].GetValueAsBool()));
        Assert.Equal([CKM.CKM_ECDSA], signing[2].GetValueAsCkmList());
    }

    [IntegrationFact(Components.SoftHsm)]
    public void Initialize_Twice_KeepsTheKeys()
    {
        Pkcs11KeyVault.Initialize(Options);
        string kid;
        using (var vault = Pkcs11KeyVault.Open(Options, createIfMissing: false))
        {
            kid = vault.OperatorKey.KeyId;
        }

        var again = Pkcs11KeyVault.Initialize(Options);

        Assert.DoesNotContain("generated", again, StringComparison.Ordinal);
        Assert.Contains(kid, again, StringComparison.Ordinal);
    }

    [IntegrationFact(Components.SoftHsm)]
    public void Open_SameMasterAsSoftwareVault_SameCardKeysAndCardsAcceptedBothWays()
    {
        // A known master, imported for this comparison only: the vault generates its own otherwise.
        var master = RandomNumberGenerator.GetBytes(16);
        ImportMaster(master, extractable: false);
        using var software = SoftwareKeyVault.FromKeys(master.ToArray(), ECDsa.Create(ECCurve.NamedCurves.nistP256));
        using var token = Pkcs11KeyVault.Open(Options, createIfMissing: true);

        for (ulong serial = 940_000_000_000_010; serial < 940_000_000_000_014; serial++)
        {
            var cardId = CardId.FromSerial(serial);
            var fromToken = token.IssueCardKeys(cardId);
            var fromSoftware = software.IssueCardKeys(cardId);
            Assert.Equal(fromSoftware.EncKey, fromToken.EncKey);
            Assert.Equal(fromSoftware.MacKey, fromToken.MacKey);
        }

        // The run-time path derives the card keys as non-extractable objects, never read back:
        // a card personalized by the software vault is accepted by the token's session, and back.
        var cardId2 = CardId.FromSerial(940_000_000_000_020);
        using var card = Personalize(software.IssueCardKeys(cardId2));
        var (hostChallenge, answer) = Greet(card);
        Assert.True(CardGreeting.TryParse(answer, out var greeting));
        using var session = token.OpenCardSession(cardId2, hostChallenge, greeting, out var error);
        Assert.True(session is not null, $"The token refused a card of the same master: {error}.");
        Assert.Equal(StatusWord.Ok, Transmit(card, session.ExternalAuthenticate()).Status);
        CryptographicOperations.ZeroMemory(master);
    }

    [IntegrationFact(Components.SoftHsm)]
    public void OpenCardSession_Done_LeavesNoCardKeyInTheToken()
    {
        using var vault = Pkcs11KeyVault.Open(Options, createIfMissing: true);
        var cardId = CardId.FromSerial(940_000_000_000_030);
        using var card = Personalize(vault.IssueCardKeys(cardId));
        var (hostChallenge, answer) = Greet(card);
        Assert.True(CardGreeting.TryParse(answer, out var greeting));

        vault.OpenCardSession(cardId, hostChallenge, greeting, out _)!.Dispose();
        vault.OpenCardSession(cardId, RandomNumberGenerator.GetBytes(8), greeting, out _)?.Dispose();

        var secretKeys = vault.Token.Use(session => session.FindAllObjects([Pkcs11Token.Attributes.Create(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY)]));
        Assert.Single(secretKeys);
    }

    [IntegrationFact(Components.SoftHsm)]
    public void Open_WrongPin_RefusedClearly()
    {
        Pkcs11KeyVault.Initialize(Options);
        var variable = _token.PinEnvironmentVariable + "_WRONG";
        Environment.SetEnvironmentVariable(variable, "not-" + _token.Pin);
        try
        {
            var refused = Assert.Throws<KeyVaultException>(() => Pkcs11KeyVault.Open(Options with { PinEnvironmentVariable = variable }, createIfMissing: false));

            Assert.Contains("refused the PIN", refused.Message, StringComparison.Ordinal);
            Assert.Contains("CKR_PIN_INCORRECT", refused.Message, StringComparison.Ordinal);
            Assert.Contains(variable, refused.Message, StringComparison.Ordinal);
            Assert.DoesNotContain(_token.Pin, refused.Message, StringComparison.Ordinal);
        }
        finally
        {
            Environment.SetEnvironmentVariable(variable, null);
        }
    }

    [IntegrationFact(Components.SoftHsm)]
    public void Open_WrongPinWhileLoggedIn_StillRefused()
    {
        // The module skips the PIN check when this process is logged in already; the vault does not.
        using var first = Pkcs11KeyVault.Open(Options, createIfMissing: true);
        var variable = _token.PinEnvironmentVariable + "_WRONG";
        Environment.SetEnvironmentVariable(variable, "not-" + _token.Pin);
        try
        {
            var refused = Assert.Throws<KeyVaultException>(() => Pkcs11KeyVault.Open(Options with { PinEnvironmentVariable = variable }, createIfMissing: false));

            Assert.Contains("refused the PIN", refused.Message, StringComparison.Ordinal);
            using var second = Pkcs11KeyVault.Open(Options, createIfMissing: false);
            Assert.Equal(first.OperatorKey.KeyId, second.OperatorKey.KeyId);
        }
        finally
        {
            Environment.SetEnvironmentVariable(variable, null);
        }
    }

    [IntegrationFact(Components.SoftHsm)]
    public void Open_NoPinVariable_RefusedNamingIt()
    {
        var refused = Assert.Throws<KeyVaultException>(() => Pkcs11KeyVault.Open(Options with { PinEnvironmentVariable = "OPENPURSE_TEST_UNSET_PIN" }, createIfMissing: true));

        Assert.Contains("OPENPURSE_TEST_UNSET_PIN", refused.Message, StringComparison.Ordinal);
    }

    [IntegrationFact(Components.SoftHsm)]
    public void Open_UnknownToken_RefusedNamingIt()
    {
        var refused = Assert.Throws<KeyVaultException>(() => Pkcs11KeyVault.Open(Options with { TokenLabel = "no-such-token" }, createIfMissing: true));

        Assert.Contains("No token labelled 'no-such-token'", refused.Message, StringComparison.Ordinal);
    }

    [IntegrationFact(Components.SoftHsm)]
    public void Open_NoKeysWithoutCreate_RefusedPointingToVaultInit()
    {
        var refused = Assert.Throws<KeyVaultException>(() => Pkcs11KeyVault.Open(Options, createIfMissing: false));

        Assert.Contains("vault init", refused.Message, StringComparison.Ordinal);
    }

    [IntegrationFact(Components.SoftHsm)]
    public void Open_ExtractableMasterKey_Refused()
    {
        ImportMaster(RandomNumberGenerator.GetBytes(16), extractable: true);

        var refused = Assert.Throws<KeyVaultException>(() => Pkcs11KeyVault.Open(Options, createIfMissing: true));

        Assert.Contains("extractable", refused.Message, StringComparison.Ordinal);
    }

    public override void Dispose()
    {
        _token.Dispose();
        base.Dispose();
    }

    internal override ISecurityModule Open() => Pkcs11KeyVault.Open(Options, createIfMissing: true);

    private void ImportMaster(byte[] master, bool extractable)
    {
        using var token = Pkcs11Token.Open(Options);
        token.Use(session =>
        {
            var attributes = Pkcs11KeyVault.MasterKeyAttributes(Options.MasterKeyLabel)
                .Where(a => a.Type is not ((ulong)CKA.CKA_SENSITIVE or (ulong)CKA.CKA_EXTRACTABLE))
                .ToList();
            attributes.Add(Pkcs11Token.Attributes.Create(CKA.CKA_SENSITIVE, !extractable));
            attributes.Add(Pkcs11Token.Attributes.Create(CKA.CKA_EXTRACTABLE, extractable));
            attributes.Add(Pkcs11Token.Attributes.Create(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY));
            attributes.Add(Pkcs11Token.Attributes.Create(CKA.CKA_KEY_TYPE, CKK.CKK_AES));
            attributes.Add(Pkcs11Token.Attributes.Create(CKA.CKA_VALUE, master));
            return session.CreateObject(attributes);
        });
    }
}
