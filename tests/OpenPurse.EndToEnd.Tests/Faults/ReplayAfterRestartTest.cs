using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Testing;
using OpenPurse.Wallet.Readers;

namespace OpenPurse.EndToEnd.Tests.Faults;

/// <summary>
/// Every message of a completed purchase, recorded on the wire and sent again after the operator
/// and the store were killed and came back: each replay is refused or answered as before, and
/// nothing moves twice. The refusals rest on what the registry and the card keep, not on memory.
/// </summary>
public abstract class ReplayAfterRestartTest(ProcessSystemFixture fixture)
{
    private const string RoundTrip1 = "/v1/settlements";

    private protected abstract bool UsesPostgres { get; }

    private protected async Task RunAsync()
    {
        var system = await fixture.SystemAsync(UsesPostgres, TimeSpan.FromSeconds(6));
        var card = await system.IssueCardAsync("replayed", Money.Parse("50.00 EUR"));
        var (cardId, _) = ProcessSystem.ReadCard(card);
        using (var wallet = system.StartWallet(card, "book-002", SettlementProfile.Signed))
        {
            Assert.Equal(0, await wallet.WaitAsync(TimeSpan.FromSeconds(60)));
        }

        var recorded = system.WalletToOperator.Exchanges.Concat(system.WalletToStore.Exchanges).Concat(system.OperatorToStore.Exchanges).ToList();
        var roundTrip1 = recorded.Last(e => e.Method == "POST" && e.Path == RoundTrip1);
        var roundTrip2 = recorded.Last(e => e.Method == "POST" && e.Path.EndsWith("/completion", StringComparison.Ordinal) && e.Path.StartsWith("/v1/settlements/", StringComparison.Ordinal));
        var acnToStore = recorded.Last(e => e.Method == "POST" && e.Path == "/v1/operator/completions");
        var balance = ProcessSystem.ReadCard(card).Balance;

        system.KillOperator();
        system.KillStore();
        await system.ReviveAsync();

        // The bill again: refused by digest, from the registry.
        using var operatorHttp = new HttpClient { BaseAddress = system.OperatorUrl };
        using var storeHttp = new HttpClient { BaseAddress = system.StoreUrl };
        using (var again = await ReplayAsync(operatorHttp, roundTrip1))
        {
            Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
            Assert.Equal("bill.replayed", JsonDocument.Parse(await again.Content.ReadAsStringAsync()).RootElement.GetProperty("code").GetString());
        }

        // The card's answer again: the same ACN, one debit.
        using (var again = await ReplayAsync(operatorHttp, roundTrip2))
        {
            Assert.Equal(HttpStatusCode.OK, again.StatusCode);
            Assert.Equal(
                JsonSerializer.Deserialize<CompleteSettlementResponse>(roundTrip2.ResponseBody, ProtocolJson.Options)!.CompletionNotice,
                (await JsonSerializer.DeserializeAsync<CompleteSettlementResponse>(await again.Content.ReadAsStreamAsync(), ProtocolJson.Options))!.CompletionNotice);
        }

        // The ACN to the store again: the same receipt, the order paid once.
        using (var again = await ReplayAsync(storeHttp, acnToStore))
        {
            Assert.Equal(HttpStatusCode.OK, again.StatusCode);
            Assert.Equal(acnToStore.ResponseBody, await again.Content.ReadAsByteArrayAsync());
        }

        // The settlement's commands again, to the card: no session accepts them.
        var started = JsonSerializer.Deserialize<StartSettlementResponse>(roundTrip1.ResponseBody, ProtocolJson.Options)!;
        using (var reader = InProcessReader.Open(card))
        {
            var walletCard = new WalletCard(reader);
            walletCard.Select();
            Assert.Equal(StatusWord.ConditionsNotSatisfied, reader.Transmit(Apdu(started.ExternalAuthenticate)).Status);
            var debit = Apdu(started.Debit);
            var bill = JsonDocument.Parse(roundTrip1.RequestBody).RootElement.GetProperty("bill").GetString()!;
            var approval = new Approval(Money.Parse("12.50 EUR"), SignedMessage.DigestBytes(bill));
            Assert.Equal(StatusWord.SecurityStatusNotSatisfied, reader.Transmit(CardHostSession.WithApproval(debit, approval)).Status);
        }

        Assert.Equal(balance, ProcessSystem.ReadCard(card).Balance);
        Assert.Equal(balance.MinorUnits, await system.CardAccountAsync(cardId));
        var settlements = await system.SettlementsOfAsync(cardId);
        Assert.Equal("completed", Assert.Single(settlements).State);
        Assert.Equal("paid", await system.OrderStateAsync(settlements[0].OrderNo));
        var ledger = await system.ReconcileAsync();
        Assert.True(ledger.IsClean, ledger.ToText());
    }

    private static CommandApdu Apdu(string base64) =>
        CommandApdu.TryParse(Convert.FromBase64String(base64), out var command) ? command : throw new FormatException("Not an APDU.");

    private static async Task<HttpResponseMessage> ReplayAsync(HttpClient http, RelayedExchange exchange)
    {
        using var request = new HttpRequestMessage(new HttpMethod(exchange.Method), exchange.Path) { Content = new ByteArrayContent(exchange.RequestBody) };
        request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(exchange.ContentType ?? "application/json");
        return await http.SendAsync(request);
    }
}

/// <summary>Replays after a restart, on SQLite.</summary>
public sealed class ReplayAfterRestartOnSqliteTest(ProcessSystemFixture fixture) : ReplayAfterRestartTest(fixture), IClassFixture<ProcessSystemFixture>
{
    private protected override bool UsesPostgres => false;

    [Fact]
    public Task Replays_AfterOperatorAndStoreRestart_RefusedOrAnsweredAsBeforeNothingTwice() => RunAsync();
}

/// <summary>Replays after a restart, on PostgreSQL.</summary>
public sealed class ReplayAfterRestartOnPostgreSqlTest(ProcessSystemFixture fixture) : ReplayAfterRestartTest(fixture), IClassFixture<ProcessSystemFixture>
{
    private protected override bool UsesPostgres => true;

    [IntegrationFact(Components.PostgreSql)]
    public Task Replays_AfterOperatorAndStoreRestart_RefusedOrAnsweredAsBeforeNothingTwice() => RunAsync();
}
