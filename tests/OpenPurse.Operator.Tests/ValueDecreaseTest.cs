using System.Buffers.Text;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using Dapper;
using Microsoft.Extensions.Time.Testing;
using OpenPurse.Operator.Credits;
using OpenPurse.Operator.Registry;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Testing;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// Transfers to another card and cash-outs to a bank account over real HTTP: the DEBIT is made for
/// the card's session and described by the value decrease information; its effect (the payee's
/// credit, the payout) is posted exactly when the card's answer or its next greeting proves it ran,
/// never when it provably did not; the books reconcile after each. Every test runs on each registry
/// engine (the subclasses at the end of this file).
/// </summary>
public abstract class ValueDecreaseTest
{
    private const long Loaded = 10_000;
    private const string Iban = "DE89370400440532013000";
    private const string Holder = "Erika Mustermann";

    private static Money Eur(long minor) => new(minor, Currency.Eur);

    /// <summary>A new PostgreSQL database for one kit, or null for SQLite.</summary>
    private protected abstract Task<PostgresDatabase?> CreateDatabaseAsync();

    [SuiteFact]
    public async Task Transfer_ToAnOfflineCard_DebitedOnce_OwedToThePayee_BooksReconcile()
    {
        await using var kit = await StartKitAsync();
        var payee = await kit.IssueCardAsync(0);
        var request = Transfer(kit, Eur(2_500), payee.CardId.Digits);

        var started = await StartOkAsync<TransferResponse>(kit, "/v1/transfers", request);
        Assert.Equal(("debiting", Eur(2_500), payee.CardId.Masked), (started.State, started.Amount, started.Payee));
        var decrease = ValueDecreaseOf(kit, started.Debit);
        Assert.Equal((ValueDecreasePurposes.Transfer, request.TransferId, Eur(2_500), Eur(Loaded), payee.CardId.Masked, kit.Reader.CardId.Digits),
            (decrease.Purpose, decrease.SourceId, decrease.Amount, decrease.Balance, decrease.Payee, decrease.CardId));
        var digest = ValueDecreasePurposes.OrderDigest(ValueDecreasePurposes.Transfer, request.TransferId, Eur(2_500), payee.CardId.Digits);
        Assert.Equal(Base64Url.EncodeToString(digest), decrease.OrderDigest);
        Assert.Equal(Base64Url.EncodeToString(SHA256.HashData(Convert.FromBase64String(started.Debit.Debit))), decrease.DebitDigest);

        // The same request again: the same answer; nothing is owed before the card ran the DEBIT.
        var again = await StartOkAsync<TransferResponse>(kit, "/v1/transfers", request);
        Assert.Equal(JsonSerializer.Serialize(started, ProtocolJson.Options), JsonSerializer.Serialize(again, ProtocolJson.Options));
        Assert.Null(await CreditStateAsync(kit, ValueUpdatePurposes.Transfer, request.TransferId));

        var answer = RunDebit(kit, started.Debit, Eur(2_500), digest);
        var view = await CompleteOkAsync<TransferView>(kit, $"/v1/transfers/{request.TransferId}/completion", answer);
        Assert.Equal(("debited", Eur(Loaded - 2_500)), (view.State, view.BalanceAfter));
        await kit.AssertBooksAsync(Eur(Loaded - 2_500));
        Assert.Equal("owed", await CreditStateAsync(kit, ValueUpdatePurposes.Transfer, request.TransferId));
        Assert.Equal(2_500, await AccountAsync(kit, Account.Pending.Text));
        Assert.Equal(2_500, (await kit.ReconcileAsync()).Currencies.Single().Pending);

        // The completion repeated answers the same and posts nothing more; so does a sync.
        Assert.Equal("debited", (await CompleteOkAsync<TransferView>(kit, $"/v1/transfers/{request.TransferId}/completion", answer)).State);
        await kit.SyncOkAsync();
        await kit.AssertBooksAsync(Eur(Loaded - 2_500));
        Assert.Equal(2_500, await AccountAsync(kit, Account.Pending.Text));

        // The payee comes online: its sync gives it the value as a CREDIT with SIG5, once.
        var credit = Assert.IsType<CardCredit>((await kit.SyncOkAsync(kit.SyncGreeting(payee))).Credit);
        Assert.Equal((ValueUpdatePurposes.Transfer, request.TransferId, Eur(2_500)), (kit.ValueUpdateOf(credit).Purpose, kit.ValueUpdateOf(credit).SourceId, kit.ValueUpdateOf(credit).Amount));
        var (authenticated, taken) = kit.TryRunCard(credit.ExternalAuthenticate, credit.Credit, kit.ApprovalOf(credit), payee);
        Assert.Equal((StatusWord.Ok, StatusWord.Ok), (authenticated.Status, taken.Status));
        using (var completed = await kit.CompleteCreditAsync(credit.ValueUpdateId, taken))
        {
            Assert.True(completed.IsSuccessStatusCode, await completed.Content.ReadAsStringAsync());
        }

        Assert.Equal(Eur(2_500), kit.Balance(payee));
        Assert.Equal("credited", await CreditStateAsync(kit, ValueUpdatePurposes.Transfer, request.TransferId));
        Assert.Null((await kit.SyncOkAsync(kit.SyncGreeting(payee))).Credit);
        Assert.Equal(0, await AccountAsync(kit, Account.Pending.Text));
        await kit.AssertBooksAsync(Eur(Loaded - 2_500));
    }

    [SuiteFact]
    public async Task CashOut_ValidIban_Debited_ListedMasked_ExportedInFull_Paid_LeavesCirculation()
    {
        await using var kit = await StartKitAsync();
        var request = CashOut(kit, Eur(3_000), "de89 3704 0044 0532 0130 00");

        var started = await StartOkAsync<CashOutResponse>(kit, "/v1/cashouts", request);
        Assert.Equal(("debiting", "DE…3000"), (started.State, started.Payee));
        var decrease = ValueDecreaseOf(kit, started.Debit);
        Assert.Equal((ValueDecreasePurposes.CashOut, "DE…3000"), (decrease.Purpose, decrease.Payee));
        // The digest names the IBAN in its electronic form, as the wallet computes it from what was typed.
        var digest = ValueDecreasePurposes.OrderDigest(ValueDecreasePurposes.CashOut, request.CashOutId, Eur(3_000), Iban);
        Assert.Equal(Base64Url.EncodeToString(digest), decrease.OrderDigest);

        var view = await CompleteOkAsync<CashOutView>(kit, $"/v1/cashouts/{request.CashOutId}/completion", RunDebit(kit, started.Debit, Eur(3_000), digest));
        Assert.Equal(("debited", Eur(Loaded - 3_000)), (view.State, view.BalanceAfter));
        await kit.AssertBooksAsync(Eur(Loaded - 3_000));
        Assert.Equal(3_000, await AccountAsync(kit, Account.Payouts.Text));

        // Listed masked for an auditor; exported in full, for the bank, by an administrator only.
        var listed = await AdminGetAsync(kit, "/v1/admin/payouts", OperatorKit.AuditorToken);
        Assert.Contains("DE…3000", listed, StringComparison.Ordinal);
        Assert.Contains(Holder, listed, StringComparison.Ordinal);
        Assert.DoesNotContain(Iban, listed, StringComparison.Ordinal);
        using (var forbidden = await kit.AdminPostAsync("/v1/admin/payouts/export", OperatorKit.AuditorToken))
        {
            Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
        }

        using (var export = await kit.AdminPostAsync("/v1/admin/payouts/export"))
        {
            Assert.Equal("text/csv", export.Content.Headers.ContentType?.MediaType);
            var lines = (await export.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(["cashout_id,iban,account_holder,amount,currency,debited_at", $"{request.CashOutId},{Iban},\"{Holder}\",30.00,EUR"], [lines[0], string.Join(',', lines[1].Split(',')[..5])]);
        }

        using (var paid = await kit.AdminPostAsync($"/v1/admin/payouts/{request.CashOutId}/paid"))
        {
            Assert.True(paid.IsSuccessStatusCode, await paid.Content.ReadAsStringAsync());
        }

        using (var twice = await kit.AdminPostAsync($"/v1/admin/payouts/{request.CashOutId}/returned"))
        {
            Assert.Equal("payout.not_pending", await OperatorKit.CodeOf(twice));
        }

        await kit.AssertBooksAsync(Eur(Loaded - 3_000));
        var books = (await kit.ReconcileAsync()).Currencies.Single();
        Assert.Equal((Loaded - 3_000, 0L), (books.Issued, books.Payouts));
        Assert.DoesNotContain(Iban, await AdminGetAsync(kit, "/v1/admin/payouts", OperatorKit.AuditorToken), StringComparison.Ordinal);
        var audit = await AdminGetAsync(kit, "/v1/admin/audit?limit=20", OperatorKit.AuditorToken);
        Assert.Contains("payout.export", audit, StringComparison.Ordinal);
        Assert.Contains("payout.paid", audit, StringComparison.Ordinal);
    }

    [SuiteFact]
    public async Task CashOut_ReturnedByTheBank_OwedToTheCardAgain()
    {
        await using var kit = await StartKitAsync();
        var request = CashOut(kit, Eur(1_000), Iban);
        var started = await StartOkAsync<CashOutResponse>(kit, "/v1/cashouts", request);
        var digest = ValueDecreasePurposes.OrderDigest(ValueDecreasePurposes.CashOut, request.CashOutId, Eur(1_000), Iban);
        await CompleteOkAsync<CashOutView>(kit, $"/v1/cashouts/{request.CashOutId}/completion", RunDebit(kit, started.Debit, Eur(1_000), digest));

        using (var returned = await kit.AdminPostAsync($"/v1/admin/payouts/{request.CashOutId}/returned"))
        {
            Assert.True(returned.IsSuccessStatusCode, await returned.Content.ReadAsStringAsync());
        }

        Assert.Equal("returned", await StateAsync(kit, "cashouts", "cashout_id", request.CashOutId));
        Assert.Equal("owed", await CreditStateAsync(kit, ValueUpdatePurposes.Refund, request.CashOutId));
        Assert.Equal((1_000L, 0L), (await AccountAsync(kit, Account.Pending.Text), await AccountAsync(kit, Account.Payouts.Text)));
        await kit.AssertBooksAsync(Eur(Loaded - 1_000));
    }

    [Theory]
    [InlineData("DE89370400440532013001", "check digits")]
    [InlineData("XX89370400440532013000", "country")]
    [InlineData("DE8937040044053201300", "length")]
    [InlineData("not an iban", "An IBAN is")]
    [InlineData("", "An IBAN is")]
    public async Task CashOut_InvalidIban_Refused_NothingWritten(string iban, string detail)
    {
        await using var kit = await StartKitAsync();

        using var response = await StartAsync(kit, "/v1/cashouts", CashOut(kit, Eur(1_000), iban));

        Assert.Equal((HttpStatusCode)422, response.StatusCode);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("iban.invalid", problem.GetProperty("code").GetString());
        Assert.Contains(detail, problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.True(iban.Length == 0 || !problem.GetProperty("detail").GetString()!.Contains(iban, StringComparison.Ordinal));
        Assert.Equal(0, await RowsAsync(kit, "cashouts"));
        await kit.AssertBooksAsync(Eur(Loaded));
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("Erika\nMustermann")]
    public async Task CashOut_NoAccountHolder_Refused(string holder)
    {
        await using var kit = await StartKitAsync();

        using var response = await StartAsync(kit, "/v1/cashouts", CashOut(kit, Eur(1_000), Iban) with { AccountHolder = holder });

        Assert.Equal("cashout.holder_invalid", await OperatorKit.CodeOf(response));
        Assert.Equal(0, await RowsAsync(kit, "cashouts"));
    }

    [SuiteFact]
    public async Task AmountAboveTheBalance_OrNotAbovezero_OrAnotherCurrency_Refused_NothingWritten()
    {
        await using var kit = await StartKitAsync();
        var payee = await kit.IssueCardAsync(0);

        using (var above = await StartAsync(kit, "/v1/transfers", Transfer(kit, Eur(Loaded + 1), payee.CardId.Digits)))
        {
            Assert.Equal("card.insufficient_funds", await OperatorKit.CodeOf(above));
        }

        using (var cashOut = await StartAsync(kit, "/v1/cashouts", CashOut(kit, Eur(Loaded + 1), Iban)))
        {
            Assert.Equal("card.insufficient_funds", await OperatorKit.CodeOf(cashOut));
        }

        using (var zero = await StartAsync(kit, "/v1/transfers", Transfer(kit, Eur(0), payee.CardId.Digits)))
        {
            Assert.Equal("request.malformed", await OperatorKit.CodeOf(zero));
        }

        using (var usd = await StartAsync(kit, "/v1/transfers", Transfer(kit, new Money(100, Currency.FromCode("USD")), payee.CardId.Digits)))
        {
            Assert.Equal("card.insufficient_funds", await OperatorKit.CodeOf(usd));
        }

        // The whole balance is allowed.
        var all = Transfer(kit, Eur(Loaded), payee.CardId.Digits);
        var started = await StartOkAsync<TransferResponse>(kit, "/v1/transfers", all);
        var digest = ValueDecreasePurposes.OrderDigest(ValueDecreasePurposes.Transfer, all.TransferId, Eur(Loaded), payee.CardId.Digits);
        Assert.Equal("debited", (await CompleteOkAsync<TransferView>(kit, $"/v1/transfers/{all.TransferId}/completion", RunDebit(kit, started.Debit, Eur(Loaded), digest))).State);
        await kit.AssertBooksAsync(Eur(0));
        Assert.Equal(0, await RowsAsync(kit, "cashouts"));
    }

    [SuiteFact]
    public async Task Transfer_ToItself_ToAnUnknownCard_ToABlockedCard_ToNoCardNumber_Refused()
    {
        await using var kit = await StartKitAsync();
        var blocked = await kit.IssueCardAsync(0);
        using (var block = await kit.AdminPostAsync($"/v1/admin/cards/{blocked.CardId.Digits}/block"))
        {
            Assert.True(block.IsSuccessStatusCode);
        }

        string[] payees = [kit.Reader.CardId.Digits, blocked.CardId.Digits, FirstValidAfter(kit.Reader.CardId.Digits), "1234"];
        foreach (var payee in payees)
        {
            using var response = await StartAsync(kit, "/v1/transfers", Transfer(kit, Eur(100), payee));
            Assert.Equal("transfer.payee_invalid", await OperatorKit.CodeOf(response));
        }

        Assert.Equal(0, await RowsAsync(kit, "transfers"));
        await kit.AssertBooksAsync(Eur(Loaded));
    }

    [SuiteFact]
    public async Task SameId_AnotherBody_Conflicts()
    {
        await using var kit = await StartKitAsync();
        var request = CashOut(kit, Eur(1_000), Iban);
        await StartOkAsync<CashOutResponse>(kit, "/v1/cashouts", request);

        using var response = await StartAsync(kit, "/v1/cashouts", request with { Iban = "GB82WEST12345698765432" });

        Assert.Equal("cashout.conflict", await OperatorKit.CodeOf(response));
    }

    [SuiteFact]
    public async Task CompletionLost_NextSync_DebitsOnce()
    {
        await using var kit = await StartKitAsync();
        var payee = await kit.IssueCardAsync(0);
        var request = Transfer(kit, Eur(2_500), payee.CardId.Digits);
        var started = await StartOkAsync<TransferResponse>(kit, "/v1/transfers", request);
        var digest = ValueDecreasePurposes.OrderDigest(ValueDecreasePurposes.Transfer, request.TransferId, Eur(2_500), payee.CardId.Digits);
        var answer = RunDebit(kit, started.Debit, Eur(2_500), digest);

        // The answer never reaches the operator; the card syncs.
        await kit.SyncOkAsync();

        Assert.Equal("debited", await StateAsync(kit, "transfers", "transfer_id", request.TransferId));
        await kit.AssertBooksAsync(Eur(Loaded - 2_500));
        Assert.Equal(2_500, await AccountAsync(kit, Account.Pending.Text));

        // The lost answer arriving late, and another sync, change nothing.
        Assert.Equal("debited", (await CompleteOkAsync<TransferView>(kit, $"/v1/transfers/{request.TransferId}/completion", answer)).State);
        await kit.SyncOkAsync();
        await kit.AssertBooksAsync(Eur(Loaded - 2_500));
        Assert.Equal(2_500, await AccountAsync(kit, Account.Pending.Text));
    }

    [SuiteFact]
    public async Task CashOutNeverRun_NextSync_Abandons_NothingMoves()
    {
        await using var kit = await StartKitAsync();
        var request = CashOut(kit, Eur(2_500), Iban);
        var started = await StartOkAsync<CashOutResponse>(kit, "/v1/cashouts", request);

        // The person walks away: the card never runs the DEBIT and greets again.
        await kit.SyncOkAsync();

        Assert.Equal("abandoned", await StateAsync(kit, "cashouts", "cashout_id", request.CashOutId));
        await kit.AssertBooksAsync(Eur(Loaded));
        Assert.Equal(0, await AccountAsync(kit, Account.Payouts.Text));
        Assert.Empty(JsonSerializer.Deserialize<JsonElement[]>(await AdminGetAsync(kit, "/v1/admin/payouts", OperatorKit.AuditorToken))!);

        // The DEBIT cannot run any more, the cash-out cannot be completed, nor asked for again.
        var digest = ValueDecreasePurposes.OrderDigest(ValueDecreasePurposes.CashOut, request.CashOutId, Eur(2_500), Iban);
        var (_, late) = kit.TryRunCard(started.Debit.ExternalAuthenticate, started.Debit.Debit, new Approval(Eur(2_500), digest));
        Assert.False(late.IsOk);
        using (var completion = await CompleteAsync(kit, $"/v1/cashouts/{request.CashOutId}/completion", late))
        {
            Assert.Equal("cashout.conflict", await OperatorKit.CodeOf(completion));
        }

        using (var again = await StartAsync(kit, "/v1/cashouts", request))
        {
            Assert.Equal("cashout.conflict", await OperatorKit.CodeOf(again));
        }

        await kit.AssertBooksAsync(Eur(Loaded));
    }

    [SuiteFact]
    public async Task ApprovalForAnotherPayee_TheCardRefuses_NothingWritten_NextSyncAbandons()
    {
        await using var kit = await StartKitAsync();
        var payee = await kit.IssueCardAsync(0);
        var other = await kit.IssueCardAsync(0);
        var request = Transfer(kit, Eur(2_500), payee.CardId.Digits);
        var started = await StartOkAsync<TransferResponse>(kit, "/v1/transfers", request);

        // A wallet that asked for another payee approves its own digest: the DEBIT made for this one does not run.
        var digest = ValueDecreasePurposes.OrderDigest(ValueDecreasePurposes.Transfer, request.TransferId, Eur(2_500), other.CardId.Digits);
        var (_, refused) = kit.TryRunCard(started.Debit.ExternalAuthenticate, started.Debit.Debit, new Approval(Eur(2_500), digest));
        Assert.False(refused.IsOk);
        using (var completion = await CompleteAsync(kit, $"/v1/transfers/{request.TransferId}/completion", refused))
        {
            Assert.Equal("card.refused", await OperatorKit.CodeOf(completion));
        }

        Assert.Equal("debiting", await StateAsync(kit, "transfers", "transfer_id", request.TransferId));
        await kit.AssertBooksAsync(Eur(Loaded));
        await kit.SyncOkAsync();
        Assert.Equal("abandoned", await StateAsync(kit, "transfers", "transfer_id", request.TransferId));
        Assert.Null(await CreditStateAsync(kit, ValueUpdatePurposes.Transfer, request.TransferId));
        await kit.AssertBooksAsync(Eur(Loaded));
    }

    [SuiteFact]
    public async Task TamperedAnswer_Refused_NothingWritten()
    {
        await using var kit = await StartKitAsync();
        var request = CashOut(kit, Eur(1_000), Iban);
        var started = await StartOkAsync<CashOutResponse>(kit, "/v1/cashouts", request);
        var digest = ValueDecreasePurposes.OrderDigest(ValueDecreasePurposes.CashOut, request.CashOutId, Eur(1_000), Iban);
        var answer = RunDebit(kit, started.Debit, Eur(1_000), digest).ToBytes();
        answer[2] ^= 0x01;

        using var response = await CompleteAsync(kit, $"/v1/cashouts/{request.CashOutId}/completion", ResponseApdu.Parse(answer));

        Assert.Equal("card.answer_invalid", await OperatorKit.CodeOf(response));
        Assert.Equal("debiting", await StateAsync(kit, "cashouts", "cashout_id", request.CashOutId));
        Assert.Equal(0, await AccountAsync(kit, Account.Payouts.Text));
        // The card did run it: its next greeting proves so, and the payout is due once.
        await kit.SyncOkAsync();
        Assert.Equal("debited", await StateAsync(kit, "cashouts", "cashout_id", request.CashOutId));
        await kit.AssertBooksAsync(Eur(Loaded - 1_000));
    }

    [SuiteFact]
    public async Task OpenTransfer_APurchaseStart_AbandonsIt_AndThePurchaseGoesAhead()
    {
        await using var kit = await StartKitAsync();
        var payee = await kit.IssueCardAsync(0);
        var request = Transfer(kit, Eur(2_500), payee.CardId.Digits);
        await StartOkAsync<TransferResponse>(kit, "/v1/transfers", request);

        var bill = kit.Bill(Eur(1_000));
        var purchase = await kit.StartOkAsync(bill);

        Assert.Equal("abandoned", await StateAsync(kit, "transfers", "transfer_id", request.TransferId));
        using var completed = await kit.CompleteAsync(purchase.SettlementId, kit.RunCard(purchase, bill));
        Assert.True(completed.IsSuccessStatusCode);
        await kit.AssertBooksAsync(Eur(Loaded - 1_000));
    }

    private async Task<OperatorKit> StartKitAsync()
    {
        var kit = await OperatorKit.StartAsync(Loaded, postgres: await CreateDatabaseAsync(), sweepInterval: TimeSpan.Zero, time: new FakeTimeProvider(DateTimeOffset.UtcNow));
        await kit.RegisterStoreAsync("shop", kit.StoreKey);
        return kit;
    }

    private static TransferRequest Transfer(OperatorKit kit, Money amount, string payee)
    {
        var greeting = kit.SyncGreeting();
        return new TransferRequest(Guid.NewGuid(), amount, payee, greeting.HostChallenge, greeting.CardGreeting);
    }

    private static CashOutRequest CashOut(OperatorKit kit, Money amount, string iban)
    {
        var greeting = kit.SyncGreeting();
        return new CashOutRequest(Guid.NewGuid(), amount, iban, Holder, greeting.HostChallenge, greeting.CardGreeting);
    }

    /// <summary>A card number with a valid check digit that no card was issued with.</summary>
    private static string FirstValidAfter(string digits)
    {
        for (var n = long.Parse(digits, System.Globalization.CultureInfo.InvariantCulture) + 1_000_000; ; n++)
        {
            if (CardId.TryParse(n.ToString("D16", System.Globalization.CultureInfo.InvariantCulture), out var card))
            {
                return card.Digits;
            }
        }
    }

    /// <summary>The value decrease information of a DEBIT, which must verify with the operator's keys.</summary>
    private static ValueDecrease ValueDecreaseOf(OperatorKit kit, CardDebit debit)
    {
        var decrease = SignedMessage.Verify<ValueDecrease>(debit.ValueDecrease, kit.OperatorKeys, MessageTypes.ValueDecrease, out var error);
        Assert.True(decrease is not null, $"The value decrease does not verify: {error}");
        Assert.Equal(debit.ValueUpdateId, decrease.ValueUpdateId);
        return decrease;
    }

    /// <summary>EXTERNAL AUTHENTICATE (which must pass) and the DEBIT with the approval the wallet builds from what it asked for.</summary>
    private static ResponseApdu RunDebit(OperatorKit kit, CardDebit debit, Money amount, byte[] digest)
    {
        var (authenticated, answer) = kit.TryRunCard(debit.ExternalAuthenticate, debit.Debit, new Approval(amount, digest));
        Assert.Equal(StatusWord.Ok, authenticated.Status);
        Assert.Equal(StatusWord.Ok, answer.Status);
        return answer;
    }

    /// <summary>GET on the admin API with <paramref name="token"/>, which must succeed: the body.</summary>
    private static async Task<string> AdminGetAsync(OperatorKit kit, string path, string token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = new("Bearer", token);
        using var response = await kit.Admin.SendAsync(request);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return await response.Content.ReadAsStringAsync();
    }

    private static Task<HttpResponseMessage> StartAsync(OperatorKit kit, string path, object request) =>
        kit.Http.PostAsync(path, JsonContent.Create(request, request.GetType(), options: ProtocolJson.Options));

    private static async Task<T> StartOkAsync<T>(OperatorKit kit, string path, object request)
    {
        using var response = await StartAsync(kit, path, request);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<T>(ProtocolJson.Options))!;
    }

    private static Task<HttpResponseMessage> CompleteAsync(OperatorKit kit, string path, ResponseApdu answer) =>
        kit.Http.PostAsJsonAsync(path, new CompleteSettlementRequest(Convert.ToBase64String(answer.ToBytes())), ProtocolJson.Options);

    private static async Task<T> CompleteOkAsync<T>(OperatorKit kit, string path, ResponseApdu answer)
    {
        using var response = await CompleteAsync(kit, path, answer);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<T>(ProtocolJson.Options))!;
    }

    private static async Task<string> StateAsync(OperatorKit kit, string table, string key, Guid id)
    {
        await using var connection = await kit.Service<Database>().OpenAsync();
        return await connection.ExecuteScalarAsync<string>($"SELECT state FROM {table} WHERE {key} = @id", new { id = id.ToString() }) ?? "none";
    }

    private static async Task<long> RowsAsync(OperatorKit kit, string table)
    {
        await using var connection = await kit.Service<Database>().OpenAsync();
        return await connection.ExecuteScalarAsync<long>($"SELECT COUNT(*) FROM {table}");
    }

    private static async Task<string?> CreditStateAsync(OperatorKit kit, string purpose, Guid sourceId)
    {
        await using var connection = await kit.Service<Database>().OpenAsync();
        return await CardCredits.StateOfAsync(connection, null, purpose, sourceId);
    }

    private static async Task<long> AccountAsync(OperatorKit kit, string account)
    {
        await using var connection = await kit.Service<Database>().OpenAsync();
        return await connection.ExecuteScalarAsync<long>("SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) FROM journal WHERE account = @account", new { account });
    }
}

/// <summary>Transfers and cash-outs on the embedded default registry, SQLite.</summary>
public sealed class ValueDecreaseOnSqliteTest : ValueDecreaseTest
{
    private protected override Task<PostgresDatabase?> CreateDatabaseAsync() => Task.FromResult<PostgresDatabase?>(null);
}

/// <summary>Transfers and cash-outs on PostgreSQL: one private cluster for the class, a fresh database per test.</summary>
[UsesComponents(Components.PostgreSql)]
public sealed class ValueDecreaseOnPostgreSqlTest(SharedPostgresCluster postgres) : ValueDecreaseTest, IClassFixture<SharedPostgresCluster>
{
    private protected override async Task<PostgresDatabase?> CreateDatabaseAsync() => await postgres.CreateDatabaseAsync();
}
