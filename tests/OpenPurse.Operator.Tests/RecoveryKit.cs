using System.Buffers.Text;
using System.Net.Http.Json;
using Dapper;
using OpenPurse.Operator.Registry;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;

namespace OpenPurse.Operator.Tests;

/// <summary>The wallet's part in card recovery (sync, credits) and the books' checks, on an <see cref="OperatorKit"/>.</summary>
internal static class RecoveryKit
{
    /// <summary><c>POST /v1/cards/sync</c> with a fresh greeting of the kit's card (or <paramref name="request"/>), which must succeed.</summary>
    public static async Task<CardSyncResponse> SyncOkAsync(this OperatorKit kit, CardSyncRequest? request = null)
    {
        using var response = await kit.SyncAsync(request ?? kit.SyncGreeting());
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<CardSyncResponse>(ProtocolJson.Options))!;
    }

    /// <summary>The value update (SIG5) of a credit, which must verify with the operator's keys.</summary>
    public static ValueUpdate ValueUpdateOf(this OperatorKit kit, CardCredit credit)
    {
        var update = SignedMessage.Verify<ValueUpdate>(credit.ValueUpdate, kit.OperatorKeys, MessageTypes.ValueUpdate, out var error);
        Assert.True(update is not null, $"SIG5 does not verify: {error}");
        return update;
    }

    /// <summary>The wallet's approval of a credit: the amount and order digest its SIG5 names.</summary>
    public static Approval ApprovalOf(this OperatorKit kit, CardCredit credit)
    {
        var update = kit.ValueUpdateOf(credit);
        return new Approval(update.Amount, Base64Url.DecodeFromChars(update.OrderDigest));
    }

    /// <summary>The CREDIT APDU as the wallet sends it: the approval in front of the operator's secured command.</summary>
    public static CommandApdu CreditCommand(this OperatorKit kit, CardCredit credit)
    {
        Assert.True(CommandApdu.TryParse(Convert.FromBase64String(credit.Credit), out var command));
        return CardHostSession.WithApproval(command, kit.ApprovalOf(credit));
    }

    /// <summary>EXTERNAL AUTHENTICATE (which must pass) and the CREDIT on the kit's card: the card's answer to the CREDIT.</summary>
    public static ResponseApdu RunCredit(this OperatorKit kit, CardCredit credit)
    {
        var (authenticated, answer) = kit.TryRunCard(credit.ExternalAuthenticate, credit.Credit, kit.ApprovalOf(credit));
        Assert.Equal(StatusWord.Ok, authenticated.Status);
        return answer;
    }

    /// <summary><c>POST /v1/cards/credits/{id}/completion</c>, which must succeed: the settlement and its state.</summary>
    public static async Task<SettlementOutcome> CompleteCreditOkAsync(this OperatorKit kit, Guid valueUpdateId, ResponseApdu answer)
    {
        using var response = await kit.CompleteCreditAsync(valueUpdateId, answer);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<SettlementOutcome>(ProtocolJson.Options))!;
    }

    /// <summary>A settlement of the kit's store as <c>GET /v1/settlements/{id}</c> reports it to the store.</summary>
    public static Task<SettlementView> ViewAsync(this OperatorKit kit, Guid settlementId) =>
        kit.ReadSettlementAsync(settlementId, SettlementReadProof.StoreHeader, SettlementReadProof.ForStore(kit.StoreKey, settlementId, "shop", kit.Time.GetUtcNow()));

    /// <summary>A settlement as <c>GET /v1/settlements/{id}</c> reports it to the wallet that started it.</summary>
    public static Task<SettlementView> GetSettlementAsync(this OperatorKit kit, StartSettlementResponse started) =>
        kit.ReadSettlementAsync(started.SettlementId, SettlementReadProof.WalletHeader, SettlementReadProof.ForWallet(started));

    private static async Task<SettlementView> ReadSettlementAsync(this OperatorKit kit, Guid settlementId, string proofHeader, string proof)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/settlements/{settlementId}");
        request.Headers.Add(proofHeader, proof);
        using var response = await kit.Http.SendAsync(request);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<SettlementView>(ProtocolJson.Options))!;
    }

    public static async Task<string> StateOfAsync(this OperatorKit kit, Guid settlementId) => (await kit.ViewAsync(settlementId)).State;

    /// <summary>The journal's EUR account of the kit's card: what the operator owes its holder.</summary>
    public static async Task<Money> CardAccountAsync(this OperatorKit kit)
    {
        await using var connection = await kit.Service<Database>().OpenAsync();
        var minor = await connection.ExecuteScalarAsync<long>(
            "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) FROM journal WHERE account = @account AND currency = 'EUR'",
            new { account = "card:" + kit.Reader.CardId.Digits });
        return new Money(minor, Currency.Eur);
    }

    /// <summary>The store's receipt (SIG4) for an ACN, as the kit's store "shop" signs it.</summary>
    public static string ReceiptFor(this OperatorKit kit, string acnJws)
    {
        var acn = SignedMessage.Verify<CompletionNotice>(acnJws, kit.OperatorKeys, MessageTypes.CompletionNotice, out _)!;
        return SignedMessage.Sign(kit.StoreKey, new Receipt(acn.SettlementId, acn.OrderNo, acn.StoreId, acn.Amount, SignedMessage.Digest(acnJws), kit.Time.GetUtcNow()), MessageTypes.Receipt);
    }

    /// <summary><c>POST</c> to the admin API, on its listener, with the operator's admin token (or <paramref name="token"/>) and no body.</summary>
    public static async Task<HttpResponseMessage> AdminPostAsync(this OperatorKit kit, string path, string token = OperatorKit.AdminToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path);
        request.Headers.Authorization = new("Bearer", token);
        return await kit.Admin.SendAsync(request);
    }

    /// <summary>
    /// The chip holds <paramref name="expected"/>, the journal's card account holds what the chip
    /// holds, and every invariant of the ledger holds (<c>reconcile</c> is clean).
    /// </summary>
    public static async Task AssertBooksAsync(this OperatorKit kit, Money expected)
    {
        var chip = kit.Balance();
        Assert.Equal(expected, chip);
        Assert.Equal(chip, await kit.CardAccountAsync());
        var report = await kit.ReconcileAsync();
        Assert.True(report.IsClean, report.ToText());
    }
}
