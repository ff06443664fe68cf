using System.Net;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Testing;
using OpenPurse.Wallet.Purchase;

namespace OpenPurse.EndToEnd.Tests;

/// <summary>
/// The promise of docs/protocol.md: a tampered BILL, SPC, ACN or receipt is refused with a clear error and nothing is
/// debited. Each test changes one character, byte or field on the real connection between the
/// wallet and a server, or swaps a signature for its high-S twin (which plain ECDSA accepts).
/// </summary>
public abstract class TamperingTest(RealInfrastructure? realSet) : EndToEndSuite(realSet)
{
    private const string Orders = "^/v1/orders$";
    private const string RoundTrip1 = "^/v1/settlements$";
    private const string RoundTrip2 = "^/v1/settlements/[^/]+/completion$";

    private static readonly byte[] s_untilGreeting = [PurseInstruction.Select, PurseInstruction.InitializeUpdate];
    private static readonly byte[] s_untilDebit =
        [PurseInstruction.Select, PurseInstruction.InitializeUpdate, PurseInstruction.ExternalAuthenticate, PurseInstruction.Debit];

    private static readonly Protocol.Money s_book = EndToEndKit.Eur("12.50");

    [SuiteFact]
    public Task Bill_PayloadCharacterChangedInTransit_RefusedBeforeCardAndOperator() => BillChangedInTransitAsync(Tamper.Payload);

    [SuiteFact]
    public Task Bill_SignatureCharacterChangedInTransit_RefusedBeforeCardAndOperator() => BillChangedInTransitAsync(Tamper.Signature);

    [SuiteFact]
    public Task SettlementInfo_OneCharacterChangedInTransit_RefusedBeforeTheCardWrites() =>
        SettlementInfoChangedInTransitAsync(info => Tamper.OneCharacter(info), "invalid");

    [SuiteFact]
    public Task SettlementInfo_SwappedForItsHighSTwinInTransit_RefusedBeforeTheCardWrites() =>
        SettlementInfoChangedInTransitAsync(SignatureTwin.Of, "high_s");

    [SuiteFact]
    public async Task Debit_OneByteChangedInTransit_SignedProfile_RefusedBySig2BeforeTheCardWrites()
    {
        await using var kit = await StartKitAsync();
        var before = kit.Balance();
        kit.OperatorTraffic.RewriteResponse("POST", RoundTrip1, (_, body) => Tamper.Member(body, "debit", Tamper.OneDataByte));

        var error = await Assert.ThrowsAsync<WalletException>(() => kit.BuyAsync("book-002", "books", SettlementProfile.Signed));

        // SIG2's debit digest is over the DEBIT the operator built, not the one that arrived.
        Assert.Equal("settlement_info.mismatch", error.Code);
        Assert.Contains("debit digest", error.Message, StringComparison.Ordinal);
        await AssertNothingDebitedAsync(kit, error, before, s_untilGreeting);
    }

    [SuiteFact]
    public async Task Debit_OneByteChangedInTransit_LeanProfile_CardRefuses6982()
    {
        await using var kit = await StartKitAsync();
        var before = kit.Balance();
        kit.OperatorTraffic.RewriteResponse("POST", RoundTrip1, (_, body) => Tamper.Member(body, "debit", Tamper.OneDataByte));

        var error = await Assert.ThrowsAsync<WalletException>(() => kit.BuyAsync("book-002", "books", SettlementProfile.Lean));

        Assert.Equal("card.refused:6982", error.Code);
        Assert.Equal(Protocol.Apdu.StatusWord.SecurityStatusNotSatisfied, kit.Reader.Log[^1].Answer.Status);
        await AssertNothingDebitedAsync(kit, error, before, s_untilDebit);
    }

    [SuiteFact]
    public async Task Bill_FieldChangedAndReSignedByOtherMemberStore_RefusedByWalletAndOperator()
    {
        await using var kit = await StartKitAsync();
        var before = kit.Balance();
        string? forged = null;
        kit.StoreTraffic.RewriteResponse("POST", Orders, (_, body) => Tamper.Member(body, "bill", bill => forged = ReSignedByTunes(kit, bill)));

        var error = await Assert.ThrowsAsync<WalletException>(() => kit.BuyAsync("book-002", "books"));

        // The wallet checks a bill of "books" with the keys the operator registered for "books" only.
        Assert.Equal("bill.signature.unknown_key", error.Code);
        Assert.False(error.CardDebited);
        Assert.Empty(kit.Reader.Log);
        Assert.Equal(0, kit.OperatorTraffic.Count("POST", "."));

        // The same forged bill, sent straight to the operator with a real greeting from the card for it:
        // a registered key ("tunes") and a valid signature, but a bill naming another store ("books").
        Assert.NotNull(forged);
        var answer = await kit.StartSettlementAsync(forged);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, answer.Status);
        Assert.Equal("bill.signature_invalid", answer.Code);

        Assert.Equal(before, kit.Balance());
        Assert.Equal("billed", await kit.OrderStateAsync(OrderNo(kit)));
    }

    [SuiteFact]
    public Task Acn_OneCharacterChangedInRoundTrip2_WalletRefusesAfterPayingOnceAndStoreRefusesIt() =>
        AcnChangedInRoundTrip2Async(acn => Tamper.OneCharacter(acn), "invalid");

    [SuiteFact]
    public Task Acn_SwappedForItsHighSTwinInRoundTrip2_WalletRefusesAfterPayingOnceAndStoreRefusesIt() =>
        AcnChangedInRoundTrip2Async(SignatureTwin.Of, "high_s");

    [SuiteFact]
    public Task Receipt_OneCharacterChangedInRoundTrip2_WalletRefusesAfterPayingOnceAndOperatorRefusesIt() =>
        ReceiptChangedInRoundTrip2Async(receipt => Tamper.OneCharacter(receipt), "invalid");

    [SuiteFact]
    public Task Receipt_SwappedForItsHighSTwinInRoundTrip2_WalletRefusesAfterPayingOnceAndOperatorRefusesIt() =>
        ReceiptChangedInRoundTrip2Async(SignatureTwin.Of, "high_s");

    [SuiteFact]
    public async Task Bill_SwappedForItsHighSTwinInTransit_RefusedNothingDebitedAndTheGenuineBillPays()
    {
        // The attack as reported: the twin of SIG1 verifies as plain ECDSA. Were it accepted, the card would
        // pay for a bill the store does not know by its digest, and the genuine bill would be a replay.
        await using var kit = await StartKitAsync();
        var before = kit.Balance();
        string? genuineAnswer = null;
        string? twin = null;
        kit.StoreTraffic.RewriteResponse("POST", Orders, (_, body) =>
        {
            if (genuineAnswer is null)
            {
                genuineAnswer = body;
                return Tamper.Member(body, "bill", bill => twin = SignatureTwin.Of(bill));
            }

            // The wallet's next order for the same book gets the first order with its genuine bill.
            return genuineAnswer;
        });

        var error = await Assert.ThrowsAsync<WalletException>(() => kit.BuyAsync("book-002", "books"));

        Assert.Equal("bill.signature.high_s", error.Code);
        Assert.False(error.CardDebited);
        Assert.Empty(kit.Reader.Log);
        Assert.Equal(0, kit.OperatorTraffic.Count("POST", "."));

        // The same twin, sent straight to the operator with a real greeting from the card for it.
        Assert.NotNull(twin);
        var answer = await kit.StartSettlementAsync(twin);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, answer.Status);
        Assert.Equal("bill.signature_invalid", answer.Code);
        Assert.Equal(before, kit.Balance());
        var orderNo = Tamper.Read(genuineAnswer!, "orderNo");
        Assert.Equal("billed", await kit.OrderStateAsync(orderNo));

        var paid = await kit.BuyAsync("book-002", "books");

        Assert.Equal(orderNo, paid.OrderNo);
        Assert.Equal("paid", await kit.OrderStateAsync(orderNo));
        Assert.Equal("completed", await kit.SettlementStateAsync(paid.SettlementId));
        Assert.Equal(before - s_book, kit.Balance());
    }

    private async Task SettlementInfoChangedInTransitAsync(Func<string, string> change, string reason)
    {
        await using var kit = await StartKitAsync();
        var before = kit.Balance();
        kit.OperatorTraffic.RewriteResponse("POST", RoundTrip1, (_, body) => Tamper.Member(body, "settlementInfo", change));

        var error = await Assert.ThrowsAsync<WalletException>(() => kit.BuyAsync("book-002", "books", SettlementProfile.Signed));

        Assert.Equal("settlement_info.signature." + reason, error.Code);
        await AssertNothingDebitedAsync(kit, error, before, s_untilGreeting);
    }

    private async Task AcnChangedInRoundTrip2Async(Func<string, string> change, string reason)
    {
        await using var kit = await StartKitAsync();
        var before = kit.Balance();
        string? tampered = null;
        kit.OperatorTraffic.RewriteResponse("POST", RoundTrip2, (_, body) => Tamper.Member(body, "completionNotice", acn => tampered = change(acn)));

        var error = await Assert.ThrowsAsync<WalletException>(() => kit.BuyAsync("book-002", "books"));

        Assert.Equal("acn.signature." + reason, error.Code);
        Assert.True(error.CardDebited);
        Assert.Equal(0, kit.StoreTraffic.Count("GET", "/download$"));
        Assert.Equal(before - s_book, kit.Balance());

        // The same changed notice, brought to the store: refused.
        Assert.NotNull(tampered);
        var answer = await EndToEndKit.PostAsync(kit.Store, $"/v1/orders/{OrderNo(kit)}/completion", new CompletionDelivery(tampered));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, answer.Status);
        Assert.Equal("completion.signature_invalid", answer.Code);
        Assert.Contains("signature." + reason, answer.Body, StringComparison.Ordinal);
        Assert.Equal(before - s_book, kit.Balance());
    }

    private async Task ReceiptChangedInRoundTrip2Async(Func<string, string> change, string reason)
    {
        await using var kit = await StartKitAsync();
        var before = kit.Balance();
        string? tampered = null;
        kit.OperatorTraffic.RewriteResponse("POST", RoundTrip2, (_, body) => Tamper.Member(body, "receipt", receipt => tampered = change(receipt)));

        var error = await Assert.ThrowsAsync<WalletException>(() => kit.BuyAsync("book-002", "books"));

        Assert.Equal("receipt.signature." + reason, error.Code);
        Assert.True(error.CardDebited);
        Assert.Equal(0, kit.StoreTraffic.Count("GET", "/download$"));
        Assert.Equal(before - s_book, kit.Balance());

        // The same changed receipt, brought to the operator: refused.
        var settlementId = error.SettlementId!.Value;
        Assert.NotNull(tampered);
        var answer = await EndToEndKit.PostAsync(kit.Operator, $"/v1/settlements/{settlementId}/receipt", new ReceiptDelivery(tampered));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, answer.Status);
        Assert.Equal("receipt.invalid", answer.Code);
        Assert.Equal(before - s_book, kit.Balance());
    }

    private async Task BillChangedInTransitAsync(int part)
    {
        await using var kit = await StartKitAsync();
        var before = kit.Balance();
        kit.StoreTraffic.RewriteResponse("POST", Orders, (_, body) => Tamper.Member(body, "bill", bill => Tamper.OneCharacter(bill, part)));

        var error = await Assert.ThrowsAsync<WalletException>(() => kit.BuyAsync("book-002", "books"));

        Assert.Equal("bill.signature.invalid", error.Code);
        Assert.False(error.CardDebited);
        Assert.Empty(kit.Reader.Log);
        Assert.Equal(0, kit.OperatorTraffic.Count("POST", "."));
        Assert.Equal(before, kit.Balance());
        Assert.Equal("billed", await kit.OrderStateAsync(OrderNo(kit)));
    }

    private static string OrderNo(EndToEndKit kit) => Tamper.Read(kit.StoreTraffic.Single("POST", Orders).ResponseBody, "orderNo");

    // A bill of "books" with one field changed (a later expiry), signed again with the key of "tunes".
    private static string ReSignedByTunes(EndToEndKit kit, string billJws)
    {
        var bill = SignedMessage.Verify<Bill>(billJws, kit.MemberKeys.SetFor("books"), MessageTypes.Bill, out _)!;
        var forged = SignedMessage.Sign(kit.MemberKeys.For("tunes"), bill with { ExpiresAt = bill.ExpiresAt.AddMinutes(5) }, MessageTypes.Bill);
        Assert.Equal(kit.MemberKeys.For("tunes").KeyId, Jws.PeekKeyId(forged));
        return forged;
    }

    // Refused before the card paid: the card's balance is as it was, its commands stopped where
    // expected, the operator did not complete the settlement and the store's order is not paid.
    private static async Task AssertNothingDebitedAsync(EndToEndKit kit, WalletException error, Protocol.Money before, byte[] instructions)
    {
        Assert.False(error.CardDebited);
        Assert.Equal(instructions, kit.Reader.Instructions);
        Assert.Equal(before, kit.Balance());
        var settlementId = Guid.Parse(Tamper.Read(kit.OperatorTraffic.Single("POST", RoundTrip1).ResponseBody, "settlementId"));
        Assert.Equal(settlementId, error.SettlementId);

        Assert.NotEqual("completed", await kit.SettlementStateAsync(settlementId));
        Assert.Equal(0, kit.OperatorTraffic.Count("POST", RoundTrip2));
        Assert.Equal("billed", await kit.OrderStateAsync(OrderNo(kit)));
    }
}

/// <summary>The suite on the embedded defaults.</summary>
public sealed class TamperingOnEmbeddedTest() : TamperingTest(realSet: null);

/// <summary>The suite on the real set: PostgreSQL, SoftHSM2, PC/SC, TLS, two nodes behind HAProxy.</summary>
[Collection(SoftHsmInProcess.Name)]
[UsesComponents(Components.PostgreSql, Components.SoftHsm, Components.Pcscd, Components.Vpcd, Components.HaProxy)]
public sealed class TamperingOnRealSetTest(RealInfrastructure realSet) : TamperingTest(realSet);
