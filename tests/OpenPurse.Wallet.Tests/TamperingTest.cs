using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Testing;
using OpenPurse.Wallet.Purchase;

namespace OpenPurse.Wallet.Tests;

/// <summary>
/// The promise of docs/protocol.md: a tampered BILL, SPC, ACN or receipt is refused with a clear error, and what the
/// person approved is what the card does. Each test changes one thing and checks where the wallet
/// stopped and whether the card paid.
/// </summary>
public sealed class TamperingTest : IDisposable
{
    private static readonly byte[] s_untilGreeting = [PurseInstruction.Select, PurseInstruction.InitializeUpdate];
    private static readonly byte[] s_untilDebit = [PurseInstruction.Select, PurseInstruction.InitializeUpdate, PurseInstruction.ExternalAuthenticate, PurseInstruction.Debit];

    private readonly WalletKit _kit = new();

    [Fact]
    public async Task Sig1_OneByteChanged_RefusedBeforeCardAndOperator()
    {
        _kit.Store.TamperBill = Tamper.OneByte;

        var error = await Assert.ThrowsAsync<WalletException>(() => _kit.BuyAsync());

        Assert.Equal("bill.signature.invalid", error.Code);
        Assert.Contains("SIG1", error.Message, StringComparison.Ordinal);
        Assert.False(error.CardDebited);
        Assert.Empty(_kit.Reader.Instructions);
        Assert.Equal(0, _kit.Operator.Count("POST"));
        Assert.Equal(WalletKit.Eur(10_000), _kit.Balance());
    }

    [Fact]
    public async Task Sig1_SwappedForItsHighSTwin_RefusedBeforeCardAndOperator()
    {
        _kit.Store.TamperBill = SignatureTwin.Of;

        var error = await Assert.ThrowsAsync<WalletException>(() => _kit.BuyAsync());

        Assert.Equal("bill.signature.high_s", error.Code);
        Assert.False(error.CardDebited);
        Assert.Empty(_kit.Reader.Instructions);
        Assert.Equal(0, _kit.Operator.Count("POST"));
        Assert.Equal(WalletKit.Eur(10_000), _kit.Balance());
    }

    [Fact]
    public async Task Sig1_SignedByAnotherKey_RefusedAsUnknownKey()
    {
        using var stranger = OpenPurse.Protocol.Jose.EcdsaSigningKey.Generate("stranger-1");
        _kit.Store.TamperBill = compact =>
        {
            var bill = SignedMessage.Verify<Bill>(compact, _kit.Store.KeySet, MessageTypes.Bill, out _)!;
            return SignedMessage.Sign(stranger, bill, MessageTypes.Bill);
        };

        var error = await Assert.ThrowsAsync<WalletException>(() => _kit.BuyAsync());

        Assert.Equal("bill.signature.unknown_key", error.Code);
        Assert.Empty(_kit.Reader.Instructions);
        // The unknown key id makes the wallet fetch the store's key set once more, for rotation, and no more.
        Assert.Equal(2, _kit.Operator.Count("GET v1/stores/"));
    }

    [Fact]
    public async Task Bill_AmountDiffersFromEstimate_Refused()
    {
        _kit.Store.EditBill = bill => bill with { Amount = WalletKit.Eur(bill.Amount.MinorUnits + 1) };

        var error = await Assert.ThrowsAsync<WalletException>(() => _kit.BuyAsync());

        Assert.Equal("bill.mismatch", error.Code);
        Assert.Empty(_kit.Reader.Instructions);
    }

    [Fact]
    public async Task Bill_ItemsDifferFromRequest_Refused()
    {
        _kit.Store.EditBill = bill => bill with { Items = [.. bill.Items.Select(i => i with { Quantity = i.Quantity + 1 })] };

        var error = await Assert.ThrowsAsync<WalletException>(() => _kit.BuyAsync());

        Assert.Equal("bill.mismatch", error.Code);
        Assert.Empty(_kit.Reader.Instructions);
    }

    [Fact]
    public async Task Bill_Expired_Refused()
    {
        _kit.Store.EditBill = bill => bill with { ExpiresAt = DateTimeOffset.UtcNow.AddSeconds(-1) };

        var error = await Assert.ThrowsAsync<WalletException>(() => _kit.BuyAsync());

        Assert.Equal("bill.expired", error.Code);
        Assert.Empty(_kit.Reader.Instructions);
    }

    [Fact]
    public async Task Sig2_OneByteChanged_RefusedBeforeTheCardWrites()
    {
        _kit.Operator.TamperSettlementInfo = Tamper.OneByte;

        var error = await Assert.ThrowsAsync<WalletException>(() => _kit.BuyAsync());

        Assert.Equal("settlement_info.signature.invalid", error.Code);
        Assert.Contains("SIG2", error.Message, StringComparison.Ordinal);
        Assert.False(error.CardDebited);
        Assert.Equal(s_untilGreeting, _kit.Reader.Instructions);
        Assert.Equal(WalletKit.Eur(10_000), _kit.Balance());
    }

    [Fact]
    public async Task Sig2_SwappedForItsHighSTwin_RefusedBeforeTheCardWrites()
    {
        _kit.Operator.TamperSettlementInfo = SignatureTwin.Of;

        var error = await Assert.ThrowsAsync<WalletException>(() => _kit.BuyAsync());

        Assert.Equal("settlement_info.signature.high_s", error.Code);
        Assert.False(error.CardDebited);
        Assert.Equal(s_untilGreeting, _kit.Reader.Instructions);
        Assert.Equal(WalletKit.Eur(10_000), _kit.Balance());
    }

    [Fact]
    public async Task Sig2_DebitDigestNotOfTheDebitSent_RefusedBeforeTheCardWrites()
    {
        _kit.Operator.EditSettlementInfo = info => info with { DebitDigest = info.BillDigest };

        var error = await Assert.ThrowsAsync<WalletException>(() => _kit.BuyAsync());

        Assert.Equal("settlement_info.mismatch", error.Code);
        Assert.Contains("debit digest", error.Message, StringComparison.Ordinal);
        Assert.Equal(s_untilGreeting, _kit.Reader.Instructions);
        Assert.Equal(WalletKit.Eur(10_000), _kit.Balance());
    }

    [Fact]
    public async Task Sig2_SignedAmountAboveBill_RefusedBeforeTheCardWrites()
    {
        // A signed debit for more than the bill: SIG2 verifies, but it is not this purchase.
        _kit.Operator.DebitExtraMinor = 100;

        var error = await Assert.ThrowsAsync<WalletException>(() => _kit.BuyAsync(SettlementProfile.Signed));

        Assert.Equal("settlement_info.mismatch", error.Code);
        Assert.Equal(s_untilGreeting, _kit.Reader.Instructions);
        Assert.Equal(WalletKit.Eur(10_000), _kit.Balance());
    }

    [Fact]
    public async Task Sig2_BalanceOtherThanTheCardSaid_Refused()
    {
        _kit.Operator.EditSettlementInfo = info => info with { Balance = WalletKit.Eur(999_999) };

        var error = await Assert.ThrowsAsync<WalletException>(() => _kit.BuyAsync());

        Assert.Equal("settlement_info.mismatch", error.Code);
        Assert.Equal(s_untilGreeting, _kit.Reader.Instructions);
    }

    [Fact]
    public async Task Sig2_ForAnotherCard_RefusedWithoutShowingTheFullNumber()
    {
        var other = OpenPurse.Protocol.CardId.FromSerial(940_000_000_000_999);
        _kit.Operator.EditSettlementInfo = info => info with { CardId = other.Digits };

        var error = await Assert.ThrowsAsync<WalletException>(() => _kit.BuyAsync());

        Assert.Equal("settlement_info.mismatch", error.Code);
        Assert.DoesNotContain(other.Digits, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(WalletKit.TestCardId.Digits, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Lean_OperatorDebitsMoreThanTheBill_CardAnswers9403AndWalletReportsIt()
    {
        _kit.Operator.DebitExtraMinor = 100;

        var error = await Assert.ThrowsAsync<WalletException>(() => _kit.BuyAsync(SettlementProfile.Lean));

        Assert.Equal("card.refused:9403", error.Code);
        Assert.Contains("other than what you approved", error.Message, StringComparison.Ordinal);
        Assert.False(error.CardDebited);
        Assert.Equal(s_untilDebit, _kit.Reader.Instructions);
        Assert.Equal(0, _kit.Operator.Count("POST v1/settlements/"));
        Assert.Equal(WalletKit.Eur(10_000), _kit.Balance());
    }

    [Fact]
    public async Task Debit_ChangedAfterSig2_RefusedBeforeTheCardWrites()
    {
        _kit.Operator.TamperDebit = bytes =>
        {
            bytes[^2] ^= 0x01; // A byte of the C-MAC.
            return bytes;
        };

        var error = await Assert.ThrowsAsync<WalletException>(() => _kit.BuyAsync(SettlementProfile.Signed));

        Assert.Equal("settlement_info.mismatch", error.Code);
        Assert.Contains("debit digest", error.Message, StringComparison.Ordinal);
        Assert.Equal(s_untilGreeting, _kit.Reader.Instructions);
    }

    [Fact]
    public async Task Debit_ChangedInLeanProfile_CardRefusesItsMac()
    {
        _kit.Operator.TamperDebit = bytes =>
        {
            bytes[^2] ^= 0x01;
            return bytes;
        };

        var error = await Assert.ThrowsAsync<WalletException>(() => _kit.BuyAsync(SettlementProfile.Lean));

        Assert.Equal("card.refused:6982", error.Code);
        Assert.False(error.CardDebited);
        Assert.Equal(s_untilDebit, _kit.Reader.Instructions);
        Assert.Equal(WalletKit.Eur(10_000), _kit.Balance());
    }

    [Fact]
    public async Task Debit_IsACredit_RefusedBeforeTheCard()
    {
        _kit.Operator.TamperDebit = bytes =>
        {
            bytes[1] = PurseInstruction.Credit;
            return bytes;
        };

        var error = await Assert.ThrowsAsync<WalletException>(() => _kit.BuyAsync(SettlementProfile.Lean));

        Assert.Equal("operator.malformed", error.Code);
        Assert.Equal(s_untilGreeting, _kit.Reader.Instructions);
        Assert.Equal(WalletKit.Eur(10_000), _kit.Balance());
    }

    [Fact]
    public async Task ExternalAuthenticate_Changed_CardRefusesAndDebitIsNeverSent()
    {
        _kit.Operator.TamperExternalAuthenticate = bytes =>
        {
            bytes[5] ^= 0x01; // First byte of the host cryptogram.
            return bytes;
        };

        var error = await Assert.ThrowsAsync<WalletException>(() => _kit.BuyAsync(SettlementProfile.Lean));

        Assert.StartsWith("card.refused:", error.Code, StringComparison.Ordinal);
        Assert.Contains("EXTERNAL AUTHENTICATE", error.Message, StringComparison.Ordinal);
        Assert.Equal([PurseInstruction.Select, PurseInstruction.InitializeUpdate, PurseInstruction.ExternalAuthenticate], _kit.Reader.Instructions);
        Assert.Equal(WalletKit.Eur(10_000), _kit.Balance());
    }

    [Fact]
    public async Task Sig3_OneByteChanged_RefusedAndReportedAsPaid()
    {
        _kit.Operator.TamperCompletionNotice = Tamper.OneByte;

        var error = await Assert.ThrowsAsync<WalletException>(() => _kit.BuyAsync());

        Assert.Equal("acn.signature.invalid", error.Code);
        Assert.Contains("SIG3", error.Message, StringComparison.Ordinal);
        Assert.True(error.CardDebited);
        Assert.NotNull(error.SettlementId);
        Assert.Equal(s_untilDebit, _kit.Reader.Instructions);
        Assert.Equal(0, _kit.Store.Count("GET v1/orders/"));
    }

    [Fact]
    public async Task Sig3_SwappedForItsHighSTwin_RefusedAndReportedAsPaid()
    {
        _kit.Operator.TamperCompletionNotice = SignatureTwin.Of;

        var error = await Assert.ThrowsAsync<WalletException>(() => _kit.BuyAsync());

        Assert.Equal("acn.signature.high_s", error.Code);
        Assert.True(error.CardDebited);
        Assert.NotNull(error.SettlementId);
        Assert.Equal(0, _kit.Store.Count("GET v1/orders/"));
    }

    [Fact]
    public async Task Sig4_SwappedForItsHighSTwin_RefusedAndNothingDownloaded()
    {
        _kit.Store.TamperReceipt = SignatureTwin.Of;

        var error = await Assert.ThrowsAsync<WalletException>(() => _kit.BuyAsync());

        Assert.Equal("receipt.signature.high_s", error.Code);
        Assert.True(error.CardDebited);
        Assert.Equal(0, _kit.Store.Count("GET v1/orders/"));
    }

    [Fact]
    public async Task Sig4_OneByteChanged_RefusedAndNothingDownloaded()
    {
        _kit.Store.TamperReceipt = Tamper.OneByte;

        var error = await Assert.ThrowsAsync<WalletException>(() => _kit.BuyAsync());

        Assert.Equal("receipt.signature.invalid", error.Code);
        Assert.Contains("SIG4", error.Message, StringComparison.Ordinal);
        Assert.True(error.CardDebited);
        Assert.Equal(0, _kit.Store.Count("GET v1/orders/"));
    }

    [Fact]
    public async Task Sig4_FromTheStoreItself_OneByteChanged_Refused()
    {
        _kit.Operator.OmitReceipt = true;
        _kit.Store.TamperReceipt = Tamper.OneByte;

        var error = await Assert.ThrowsAsync<WalletException>(() => _kit.BuyAsync());

        Assert.Equal("receipt.signature.invalid", error.Code);
        Assert.Equal(1, _kit.Store.Count("POST v1/orders/"));
        Assert.Equal(0, _kit.Store.Count("GET v1/orders/"));
    }

    public void Dispose() => _kit.Dispose();
}
