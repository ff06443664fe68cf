using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Wallet.Purchase;
using OpenPurse.Wallet.Tests.Fakes;

namespace OpenPurse.Wallet.Tests;

/// <summary>The purchase as docs/protocol.md describes it: two operator round trips, four card commands, value conserved.</summary>
public sealed class PurchaseFlowTest : IDisposable
{
    private readonly WalletKit _kit = new();

    [Theory]
    [InlineData(SettlementProfile.Signed)]
    [InlineData(SettlementProfile.Lean)]
    public async Task RunAsync_EachProfile_TwoRoundTripsFourCommandsBalanceDecreasesContentDelivered(SettlementProfile profile)
    {
        var prompt = new AutoPrompt();

        var result = await _kit.BuyAsync(profile, prompt);

        Assert.Equal(2, result.OperatorRoundTrips);
        Assert.Equal(4, result.CardCommands);
        Assert.Equal(
            [PurseInstruction.Select, PurseInstruction.InitializeUpdate, PurseInstruction.ExternalAuthenticate, PurseInstruction.Debit, PurseInstruction.GetData],
            _kit.Reader.Instructions);
        Assert.Equal(5, result.CardCommandsTotal);
        Assert.Equal(2, _kit.Operator.Count("POST v1/settlements"));
        Assert.Equal(WalletKit.Eur(10_000), result.BalanceBefore);
        Assert.Equal(WalletKit.Eur(8_750), result.BalanceAfter);
        Assert.Equal(result.BalanceBefore - result.Amount, result.BalanceAfter);
        Assert.Equal(WalletKit.Eur(8_750), _kit.Balance());
        Assert.Equal(FakeStore.Content, result.Content);
        Assert.Equal(profile, result.Profile);
        Assert.Equal(result.SettlementId, result.CompletionNotice.SettlementId);
        Assert.Equal(result.OrderNo, result.Receipt.OrderNo);
        Assert.Equal(SignedMessage.Digest(result.CompletionNoticeJws), result.Receipt.CompletionDigest);
        Assert.False(result.ReceiptFromStore);
        Assert.Equal(profile == SettlementProfile.Signed, prompt.Confirmation!.BalanceSignedByOperator);
        Assert.Equal(WalletKit.TestCardId.Masked, result.CardMasked);
    }

    [Fact]
    public async Task RunAsync_Quantity_BillChargesEachUnit()
    {
        var result = await _kit.BuyAsync(quantity: 3);

        Assert.Equal(WalletKit.Eur(3 * 1_250), result.Amount);
        Assert.Equal(3, Assert.Single(result.Bill.Items).Quantity);
        Assert.Equal(WalletKit.Eur(10_000 - 3_750), _kit.Balance());
    }

    [Fact]
    public async Task RunAsync_OperatorBringsNoReceipt_WalletGetsItFromTheStore()
    {
        _kit.Operator.OmitReceipt = true;

        var result = await _kit.BuyAsync();

        Assert.True(result.ReceiptFromStore);
        Assert.Equal(1, _kit.Store.Count("POST v1/orders/" + result.OrderNo + "/completion"));
        Assert.Equal(2, result.OperatorRoundTrips);
        Assert.Equal(FakeStore.Content, result.Content);
        Assert.Equal(SignedMessage.Digest(result.CompletionNoticeJws), result.Receipt.CompletionDigest);
    }

    /// <summary>
    /// The operator activated a new signing key during the purchase: SIG2 came under the old key,
    /// the ACN under the new one, which the wallet's cached key set lacks; it fetches the set again
    /// once and the purchase completes.
    /// </summary>
    [Fact]
    public async Task RunAsync_OperatorKeyActivatedMidPurchase_KeySetFetchedAgainAndPurchaseCompletes()
    {
        var flow = _kit.Flow();
        await flow.RunAsync(new PurchaseRequest(FakeStore.Sku));
        using var activated = OpenPurse.Protocol.Jose.EcdsaSigningKey.Generate("operator-2");
        _kit.Operator.ActivatedKey = activated;

        var result = await flow.RunAsync(new PurchaseRequest(FakeStore.Sku));

        Assert.Equal("operator-2", OpenPurse.Protocol.Jose.Jws.PeekKeyId(result.CompletionNoticeJws));
        Assert.Equal(1, result.KeySetRequests);
        Assert.Equal(WalletKit.Eur(10_000 - 2_500), _kit.Balance()); // two purchases of 12.50
    }

    /// <summary>A message under a retired operator key (no longer in the key set) is refused before the card is touched.</summary>
    [Fact]
    public async Task RunAsync_Sig2UnderARetiredOperatorKey_RefusedAsUnknownKey_CardUntouched()
    {
        using var activated = OpenPurse.Protocol.Jose.EcdsaSigningKey.Generate("operator-2");
        _kit.Operator.ActivatedKey = activated;
        _kit.Operator.KeyRetired = true;

        var error = await Assert.ThrowsAsync<WalletException>(() => _kit.BuyAsync());

        Assert.EndsWith("unknown_key", error.Code, StringComparison.Ordinal);
        Assert.False(error.CardDebited);
        Assert.Equal(WalletKit.Eur(10_000), _kit.Balance());
    }

    [Fact]
    public async Task RunAsync_SecondPurchaseOnOneFlow_KeySetsCachedAndCounterMovesOn()
    {
        var flow = _kit.Flow();

        var first = await flow.RunAsync(new PurchaseRequest(FakeStore.Sku));
        var second = await flow.RunAsync(new PurchaseRequest(FakeStore.Sku, Profile: SettlementProfile.Lean));

        Assert.Equal(2, first.KeySetRequests);
        Assert.Equal(0, second.KeySetRequests);
        Assert.Equal(2, second.OperatorRoundTrips);
        Assert.Equal(first.CompletionNotice.CardCounter + 1, second.CompletionNotice.CardCounter);
        Assert.Equal(WalletKit.Eur(10_000 - 2_500), _kit.Balance());
    }

    [Fact]
    public async Task RunAsync_OperatorFailsOnceInRoundTrip2_WalletSendsItAgainAndCompletes()
    {
        _kit.Operator.FailCompletions = 1;

        var result = await _kit.BuyAsync();

        Assert.Equal(3, result.OperatorRoundTrips);
        Assert.Equal(4, result.CardCommands);
        Assert.Equal(WalletKit.Eur(8_750), _kit.Balance());
    }

    [Fact]
    public async Task RunAsync_OperatorFailsEveryTime_ReportsCardPaidWithSettlementId()
    {
        _kit.Operator.FailCompletions = PurchaseFlow.CompletionAttemptsMax;

        var error = await Assert.ThrowsAsync<WalletException>(() => _kit.BuyAsync());

        Assert.Equal("operator.unavailable:operator.busy", error.Code);
        Assert.True(error.CardDebited);
        Assert.NotNull(error.SettlementId);
        Assert.Contains(error.SettlementId.Value.ToString(), error.Message, StringComparison.Ordinal);
        Assert.Equal(PurchaseFlow.CompletionAttemptsMax, _kit.Operator.Count("POST v1/settlements/"));
    }

    [Fact]
    public async Task RunAsync_OperatorBusyWithRetryAfter_KeepsSendingRoundTrip2PastTheAttempts_UntilItCompletes()
    {
        // A node whose database fails over answers 503 operator.busy with Retry-After for as long
        // as the promotion takes: the wallet, whose card has paid, waits it out instead of giving up.
        _kit.Operator.FailCompletions = PurchaseFlow.CompletionAttemptsMax + 4;
        _kit.Operator.FailedCompletionRetryAfter = 0;

        var result = await _kit.BuyAsync();

        Assert.Equal(PurchaseFlow.CompletionAttemptsMax + 5, _kit.Operator.Count("POST v1/settlements/"));
        Assert.NotNull(result.CompletionNotice);
        Assert.Equal(WalletKit.Eur(8_750), _kit.Balance());
    }

    [Fact]
    public async Task RunAsync_PersonDeclines_NothingSentToTheCardAfterInitializeUpdate()
    {
        var before = _kit.CardStatus();

        var error = await Assert.ThrowsAsync<WalletException>(() => _kit.BuyAsync(prompt: new AutoPrompt(approve: false)));

        Assert.Equal("purchase.declined", error.Code);
        Assert.False(error.CardDebited);
        Assert.Equal([PurseInstruction.Select, PurseInstruction.InitializeUpdate], _kit.Reader.Instructions);
        Assert.Equal(0, _kit.Operator.Count("POST v1/settlements/"));
        var after = _kit.CardStatus();
        Assert.Equal(before.Counter, after.Counter);
        Assert.Equal(before.Balances, after.Balances);
    }

    [Fact]
    public async Task RunAsync_BalanceBelowBill_RefusedBeforeTheOperator()
    {
        using var poor = new WalletKit(topUpMinor: 1_000);

        var error = await Assert.ThrowsAsync<WalletException>(() => poor.BuyAsync());

        Assert.Equal("card.insufficient_value", error.Code);
        Assert.Equal(0, poor.Operator.Count("POST"));
        Assert.Equal(WalletKit.Eur(1_000), poor.Balance());
    }

    [Fact]
    public async Task RunAsync_OperatorRefusesWithProblemCode_CodeReachesTheWallet()
    {
        _kit.Operator.RefuseStartWith = "card.blocked";

        var error = await Assert.ThrowsAsync<WalletException>(() => _kit.BuyAsync());

        Assert.Equal("operator.refused:card.blocked", error.Code);
        Assert.Contains("Refused by the test.", error.Message, StringComparison.Ordinal);
        Assert.Equal([PurseInstruction.Select, PurseInstruction.InitializeUpdate], _kit.Reader.Instructions);
        Assert.Equal(WalletKit.Eur(10_000), _kit.Balance());
    }

    [Fact]
    public async Task RunAsync_UnknownArticle_RefusedBeforeAnyOrder()
    {
        var error = await Assert.ThrowsAsync<WalletException>(() => _kit.Flow().RunAsync(new PurchaseRequest("no-such-sku")));

        Assert.Equal("catalog.item_unknown", error.Code);
        Assert.Equal(["GET v1/catalog"], _kit.Store.Requests);
        Assert.Empty(_kit.Reader.Instructions);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(PurchaseRequest.QuantityMax + 1)]
    public async Task RunAsync_QuantityOutOfRange_RefusedBeforeAnyRequest(int quantity)
    {
        var error = await Assert.ThrowsAsync<WalletException>(() => _kit.Flow().RunAsync(new PurchaseRequest(FakeStore.Sku, quantity)));

        Assert.Equal("purchase.invalid_request", error.Code);
        Assert.Empty(_kit.Store.Requests);
    }

    [Fact]
    public async Task RunAsync_QuantityAtMax_Accepted()
    {
        using var rich = new WalletKit(topUpMinor: 1_000_000);

        var result = await rich.BuyAsync(quantity: PurchaseRequest.QuantityMax);

        Assert.Equal(WalletKit.Eur(PurchaseRequest.QuantityMax * 1_250L), result.Amount);
    }

    public void Dispose() => _kit.Dispose();
}
