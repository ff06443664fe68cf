using System.Text.Json;
using System.Text.Json.Nodes;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Testing;
using OpenPurse.Wallet.Purchase;

namespace OpenPurse.EndToEnd.Tests;

/// <summary>
/// The promise that what the person approved is what the card does: an operator that asks the card for
/// more than the wallet showed, with genuine commands of the card's session made by the operator's
/// own security module, gets nothing from the card.
/// </summary>
public abstract class ApprovalTest(RealInfrastructure? realSet) : EndToEndSuite(realSet)
{
    private const string RoundTrip1 = "^/v1/settlements$";

    [SuiteFact]
    public async Task Debit_OperatorAsksMoreThanApproved_LeanProfile_CardRefuses9403NothingDebited()
    {
        await using var kit = await StartKitAsync();
        var before = kit.Balance();
        kit.OperatorTraffic.RewriteResponse("POST", RoundTrip1, (exchange, body) => DebitForOneEuroMore(kit, exchange, body));

        var error = await Assert.ThrowsAsync<WalletException>(() => kit.BuyAsync("book-002", "books", SettlementProfile.Lean));

        Assert.Equal("card.refused:9403", error.Code);
        Assert.False(error.CardDebited);
        Assert.Equal([PurseInstruction.Select, PurseInstruction.InitializeUpdate, PurseInstruction.ExternalAuthenticate, PurseInstruction.Debit], kit.Reader.Instructions);
        // The forged commands are genuine for the session: EXTERNAL AUTHENTICATE passed, the DEBIT's MAC too; only the approval stopped it.
        Assert.True(kit.Reader.Log[2].Answer.IsOk);
        Assert.Equal(StatusWord.ApprovalMismatch, kit.Reader.Log[3].Answer.Status);
        await AssertNothingDebitedAsync(kit, before);
    }

    [SuiteFact]
    public async Task Debit_OperatorAsksMoreThanApproved_SignedProfile_WalletRefusesBeforeTheCard()
    {
        await using var kit = await StartKitAsync();
        var before = kit.Balance();
        kit.OperatorTraffic.RewriteResponse("POST", RoundTrip1, (exchange, body) => DebitForOneEuroMore(kit, exchange, body));

        var error = await Assert.ThrowsAsync<WalletException>(() => kit.BuyAsync("book-002", "books", SettlementProfile.Signed));

        Assert.Equal("settlement_info.mismatch", error.Code);
        Assert.Contains("debit digest", error.Message, StringComparison.Ordinal);
        Assert.False(error.CardDebited);
        Assert.Equal([PurseInstruction.Select, PurseInstruction.InitializeUpdate], kit.Reader.Instructions);
        await AssertNothingDebitedAsync(kit, before);
    }

    // Round trip 1's answer with EXTERNAL AUTHENTICATE and DEBIT rebuilt by the operator's security
    // module for the card's real session, the DEBIT for the bill's amount plus 1.00 EUR.
    private static string DebitForOneEuroMore(EndToEndKit kit, Exchange exchange, string body)
    {
        var request = JsonSerializer.Deserialize<StartSettlementRequest>(exchange.RequestBody!, ProtocolJson.Options)!;
        Assert.True(CardGreeting.TryParse(Convert.FromBase64String(request.CardGreeting), out var greeting));
        var bill = SignedMessage.Verify<Bill>(request.Bill, kit.MemberKeys.SetFor("books"), MessageTypes.Bill, out _)!;
        var answer = JsonNode.Parse(body)!.AsObject();
        var settlementId = Guid.Parse((string)answer["settlementId"]!);

        using var session = kit.Security.OpenCardSession(greeting.CardId, SignedMessage.HostChallengeFor(request.Bill), greeting, out _)!;
        var externalAuthenticate = session.ExternalAuthenticate();
        var debit = session.Debit(new ValueCommand(settlementId, SignedMessage.DigestBytes(request.Bill), bill.Amount + EndToEndKit.Eur("1.00"), greeting.Status.Counter));
        answer["externalAuthenticate"] = Convert.ToBase64String(externalAuthenticate.ToBytes());
        answer["debit"] = Convert.ToBase64String(debit.ToBytes());
        Assert.NotEqual((string)answer["debit"]!, Tamper.Read(body, "debit"));
        return answer.ToJsonString();
    }

    private static async Task AssertNothingDebitedAsync(EndToEndKit kit, Protocol.Money before)
    {
        Assert.Equal(before, kit.Balance());
        var started = kit.OperatorTraffic.Single("POST", RoundTrip1);
        var settlementId = Guid.Parse(Tamper.Read(started.ResponseBody, "settlementId"));
        Assert.NotEqual("completed", await kit.SettlementStateAsync(settlementId));
        Assert.Equal(0, kit.OperatorTraffic.Count("POST", "/completion$"));
        var orderNo = Tamper.Read(kit.StoreTraffic.Single("POST", "^/v1/orders$").ResponseBody, "orderNo");
        Assert.Equal("billed", await kit.OrderStateAsync(orderNo));
    }
}

/// <summary>The suite on the embedded defaults.</summary>
public sealed class ApprovalOnEmbeddedTest() : ApprovalTest(realSet: null);

/// <summary>The suite on the real set: PostgreSQL, SoftHSM2, PC/SC, TLS, two nodes behind HAProxy.</summary>
[Collection(SoftHsmInProcess.Name)]
[UsesComponents(Components.PostgreSql, Components.SoftHsm, Components.Pcscd, Components.Vpcd, Components.HaProxy)]
public sealed class ApprovalOnRealSetTest(RealInfrastructure realSet) : ApprovalTest(realSet);
