using System.Text.Json.Nodes;
using OpenPurse.Protocol.Messages;
using OpenPurse.Testing;
using OpenPurse.Wallet.Purchase;

namespace OpenPurse.EndToEnd.Tests;

/// <summary>
/// Recovery as the card holder meets it, on each deployment: a payment whose completion notice
/// never reaches the operator is either completed from the card's log the next time the card is
/// used, or — after the sweeper expired it — returned to the card by a CREDIT, which the wallet
/// takes by itself before the next payment. One debit, one outcome, whatever the order.
/// </summary>
public abstract class RecoveryEndToEndTest(RealInfrastructure? realSet) : EndToEndSuite(realSet)
{
    private const string RoundTrip2 = "^/v1/settlements/[^/]+/completion$";

    private static readonly TimeSpan s_settlementTimeout = TimeSpan.FromSeconds(2);

    private static readonly Protocol.Money s_book = EndToEndKit.Eur("12.50");

    [SuiteFact]
    public async Task Purchase_CompletionNoticeLost_NextPurchaseCompletesItFromTheCardsLog()
    {
        await using var kit = await StartKitAsync(settlementTimeout: TimeSpan.FromMinutes(5));
        var before = kit.Balance();
        var lost = await LoseCompletionAsync(kit);

        var next = await kit.BuyAsync("book-001", "books");

        Assert.Equal("completed", await kit.SettlementStateAsync(lost));
        Assert.Equal("completed", await kit.SettlementStateAsync(next.SettlementId));
        Assert.Equal(before - s_book - EndToEndKit.Eur("4.99"), kit.Balance());
    }

    [SuiteFact]
    public async Task Purchase_CompletionNoticeLostPastTheDeadline_WalletTakesTheValueBackThenPays()
    {
        await using var kit = await StartKitAsync(settlementTimeout: s_settlementTimeout);
        var before = kit.Balance();
        var lost = await LoseCompletionAsync(kit);
        await WaitForStateAsync(kit, lost, "expired");

        var next = await kit.BuyAsync("book-001", "books", SettlementProfile.Lean);

        Assert.Equal("reversed", await kit.SettlementStateAsync(lost));
        Assert.Equal("completed", await kit.SettlementStateAsync(next.SettlementId));
        Assert.Equal(before - EndToEndKit.Eur("4.99"), kit.Balance());
        // One sync made the CREDIT; the second asked whether the card was owed more, and it was not.
        Assert.Equal(2, kit.OperatorTraffic.Count("POST", "^/v1/cards/sync$"));
        Assert.Equal(1, kit.OperatorTraffic.Count("POST", "^/v1/cards/credits/[^/]+/completion$"));
    }

    [SuiteFact]
    public async Task Sync_ValueUpdateSwappedForItsHighSTwin_NothingCreditedThenTheGenuineOneReturnsTheValue()
    {
        await using var kit = await StartKitAsync(settlementTimeout: s_settlementTimeout);
        var before = kit.Balance();
        var lost = await LoseCompletionAsync(kit);
        await WaitForStateAsync(kit, lost, "expired");
        var twinned = false;
        kit.OperatorTraffic.RewriteResponse("POST", "^/v1/cards/sync$", (_, body) =>
        {
            var answer = JsonNode.Parse(body)!.AsObject();
            if (twinned || answer["credit"] is not JsonObject credit)
            {
                return body;
            }

            twinned = true;
            credit["valueUpdate"] = SignatureTwin.Of((string)credit["valueUpdate"]!);
            return answer.ToJsonString();
        });

        var error = await Assert.ThrowsAsync<WalletException>(() => kit.BuyAsync("book-001", "books", SettlementProfile.Lean));

        Assert.Equal("value_update.signature.high_s", error.Code);
        Assert.Equal(before - s_book, kit.Balance());
        Assert.Equal(0, kit.OperatorTraffic.Count("POST", "^/v1/cards/credits/[^/]+/completion$"));

        var next = await kit.BuyAsync("book-001", "books", SettlementProfile.Lean);

        Assert.True(twinned);
        Assert.Equal("reversed", await kit.SettlementStateAsync(lost));
        Assert.Equal("completed", await kit.SettlementStateAsync(next.SettlementId));
        Assert.Equal(before - EndToEndKit.Eur("4.99"), kit.Balance());
    }

    // A purchase whose card pays but whose every round trip 2 is lost: the wallet gives up, saying the card paid.
    private static async Task<Guid> LoseCompletionAsync(EndToEndKit kit)
    {
        kit.OperatorTraffic.LoseRequests("POST", RoundTrip2);
        var error = await Assert.ThrowsAsync<WalletException>(() => kit.BuyAsync("book-002", "books"));
        kit.OperatorTraffic.StopLosing();
        Assert.True(error.CardDebited, error.Message);
        return error.SettlementId!.Value;
    }

    private static async Task WaitForStateAsync(EndToEndKit kit, Guid settlementId, string state)
    {
        var deadline = DateTime.UtcNow + s_settlementTimeout + TimeSpan.FromSeconds(20);
        while (await kit.SettlementStateAsync(settlementId) != state)
        {
            Assert.True(DateTime.UtcNow < deadline, $"Settlement {settlementId} never became {state}.");
            await Task.Delay(100);
        }
    }
}

/// <summary>The suite on the embedded defaults.</summary>
public sealed class RecoveryOnEmbeddedTest() : RecoveryEndToEndTest(realSet: null);

/// <summary>The suite on the real set: PostgreSQL, SoftHSM2, PC/SC, TLS, two nodes behind HAProxy.</summary>
[Collection(SoftHsmInProcess.Name)]
[UsesComponents(Components.PostgreSql, Components.SoftHsm, Components.Pcscd, Components.Vpcd, Components.HaProxy)]
public sealed class RecoveryOnRealSetTest(RealInfrastructure realSet) : RecoveryEndToEndTest(realSet);
