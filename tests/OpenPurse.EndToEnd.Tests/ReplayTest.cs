using System.Net;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Testing;

namespace OpenPurse.EndToEnd.Tests;

/// <summary>
/// No replay (docs/protocol.md): a recorded DEBIT (SPC) does nothing on the card again, a recorded card
/// answer (PCN) completes no other settlement, and sent again to its own settlement it changes
/// nothing (the same ACN, one debit).
/// </summary>
public abstract class ReplayTest(RealInfrastructure? realSet) : EndToEndSuite(realSet)
{
    private const string RoundTrip2 = "^/v1/settlements/[^/]+/completion$";

    private static readonly Protocol.Money s_book = EndToEndKit.Eur("12.50");

    [SuiteFact]
    public async Task Debit_RecordedAndResentAfterPurchase_Card6982BalanceUnchanged()
    {
        await using var kit = await StartKitAsync();
        var before = kit.Balance();
        await kit.BuyAsync("book-002", "books");
        var (externalAuthenticate, _) = Assert.Single(kit.Reader.Log, e => e.Command.Ins == PurseInstruction.ExternalAuthenticate);
        var (debit, paid) = Assert.Single(kit.Reader.Log, e => e.Command.Ins == PurseInstruction.Debit);
        Assert.True(paid.IsOk);

        // Straight after the purchase, in what is left of its session.
        Assert.Equal(StatusWord.SecurityStatusNotSatisfied, kit.Reader.Transmit(debit).Status);
        Assert.Equal(before - s_book, kit.Balance());

        // In a new session: the recorded commands belong to the old session's keys.
        Assert.True(kit.Reader.Transmit(CardHostSession.Select()).IsOk);
        Assert.True(kit.Reader.Transmit(CardHostSession.InitializeUpdate(new byte[8])).IsOk);
        Assert.False(kit.Reader.Transmit(externalAuthenticate).IsOk);
        Assert.Equal(StatusWord.SecurityStatusNotSatisfied, kit.Reader.Transmit(debit).Status);
        Assert.Equal(before - s_book, kit.Balance());
    }

    [SuiteFact]
    public async Task CardAnswer_OfCompletedSettlementSentToNewSettlement_CardAnswerInvalid()
    {
        await using var kit = await StartKitAsync();
        var before = kit.Balance();
        await kit.BuyAsync("book-002", "books");
        var pcn = RecordedCardAnswer(kit);
        var order = await kit.OrderAsync("books", "book-001");
        var started = await kit.StartSettlementAsync(order.Bill);
        Assert.Equal(HttpStatusCode.Created, started.Status);
        var settlementId = started.Read<StartSettlementResponse>().SettlementId;

        var answer = await EndToEndKit.PostAsync(kit.Operator, $"/v1/settlements/{settlementId}/completion", new CompleteSettlementRequest(pcn));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, answer.Status);
        Assert.Equal("card.answer_invalid", answer.Code);
        Assert.Equal("authorized", await kit.SettlementStateAsync(settlementId));
        Assert.Equal("billed", await kit.OrderStateAsync(order.OrderNo));
        Assert.Equal(before - s_book, kit.Balance());
    }

    [SuiteFact]
    public async Task CardAnswer_SentAgainToItsOwnSettlement_SameAcnAndDebitedOnce()
    {
        await using var kit = await StartKitAsync();
        var before = kit.Balance();
        var paid = await kit.BuyAsync("book-002", "books");
        var pcn = RecordedCardAnswer(kit);

        var answer = await EndToEndKit.PostAsync(kit.Operator, $"/v1/settlements/{paid.SettlementId}/completion", new CompleteSettlementRequest(pcn));

        Assert.Equal(HttpStatusCode.OK, answer.Status);
        Assert.Equal(paid.CompletionNoticeJws, answer.Read<CompleteSettlementResponse>().CompletionNotice);
        Assert.Equal("completed", await kit.SettlementStateAsync(paid.SettlementId));
        Assert.Equal("paid", await kit.OrderStateAsync(paid.OrderNo));
        Assert.Equal(before - s_book, kit.Balance());
    }

    // The PCN as the wallet sent it in round trip 2: the card's answer to the DEBIT, as recorded at the reader.
    private static string RecordedCardAnswer(EndToEndKit kit)
    {
        var sent = Tamper.Read(kit.OperatorTraffic.Single("POST", RoundTrip2).RequestBody!, "cardAnswer");
        var (_, answer) = Assert.Single(kit.Reader.Log, e => e.Command.Ins == PurseInstruction.Debit);
        Assert.Equal(Convert.ToBase64String(answer.ToBytes()), sent);
        return sent;
    }
}

/// <summary>The suite on the embedded defaults.</summary>
public sealed class ReplayOnEmbeddedTest() : ReplayTest(realSet: null);

/// <summary>The suite on the real set: PostgreSQL, SoftHSM2, PC/SC, TLS, two nodes behind HAProxy.</summary>
[Collection(SoftHsmInProcess.Name)]
[UsesComponents(Components.PostgreSql, Components.SoftHsm, Components.Pcscd, Components.Vpcd, Components.HaProxy)]
public sealed class ReplayOnRealSetTest(RealInfrastructure realSet) : ReplayTest(realSet);
