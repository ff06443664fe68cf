using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Wallet.Agent;

namespace OpenPurse.Hostile.Tests;

/// <summary>
/// The hostile probes of each endpoint, by the key its route table gives it ("METHOD pattern").
/// An endpoint without an entry here fails the suite: a new endpoint is attacked from its first day.
/// </summary>
internal static class EndpointProbes
{
    private static readonly HttpMethod s_get = HttpMethod.Get;
    private static readonly HttpMethod s_post = HttpMethod.Post;

    // A card's block or unblock, with the reason the audit trail keeps.
    private const string ReasonBody = """{"reason":"hostile probe"}""";

    private const string HolderBody = """{"name":"Hostile Probe","contact":"probe@example.org"}""";

    /// <summary>The operator's endpoints and their probes.</summary>
    public static IReadOnlyDictionary<string, Func<IEnumerable<Probe>>> Operator(HostileSystem system)
    {
        var admin = new[] { ("Authorization", "Bearer " + HostileSystem.AdminToken) };
        var paidId = system.Paid.SettlementId;
        var startBody = StartBody(system.PaidBill, system);
        return new Dictionary<string, Func<IEnumerable<Probe>>>(StringComparer.Ordinal)
        {
            ["GET /health"] = () => Plain("/health"),
            // The Prometheus scrape: any method, on the admin listener only, anonymous.
            ["GET /metrics"] = () => Plain("/metrics").Concat(Scrape()),
            ["GET /openapi/v1.json"] = () => Plain("/openapi/v1.json"),
            ["GET /openapi/admin.json"] = () => Plain("/openapi/admin.json"),
            ["GET /.well-known/jwks.json"] = () => Plain("/.well-known/jwks.json"),
            ["GET /v1/stores/{storeId}/jwks"] = () => Route(s_get, "/v1/stores/{}/jwks", HostileSystem.StoreId),
            ["POST /v1/settlements/"] = () => HostileInputs.Bodies(s_post, "/v1/settlements", startBody).Concat(StartProbes(system)),
            ["POST /v1/settlements/{id:guid}/completion"] = () =>
                HostileInputs.Bodies(s_post, $"/v1/settlements/{paidId}/completion", CardAnswerBody([0x90, 0x00]))
                    .Concat(Route(s_post, "/v1/settlements/{}/completion", paidId.ToString(), CardAnswerBody([0x90, 0x00])))
                    .Concat(CardAnswers($"/v1/settlements/{paidId}/completion"))
                    .Concat(CardAnswers($"/v1/settlements/{Guid.NewGuid()}/completion")),
            ["POST /v1/settlements/{id:guid}/receipt"] = () =>
                HostileInputs.Bodies(s_post, $"/v1/settlements/{paidId}/receipt", Member("receipt", system.Paid.ReceiptJws))
                    .Concat(Route(s_post, "/v1/settlements/{}/receipt", paidId.ToString(), Member("receipt", system.Paid.ReceiptJws)))
                    .Concat(ReceiptProbes(system)),
            ["GET /v1/settlements/{id:guid}"] = () => Route(s_get, "/v1/settlements/{}", paidId.ToString()).Concat(ReadProofProbes(system)),
            ["POST /v1/cards/sync"] = () =>
                HostileInputs.Bodies(s_post, "/v1/cards/sync", SyncBody(system)).Concat(SyncProbes(system)),
            ["POST /v1/cards/credits/{id:guid}/completion"] = () =>
                HostileInputs.Bodies(s_post, $"/v1/cards/credits/{Guid.NewGuid()}/completion", CardAnswerBody([0x90, 0x00]))
                    .Concat(Route(s_post, "/v1/cards/credits/{}/completion", Guid.NewGuid().ToString(), CardAnswerBody([0x90, 0x00])))
                    .Concat(CardAnswers($"/v1/cards/credits/{Guid.NewGuid()}/completion")),
            ["GET /v1/topups/authorizer-keys"] = () => Plain("/v1/topups/authorizer-keys"),
            ["POST /v1/topups/"] = () =>
                HostileInputs.Bodies(s_post, "/v1/topups", TopUpBody(system)).Concat(TopUpProbes(system)),
            ["POST /v1/topups/{id:guid}/completion"] = () =>
                HostileInputs.Bodies(s_post, $"/v1/topups/{Guid.NewGuid()}/completion", CardAnswerBody([0x90, 0x00]))
                    .Concat(Route(s_post, "/v1/topups/{}/completion", Guid.NewGuid().ToString(), CardAnswerBody([0x90, 0x00])))
                    .Concat(CardAnswers($"/v1/topups/{Guid.NewGuid()}/completion")),
            ["GET /v1/topups/{id:guid}"] = () => Route(s_get, "/v1/topups/{}", Guid.NewGuid().ToString()).Concat(TopUpReadProofProbes()),
            ["POST /v1/refunds/"] = () =>
                HostileInputs.Bodies(s_post, "/v1/refunds", Member("request", RefundPastPaid(system))).Concat(RefundProbes(system)),
            ["GET /v1/refunds/{id:guid}"] = () => Route(s_get, "/v1/refunds/{}", Guid.NewGuid().ToString()).Concat(RefundReadProbes(system)),
            ["POST /v1/transfers/"] = () =>
                HostileInputs.Bodies(s_post, "/v1/transfers", TransferBody(system)).Concat(DecreaseProbes(system, "/v1/transfers", TransferBody(system))),
            ["POST /v1/transfers/{id:guid}/completion"] = () =>
                HostileInputs.Bodies(s_post, $"/v1/transfers/{Guid.NewGuid()}/completion", CardAnswerBody([0x90, 0x00]))
                    .Concat(Route(s_post, "/v1/transfers/{}/completion", Guid.NewGuid().ToString(), CardAnswerBody([0x90, 0x00])))
                    .Concat(CardAnswers($"/v1/transfers/{Guid.NewGuid()}/completion")),
            ["POST /v1/cashouts/"] = () =>
                HostileInputs.Bodies(s_post, "/v1/cashouts", CashOutBody(system)).Concat(DecreaseProbes(system, "/v1/cashouts", CashOutBody(system))),
            ["POST /v1/cashouts/{id:guid}/completion"] = () =>
                HostileInputs.Bodies(s_post, $"/v1/cashouts/{Guid.NewGuid()}/completion", CardAnswerBody([0x90, 0x00]))
                    .Concat(Route(s_post, "/v1/cashouts/{}/completion", Guid.NewGuid().ToString(), CardAnswerBody([0x90, 0x00])))
                    .Concat(CardAnswers($"/v1/cashouts/{Guid.NewGuid()}/completion")),
            ["GET /v1/admin/payouts"] = () =>
                Plain("/v1/admin/payouts").Select(probe => probe with { Headers = [.. probe.Headers ?? [], .. admin] }).Concat(AdminHeaders(s_get, "/v1/admin/payouts", null)),
            ["POST /v1/admin/payouts/export"] = () =>
                new[] { new Probe("export", s_post, "/v1/admin/payouts/export", null, null, admin), new Probe("export with a query", s_post, "/v1/admin/payouts/export?iban=DE89370400440532013000", null, null, admin) }
                    .Concat(AdminHeaders(s_post, "/v1/admin/payouts/export", null)),
            // No payout is waiting: a decision on one is refused and moves nothing.
            ["POST /v1/admin/payouts/{id:guid}/paid"] = () =>
                Route(s_post, "/v1/admin/payouts/{}/paid", Guid.NewGuid().ToString(), null, admin)
                    .Concat(AdminHeaders(s_post, $"/v1/admin/payouts/{Guid.NewGuid()}/paid", null)),
            ["POST /v1/admin/payouts/{id:guid}/returned"] = () =>
                Route(s_post, "/v1/admin/payouts/{}/returned", Guid.NewGuid().ToString(), null, admin)
                    .Concat(AdminHeaders(s_post, $"/v1/admin/payouts/{Guid.NewGuid()}/returned", null)),
            // Clearing: statements and the summary read with hostile periods; the changes aimed at a
            // store that is not registered, a run ending in the future, a payout of no run: all refused, nothing written.
            ["GET /v1/admin/clearing/statements/{storeId}"] = () =>
                Route(s_get, "/v1/admin/clearing/statements/{}?from=2026-01-01&to=2026-02-01", HostileSystem.StoreId, null, admin)
                    .Concat(ClearingPeriods($"/v1/admin/clearing/statements/{HostileSystem.StoreId}", admin))
                    .Concat(new[] { "csv", "json", "xml", "", "CSV", "csv&format=json" }.Select(format =>
                        new Probe($"format {format}", s_get, $"/v1/admin/clearing/statements/{HostileSystem.StoreId}?from=2026-01-01&to=2026-02-01&format={format}", null, null, admin)))
                    .Concat(AdminHeaders(s_get, $"/v1/admin/clearing/statements/{HostileSystem.StoreId}?from=2026-01-01&to=2026-02-01", null)),
            ["GET /v1/admin/clearing/summary"] = () =>
                ClearingPeriods("/v1/admin/clearing/summary", admin).Concat(AdminHeaders(s_get, "/v1/admin/clearing/summary?from=2026-01-01&to=2026-02-01", null)),
            ["POST /v1/admin/clearing/stores/{storeId}/fee"] = () =>
                HostileInputs.Bodies(s_post, "/v1/admin/clearing/stores/no-such-store/fee", """{"basisPoints":250,"fixedMinor":10}""", admin)
                    .Concat(Route(s_post, "/v1/admin/clearing/stores/{}/fee", "no-such-store", """{"basisPoints":250}""", admin))
                    .Concat(new[] { """{"basisPoints":-1}""", """{"basisPoints":10001}""", """{"basisPoints":1,"fixedMinor":-5}""", """{"basisPoints":9223372036854775807}""", """{"basisPoints":1e3}""" }
                        .Select(body => new Probe($"fee {body}", s_post, $"/v1/admin/clearing/stores/{HostileSystem.StoreId}/fee", Encoding.UTF8.GetBytes(body), "application/json", admin)))
                    .Concat(AdminHeaders(s_post, $"/v1/admin/clearing/stores/{HostileSystem.StoreId}/fee", """{"basisPoints":250}""")),
            ["POST /v1/admin/clearing/stores/{storeId}/bank"] = () =>
                HostileInputs.Bodies(s_post, "/v1/admin/clearing/stores/no-such-store/bank", """{"iban":"DE89370400440532013000","holder":"Books"}""", admin)
                    .Concat(Route(s_post, "/v1/admin/clearing/stores/{}/bank", "no-such-store", """{"iban":"DE89370400440532013000","holder":"Books"}""", admin))
                    .Concat(new[] { """{"iban":"DE89370400440532013001","holder":"Books"}""", """{"iban":"=1+1","holder":"Books"}""", """{"iban":"DE89370400440532013000","holder":"\u0000"}""" }
                        .Select(body => new Probe($"bank {body}", s_post, $"/v1/admin/clearing/stores/{HostileSystem.StoreId}/bank", Encoding.UTF8.GetBytes(body), "application/json", admin)))
                    .Concat(AdminHeaders(s_post, $"/v1/admin/clearing/stores/{HostileSystem.StoreId}/bank", """{"iban":"DE89370400440532013000","holder":"Books"}""")),
            ["POST /v1/admin/clearing/runs"] = () =>
                HostileInputs.Bodies(s_post, "/v1/admin/clearing/runs", """{"to":"9998-12-31"}""", admin)
                    .Concat(new[] { "", "2026-02-30", "1999-12-31", "2026-1-01", "\u0000", "9998-12-31" }.Select(to =>
                        new Probe($"run to {to}", s_post, "/v1/admin/clearing/runs", Encoding.UTF8.GetBytes($$"""{"to":"{{to}}"}"""), "application/json", admin)))
                    .Concat(AdminHeaders(s_post, "/v1/admin/clearing/runs", """{"to":"2026-01-01"}""")),
            ["GET /v1/admin/clearing/payouts"] = () =>
                Plain("/v1/admin/clearing/payouts").Select(probe => probe with { Headers = [.. probe.Headers ?? [], .. admin] }).Concat(AdminHeaders(s_get, "/v1/admin/clearing/payouts", null)),
            ["POST /v1/admin/clearing/payouts/export"] = () =>
                new[] { new Probe("export", s_post, "/v1/admin/clearing/payouts/export", null, null, admin) }.Concat(AdminHeaders(s_post, "/v1/admin/clearing/payouts/export", null)),
            ["POST /v1/admin/clearing/runs/{runId:guid}/stores/{storeId}/paid"] = () =>
                Route(s_post, "/v1/admin/clearing/runs/{}/stores/books/paid", Guid.NewGuid().ToString(), null, admin)
                    .Concat(Route(s_post, $"/v1/admin/clearing/runs/{Guid.NewGuid()}/stores/{{}}/paid", HostileSystem.StoreId, null, admin))
                    .Concat(AdminHeaders(s_post, $"/v1/admin/clearing/runs/{Guid.NewGuid()}/stores/books/paid", null)),
            ["POST /v1/admin/stores"] = () =>
                HostileInputs.Bodies(s_post, "/v1/admin/stores", RegistrationBody("hostile-shop"), admin)
                    .Concat(AdminHeaders(s_post, "/v1/admin/stores", RegistrationBody("hostile-shop")))
                    .Concat(RegistrationProbes(admin)),
            // Bodies on a card that is not registered: whatever they say, nothing is blocked.
            ["POST /v1/admin/cards/{cardNumber}/block"] = () =>
                Route(s_post, "/v1/admin/cards/{}/block", CardId.FromSerial(999_999_999_999_999).Digits, null, admin)
                    .Concat(HostileInputs.Bodies(s_post, $"/v1/admin/cards/{CardId.FromSerial(999_999_999_999_999).Digits}/block", ReasonBody, admin))
                    .Concat(AdminHeaders(s_post, $"/v1/admin/cards/{system.CardId.Digits}/block", null)),
            ["POST /v1/admin/cards/{cardNumber}/unblock"] = () =>
                Route(s_post, "/v1/admin/cards/{}/unblock", CardId.FromSerial(999_999_999_999_999).Digits, ReasonBody, admin)
                    .Concat(HostileInputs.Bodies(s_post, $"/v1/admin/cards/{CardId.FromSerial(999_999_999_999_999).Digits}/unblock", ReasonBody, admin))
                    .Concat(AdminHeaders(s_post, $"/v1/admin/cards/{system.CardId.Digits}/unblock", ReasonBody)),
            ["GET /v1/admin/cards"] = () =>
                new[] { "", "123", "123456789", "12a4", "%00%00%00%00", "%EF%BC%91234", "1234&last=5678", "-1234", "1234%0D%0A", new string('1', 5_000) }
                    .Select(last => new Probe($"last {last[..Math.Min(last.Length, 16)]}", s_get, "/v1/admin/cards?last=" + last, null, null, admin))
                    // A holder search: too short, control and format characters, LIKE's own wildcards, both kinds of search at once.
                    .Concat(new[] { "", "ab", "%00abc", "abc%0D%0Adef", "%E2%80%AEabc", "%25%25%25", "___", "%5C%5C%5C", "abc&holder=def", "abc&last=1234", "%ED%A0%80abc", new string('a', 5_000) }
                        .Select(holder => new Probe($"holder {holder[..Math.Min(holder.Length, 16)]}", s_get, "/v1/admin/cards?holder=" + holder, null, null, admin)))
                    .Concat(Plain("/v1/admin/cards?last=1234").Select(probe => probe with { Headers = [.. probe.Headers ?? [], .. admin] }))
                    .Concat(AdminHeaders(s_get, "/v1/admin/cards?last=1234", null)),
            ["GET /v1/admin/examination"] = () =>
                Plain("/v1/admin/examination").Select(probe => probe with { Headers = [.. probe.Headers ?? [], .. admin] }).Concat(AdminHeaders(s_get, "/v1/admin/examination", null)),
            // Bodies on a card that is not registered: whatever they say, nobody is registered.
            ["POST /v1/admin/cards/{cardNumber}/holder"] = () =>
                Route(s_post, "/v1/admin/cards/{}/holder", CardId.FromSerial(999_999_999_999_999).Digits, HolderBody, admin)
                    .Concat(HostileInputs.Bodies(s_post, $"/v1/admin/cards/{CardId.FromSerial(999_999_999_999_999).Digits}/holder", HolderBody, admin))
                    .Concat(HolderProbes(admin))
                    .Concat(AdminHeaders(s_post, $"/v1/admin/cards/{system.CardId.Digits}/holder", HolderBody)),
            ["POST /v1/admin/holders/{holderId:guid}/erase"] = () =>
                Route(s_post, "/v1/admin/holders/{}/erase", Guid.NewGuid().ToString(), null, admin)
                    .Concat(AdminHeaders(s_post, $"/v1/admin/holders/{Guid.NewGuid()}/erase", null)),
            // Key rotation: probed on ids that name nothing, so that no probe retires or activates a key of the system under test.
            ["GET /v1/admin/stores/{storeId}/keys"] = () =>
                Route(s_get, "/v1/admin/stores/{}/keys", "no-such-store", null, admin)
                    .Concat(AdminHeaders(s_get, "/v1/admin/stores/no-such-store/keys", null)),
            ["POST /v1/admin/stores/{storeId}/keys/{kid}/retire"] = () =>
                Route(s_post, "/v1/admin/stores/{}/keys/no-such-kid/retire", "no-such-store", null, admin)
                    .Concat(Route(s_post, "/v1/admin/stores/no-such-store/keys/{}/retire", "no-such-kid", ReasonBody, admin))
                    .Concat(HostileInputs.Bodies(s_post, "/v1/admin/stores/no-such-store/keys/no-such-kid/retire", ReasonBody, admin))
                    .Concat(AdminHeaders(s_post, "/v1/admin/stores/no-such-store/keys/no-such-kid/retire", ReasonBody)),
            ["GET /v1/admin/keys"] = () => Plain("/v1/admin/keys").Select(probe => probe with { Headers = [.. probe.Headers ?? [], .. admin] }).Concat(AdminHeaders(s_get, "/v1/admin/keys", null)),
            ["POST /v1/admin/keys/{kid}/activate"] = () =>
                Route(s_post, "/v1/admin/keys/{}/activate", "no-such-kid", null, admin)
                    .Concat(AdminHeaders(s_post, "/v1/admin/keys/no-such-kid/activate", null)),
            ["POST /v1/admin/keys/{kid}/retire"] = () =>
                Route(s_post, "/v1/admin/keys/{}/retire", "no-such-kid", null, admin)
                    .Concat(AdminHeaders(s_post, "/v1/admin/keys/no-such-kid/retire", null)),
            ["GET /v1/admin/stores"] = () => Plain("/v1/admin/stores").Select(probe => probe with { Headers = [.. probe.Headers ?? [], .. admin] }).Concat(AdminHeaders(s_get, "/v1/admin/stores", null)),
            ["GET /v1/admin/audit"] = () =>
                new[] { "0", "-1", "abc", "99999999999", "1e3", "", "1&limit=2" }.Select(limit => new Probe($"limit {limit}", s_get, "/v1/admin/audit?limit=" + limit, null, null, admin))
                    .Concat(AdminHeaders(s_get, "/v1/admin/audit", null)),
            // The paid settlement is completed, not disputed: a decision on it is refused and moves nothing.
            ["POST /v1/admin/settlements/{id:guid}/return"] = () =>
                Route(s_post, "/v1/admin/settlements/{}/return", paidId.ToString(), null, admin)
                    .Concat(Route(s_post, "/v1/admin/settlements/{}/return", Guid.NewGuid().ToString(), "{}", admin))
                    .Concat(AdminHeaders(s_post, $"/v1/admin/settlements/{paidId}/return", null)),
            ["POST /v1/admin/settlements/{id:guid}/retell"] = () =>
                Route(s_post, "/v1/admin/settlements/{}/retell", paidId.ToString(), null, admin)
                    .Concat(AdminHeaders(s_post, $"/v1/admin/settlements/{paidId}/retell", null)),
            // The top-up pages, on the public listener only.
            ["GET /"] = () => PageProbes("/"),
            ["GET /topup.js"] = () => PageProbes("/topup.js"),
            ["GET /openpurse.css"] = () => PageProbes("/openpurse.css"),
            ["GET /openpurse.js"] = () => PageProbes("/openpurse.js"),
        };
    }

    /// <summary>The store's endpoints and their probes.</summary>
    public static IReadOnlyDictionary<string, Func<IEnumerable<Probe>>> Store(HostileSystem system)
    {
        var billed = system.Billed.OrderNo;
        var paid = system.Paid.OrderNo;
        var order = $$"""{"storeId":"{{HostileSystem.StoreId}}","items":[{"sku":"{{HostileSystem.Sku}}","quantity":1}]}""";
        return new Dictionary<string, Func<IEnumerable<Probe>>>(StringComparer.Ordinal)
        {
            ["GET /health"] = () => Plain("/health"),
            // The Prometheus scrape: any method, for the loopback clients the suite's store allows.
            ["GET /metrics"] = () => Plain("/metrics").Concat(Scrape()),
            ["GET /.well-known/jwks.json"] = () => Plain("/.well-known/jwks.json"),
            ["GET /v1/catalog"] = () => Plain("/v1/catalog"),
            ["GET /openapi/v1.json"] = () => Plain("/openapi/v1.json"),
            ["POST /v1/estimates"] = () => HostileInputs.Bodies(s_post, "/v1/estimates", order).Concat(OrderProbes("/v1/estimates")),
            ["POST /v1/orders"] = () => HostileInputs.Bodies(s_post, "/v1/orders", order).Concat(OrderProbes("/v1/orders")),
            ["GET /v1/orders/{orderNo}"] = () => Route(s_get, "/v1/orders/{}", billed),
            ["POST /v1/orders/{orderNo}/completion"] = () =>
                HostileInputs.Bodies(s_post, $"/v1/orders/{paid}/completion", Member("completionNotice", system.Paid.CompletionNoticeJws))
                    .Concat(Route(s_post, "/v1/orders/{}/completion", paid, Member("completionNotice", system.Paid.CompletionNoticeJws)))
                    .Concat(CompletionProbes(system, $"/v1/orders/{billed}/completion")),
            ["POST /v1/operator/completions"] = () =>
                HostileInputs.Bodies(s_post, "/v1/operator/completions", Member("completionNotice", system.Paid.CompletionNoticeJws))
                    .Concat(CompletionProbes(system, "/v1/operator/completions")),
            ["POST /v1/operator/voids"] = () =>
                HostileInputs.Bodies(s_post, "/v1/operator/voids", Member("voidNotice", VoidOf(system, paid, system.Paid.Amount)))
                    .Concat(VoidProbes(system)),
            ["GET /v1/operator/statements/{storeId}"] = () =>
                Route(s_get, "/v1/operator/statements/{}", HostileSystem.StoreId)
                    .Concat(StatementQueries(system)),
            ["GET /v1/orders/{orderNo}/download"] = () =>
                Route(s_get, "/v1/orders/{}/download", paid, null, [(OpenPurse.Store.Api.StoreApi.ReceiptHeader, system.Paid.ReceiptJws)])
                    .Concat(DownloadProbes(system)),
            // The suite's store has no admin token configured: every request is refused before its
            // body is read (so bodies are kept small), and no probe can refund the paid order; the
            // tokens tried are the operator's and forged ones.
            ["POST /v1/admin/refunds"] = () =>
                AdminHeaders(s_post, "/v1/admin/refunds", $$"""{"orderNo":"{{paid}}"}""")
                    .Append(Probe.Json("the operator's admin token", s_post, "/v1/admin/refunds", $$"""{"orderNo":"{{paid}}"}""", [("Authorization", "Bearer " + HostileSystem.AdminToken)]))
                    .Append(Probe.Json("an amount and a reason", s_post, "/v1/admin/refunds", $$"""{"orderNo":"{{paid}}","amount":"0.01","reason":"x"}""")),
            // The same: refused before the order is read, whatever its number.
            ["GET /v1/admin/orders/{orderNo}/refunds"] = () =>
                AdminHeaders(s_get, $"/v1/admin/orders/{paid}/refunds", null)
                    .Concat(Route(s_get, "/v1/admin/orders/{}/refunds", paid, null, [("Authorization", "Bearer " + HostileSystem.AdminToken)])),
            // The checkout page, its script and the shared stylesheet.
            ["GET /"] = () => PageProbes("/"),
            ["GET /shop.js"] = () => PageProbes("/shop.js"),
            ["GET /openpurse.css"] = () => PageProbes("/openpurse.css"),
            ["GET /openpurse.js"] = () => PageProbes("/openpurse.js"),
        };
    }

    /// <summary>The credit authorizer's endpoints and their probes: each with the API key, and without or with a wrong one.</summary>
    public static IReadOnlyDictionary<string, Func<IEnumerable<Probe>>> Authorizer(HostileSystem system)
    {
        var apiKey = new[] { ("Authorization", "Bearer " + HostileSystem.AuthorizerApiKey) };
        var (body, key) = system.ApprovedRequest;
        var authorize = new[] { apiKey[0], ("Idempotency-Key", key) };
        var id = system.Approved.ToString();
        const string capture = "{\"amount\":{\"minorUnits\":2501,\"currency\":\"EUR\"}}";
        const string cancel = "{\"reason\":\"hostile\"}";
        return new Dictionary<string, Func<IEnumerable<Probe>>>(StringComparer.Ordinal)
        {
            ["GET /health"] = () => Plain("/health"),
            ["GET /openapi/v1.json"] = () => Plain("/openapi/v1.json"),
            ["GET /v1/keys"] = () => Plain("/v1/keys"),
            // Every variation under the approved request's key: answered as that authorization, or refused, never a second one.
            ["POST /v1/authorizations"] = () =>
                HostileInputs.Bodies(s_post, "/v1/authorizations", body, authorize)
                    .Concat(ApiKeyHeaders(s_post, "/v1/authorizations", body))
                    .Concat(AuthorizationProbes(body, apiKey)),
            // The look-up by idempotency key: the approved request's, an unknown one, and keys that are not keys.
            ["GET /v1/authorizations"] = () =>
                new[] { key, "hostile-unknown", "", " ", new string('k', 256), "k\u00e9", "a/../b", "%00", "x&idempotencyKey=" + key }
                    .Select(value => new Probe($"idempotencyKey '{(value.Length > 20 ? value[..20] + "…" : value)}'", s_get, "/v1/authorizations?idempotencyKey=" + Uri.EscapeDataString(value), null, null, apiKey))
                    .Append(new Probe("no idempotencyKey", s_get, "/v1/authorizations", null, null, apiKey))
                    .Append(new Probe("idempotencyKey twice", s_get, $"/v1/authorizations?idempotencyKey={key}&idempotencyKey=other", null, null, apiKey))
                    .Concat(ApiKeyHeaders(s_get, "/v1/authorizations?idempotencyKey=" + key, null)),
            ["GET /v1/authorizations/{id:guid}"] = () =>
                Route(s_get, "/v1/authorizations/{}", id, null, apiKey).Concat(ApiKeyHeaders(s_get, $"/v1/authorizations/{id}", null)),
            // Over the authorized amount: refused, so the approval stays open for the void probes.
            ["POST /v1/authorizations/{id:guid}/capture"] = () =>
                HostileInputs.Bodies(s_post, $"/v1/authorizations/{id}/capture", capture, apiKey)
                    .Concat(Route(s_post, "/v1/authorizations/{}/capture", id, capture, apiKey))
                    .Concat(ApiKeyHeaders(s_post, $"/v1/authorizations/{id}/capture", capture)),
            ["POST /v1/authorizations/{id:guid}/void"] = () =>
                HostileInputs.Bodies(s_post, $"/v1/authorizations/{Guid.NewGuid()}/void", cancel, apiKey)
                    .Concat(Route(s_post, "/v1/authorizations/{}/void", Guid.NewGuid().ToString(), cancel, apiKey))
                    .Concat(ApiKeyHeaders(s_post, $"/v1/authorizations/{id}/void", cancel)),
        };
    }

    /// <summary>
    /// The wallet agent's endpoints and their probes. The API's requests carry the mall's origin and
    /// the agent's header unless a probe sets its own; the bill is the store's, signed, but expired,
    /// so that no probe reaches the card; the approval form is posted from other origins, and from
    /// the agent's own for payments that do not exist.
    /// </summary>
    public static IReadOnlyDictionary<string, Func<IEnumerable<Probe>>> Agent(HostileSystem system)
    {
        var expired = Jws.Sign(
            system.StoreKeys.For(HostileSystem.StoreId),
            Payload(system.Billed.Bill, ("issuedAt", "\"2020-01-01T00:00:00+00:00\""), ("expiresAt", "\"2020-01-01T00:10:00+00:00\"")),
            MessageTypes.Bill);
        var payment = JsonSerializer.Serialize(new { bill = expired, profile = "signed" });
        var topUp = "{\"amount\":\"20.00 EUR\"}";
        var operatorPage = new[] { ("Origin", system.OperatorOrigin) };
        var ownPage = new[] { ("Origin", system.AgentOrigin) };
        return new Dictionary<string, Func<IEnumerable<Probe>>>(StringComparer.Ordinal)
        {
            ["GET /"] = () => Plain("/").Concat(AgentGuardProbes(s_get, "/", null)),
            ["GET /agent.css"] = () => Plain("/agent.css"),
            ["GET /approve/{id:guid}"] = () => Route(s_get, "/approve/{}", Guid.NewGuid().ToString()).Concat(AgentGuardProbes(s_get, $"/approve/{Guid.NewGuid()}", null)),
            ["POST /approve/{id:guid}"] = () =>
                ApprovalForms(system, $"/approve/{Guid.NewGuid()}")
                    .Concat(Route(s_post, "/approve/{}", Guid.NewGuid().ToString(), null, ownPage))
                    .Concat(HostileInputs.Bodies(s_post, $"/approve/{Guid.NewGuid()}", "{\"token\":\"x\",\"decision\":\"approve\"}", ownPage)),
            ["GET /v1/card"] = () => Plain("/v1/card").Concat(AgentGuardProbes(s_get, "/v1/card", null)),
            ["POST /v1/payments"] = () =>
                HostileInputs.Bodies(s_post, "/v1/payments", payment)
                    .Concat(AgentGuardProbes(s_post, "/v1/payments", payment))
                    .Concat(BillProbes(system, expired)),
            ["GET /v1/payments/{id:guid}"] = () =>
                Route(s_get, "/v1/payments/{}", Guid.NewGuid().ToString()).Concat(AgentGuardProbes(s_get, $"/v1/payments/{Guid.NewGuid()}", null)),
            // From the operator's page a top-up opens and waits for the person, who never comes: nothing is charged.
            ["POST /v1/topups"] = () =>
                HostileInputs.Bodies(s_post, "/v1/topups", topUp, operatorPage)
                    .Concat(HostileInputs.Bodies(s_post, "/v1/topups", topUp).Take(3))
                    .Concat(AgentGuardProbes(s_post, "/v1/topups", topUp))
                    .Concat(HostileAmounts().Concat(["\"0.00 EUR\"", "\"-1.00 EUR\"", "\"1e3 EUR\"", "\"20.001 EUR\"", "\"20.00 XXX\""])
                        .Select(amount => Probe.Json($"amount {amount}", s_post, "/v1/topups", "{\"amount\":" + amount + "}", operatorPage))),
            ["GET /v1/topups/{id:guid}"] = () =>
                Route(s_get, "/v1/topups/{}", Guid.NewGuid().ToString()).Concat(AgentGuardProbes(s_get, $"/v1/topups/{Guid.NewGuid()}", null)),
        };
    }

    // ---- agent ----

    /// <summary>Requests the agent's guard refuses: other Hosts, origins and headers, and preflights.</summary>
    private static IEnumerable<Probe> AgentGuardProbes(HttpMethod method, string path, string? body)
    {
        var bytes = body is null ? null : Encoding.UTF8.GetBytes(body);
        var contentType = body is null ? null : "application/json";
        foreach (var host in new[] { "evil.example", "evil.example:80", "localhost", "127.0.0.1:1", "127.0.0.1.nip.io", "[::1]" })
        {
            yield return new Probe($"Host '{host}'", method, path, bytes, contentType, [("Host", host)]);
        }

        // A Host that is not a host name and port Kestrel refuses alone (docs/errors.md, "Request limits").
        foreach (var host in new[] { "", "\u00e9", "127.0.0.1:99999" })
        {
            yield return new Probe($"Host '{host}'", method, path, bytes, contentType, [("Host", host)], KestrelAlone: 400);
        }

        foreach (var origin in new[] { "null", "http://evil.example", "https://evil.example", "file://", "http://127.0.0.1", "http://localhost", "*", "", "http://a http://b", new string('o', 5_000), "http://\u00e9.example" })
        {
            yield return new Probe($"Origin '{(origin.Length > 30 ? origin[..30] + "…" : origin)}'", method, path, bytes, contentType, [("Origin", origin)]);
        }

        foreach (var value in new[] { "", "0", "true", "11", "1, 1" })
        {
            yield return new Probe($"{AgentGuard.HeaderName} '{value}'", method, path, bytes, contentType, [(AgentGuard.HeaderName, value)]);
        }

        foreach (var (name, origin) in new[] { ("allowed", (string?)null), ("foreign", "http://evil.example") })
        {
            IReadOnlyList<(string, string)> preflight = [("Access-Control-Request-Method", method.Method), ("Access-Control-Request-Headers", "content-type,x-openpurse-agent"), ("Access-Control-Request-Private-Network", "true")];
            yield return new Probe($"preflight, {name} origin", HttpMethod.Options, path, null, null, origin is null ? preflight : [.. preflight, ("Origin", origin)]);
        }

        yield return new Probe("preflight for DELETE", HttpMethod.Options, path, null, null, [("Access-Control-Request-Method", "DELETE")]);
    }

    /// <summary>Bills the agent must refuse before it reads the card.</summary>
    private static IEnumerable<Probe> BillProbes(HostileSystem system, string expired)
    {
        Probe Pay(string name, string bill, string profile = "signed") =>
            Probe.Json(name, s_post, "/v1/payments", JsonSerializer.Serialize(new { bill, profile }));

        var key = system.StoreKeys.For(HostileSystem.StoreId);
        yield return Pay("expired, lean", expired, "lean");
        yield return Pay("expired, profile in upper case", expired, "SIGNED");
        yield return Pay("amount changed, signature kept", string.Join('.', expired.Split('.').Select((p, i) => i == 1 ? System.Buffers.Text.Base64Url.EncodeToString(Payload(expired, ("amount", "{\"minorUnits\":1,\"currency\":\"EUR\"}"))) : p)));
        yield return Pay("signed by another member store", Jws.Sign(system.StoreKeys.For(HostileSystem.OtherStoreId), Payload(expired), MessageTypes.Bill));
        yield return Pay("naming another member store", Jws.Sign(key, Payload(expired, ("storeId", "\"" + HostileSystem.OtherStoreId + "\"")), MessageTypes.Bill));
        yield return Pay("naming an unknown store", Jws.Sign(key, Payload(expired, ("storeId", "\"no-such-store\"")), MessageTypes.Bill));
        yield return Pay("naming a store id with a path", Jws.Sign(key, Payload(expired, ("storeId", "\"../../admin\"")), MessageTypes.Bill));
        yield return Pay("signed as a receipt", Jws.Sign(key, Payload(expired), MessageTypes.Receipt));
        yield return Pay("signed by an unregistered key", Jws.Sign(EcdsaSigningKey.Generate(), Payload(expired), MessageTypes.Bill));
        yield return Pay("lines not adding up", Jws.Sign(key, Payload(expired, ("amount", "{\"minorUnits\":99999,\"currency\":\"EUR\"}")), MessageTypes.Bill));
        yield return Pay("not a JWS", "hello");
        yield return Pay("a JWS of two parts", string.Join('.', expired.Split('.')[..2]));
        yield return Pay("a payload that is not JSON", string.Join('.', expired.Split('.').Select((p, i) => i == 1 ? Base64Url("{{{") : p)));
        yield return Pay("a payload that is an array", string.Join('.', expired.Split('.').Select((p, i) => i == 1 ? Base64Url("[]") : p)));
        yield return Pay("a huge store id", string.Join('.', expired.Split('.').Select((p, i) => i == 1 ? Base64Url("{\"storeId\":\"" + new string('s', 10_000) + "\"}") : p)));
    }

    /// <summary>The approval form, posted from places other than the agent's own page, and for no payment from it.</summary>
    private static IEnumerable<Probe> ApprovalForms(HostileSystem system, string path)
    {
        const string form = "application/x-www-form-urlencoded";
        var valid = "token=AAAA&decision=approve"u8.ToArray();
        foreach (var origin in new[] { system.MallOrigin, system.OperatorOrigin, "null", "http://evil.example", "" })
        {
            yield return new Probe($"form from Origin '{origin}'", s_post, path, valid, form, [("Origin", origin)]);
        }

        yield return new Probe("form from Origin null, cross-site", s_post, path, valid, form, [("Origin", "null"), ("Sec-Fetch-Site", "cross-site")]);
        IReadOnlyList<(string, string)> own = [("Origin", system.AgentOrigin)];
        foreach (var body in new[] { "", "token=", "decision=approve", "token=A&token=B&decision=approve", "token=AAAA&decision=maybe", "token=%00&decision=approve", "number=4242424242424242&expiry=12%2F49&pin=1234&decision=approve", new string('t', 10_000) + "=1" })
        {
            yield return new Probe($"form '{(body.Length > 30 ? body[..30] + "…" : body)}' from the agent's page", s_post, path, Encoding.UTF8.GetBytes(body), form, own);
        }

        yield return new Probe("multipart form from the agent's page", s_post, path, Encoding.UTF8.GetBytes("--x\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\nA\r\n--x--\r\n"), "multipart/form-data; boundary=x", own);
        yield return new Probe("form without a content type from the agent's page", s_post, path, valid, null, own);
    }

    // ---- authorizer ----

    /// <summary>An authorization endpoint without the API key, or with a garbled one.</summary>
    private static IEnumerable<Probe> ApiKeyHeaders(HttpMethod method, string path, string? body)
    {
        var bytes = body is null ? null : Encoding.UTF8.GetBytes(body);
        var contentType = body is null ? null : "application/json";
        var key = HostileSystem.AuthorizerApiKey;
        yield return new Probe("no Authorization", method, path, bytes, contentType);
        yield return new Probe("no Authorization, path in upper case", method, path.ToUpperInvariant(), bytes, contentType);
        foreach (var value in new[] { "", "Bearer", "Bearer " + key + ".", "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes(key)), "Bearer " + key[..^1], "Bearer " + new string('k', 16_000), "Bearer \u00e9\u00e9", "Bearer " + key + "," + key })
        {
            yield return new Probe($"Authorization '{(value.Length > 30 ? value[..30] + "…" : value)}'", method, path, bytes, contentType, [("Authorization", value)]);
        }
    }

    /// <summary>Idempotency keys and card data that are not what the authorizer takes.</summary>
    private static IEnumerable<Probe> AuthorizationProbes(string body, IReadOnlyList<(string, string)> apiKey)
    {
        foreach (var key in new[] { "", " ", new string('k', 256), "k\u00e9", "a b" })
        {
            yield return new Probe($"Idempotency-Key '{(key.Length > 20 ? key[..20] + "…" : key)}'", s_post, "/v1/authorizations", Encoding.UTF8.GetBytes(body), "application/json", [.. apiKey, ("Idempotency-Key", key)]);
        }

        yield return new Probe("no Idempotency-Key", s_post, "/v1/authorizations", Encoding.UTF8.GetBytes(body), "application/json", apiKey);
        var cardData = JsonNode.Parse(body)!["cardData"]!.GetValue<string>();
        foreach (var (name, text) in Jwes(cardData))
        {
            var changed = JsonNode.Parse(body)!.AsObject();
            changed["cardData"] = text;
            yield return new Probe($"card data {name}", s_post, "/v1/authorizations", Encoding.UTF8.GetBytes(changed.ToJsonString()), "application/json", [.. apiKey, ("Idempotency-Key", "hostile-" + Guid.NewGuid().ToString("N"))]);
        }
    }

    /// <summary>Broken forms of a compact JWE of card data.</summary>
    private static IEnumerable<(string Name, string Text)> Jwes(string valid)
    {
        var parts = valid.Split('.');
        string With(int index, string part) => string.Join('.', parts.Select((p, i) => i == index ? part : p));
        yield return ("empty", "");
        yield return ("not a JWE", "hello");
        yield return ("of three parts", string.Join('.', parts[..3]));
        yield return ("of six parts", valid + ".AAAA");
        yield return ("with an encrypted key", With(1, "AAAA"));
        yield return ("with its parts reversed", string.Join('.', parts.Reverse()));
        yield return ("with a header that is not JSON", With(0, Base64Url("{{{")));
        yield return ("with alg dir", With(0, Base64Url("{\"alg\":\"dir\",\"enc\":\"A256GCM\"}")));
        yield return ("with zip", With(0, Base64Url("{\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\",\"zip\":\"DEF\"}")));
        yield return ("with a huge kid", With(0, Base64Url("{\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\",\"kid\":\"" + new string('k', 100_000) + "\"}")));
        yield return ("with an IV of another length", With(2, "AAAA"));
        yield return ("with a tag that is not base64url", With(4, "!!!!"));
        yield return ("with padding", valid + "==");
        yield return ("with whitespace", " " + valid + "\t");
        yield return ("tampered", With(3, (parts[3][0] == 'A' ? "B" : "A") + parts[3][1..]));
        yield return ("huge", valid + new string('A', 200_000));
    }

    // ---- operator ----

    private static string StartBody(string bill, HostileSystem system) =>
        JsonSerializer.Serialize(new StartSettlementRequest(bill, SettlementProfile.Signed, system.Greeting(bill)), ProtocolJson.Options);

    private static IEnumerable<Probe> StartProbes(HostileSystem system)
    {
        var bill = system.PaidBill;
        var greeting = system.Greeting(bill);
        Probe Start(string name, string billText, string profile = "\"signed\"", string? cardGreeting = null) =>
            Probe.Json(name, s_post, "/v1/settlements", $$"""{"bill":{{JsonSerializer.Serialize(billText)}},"profile":{{profile}},"cardGreeting":{{JsonSerializer.Serialize(cardGreeting ?? greeting)}}}""");

        foreach (var (name, text) in Jwses(bill))
        {
            yield return Start($"bill {name}", text);
        }

        yield return Start("bill signed by another member store", Jws.Sign(system.StoreKeys.For(HostileSystem.OtherStoreId), Payload(bill), MessageTypes.Bill));
        yield return Start("bill signed as a receipt", Jws.Sign(system.StoreKeys.For(HostileSystem.StoreId), Payload(bill), MessageTypes.Receipt));
        yield return Start("bill signed by an unregistered key", SignedMessage.Sign(EcdsaSigningKey.Generate(), system.Paid.Bill, MessageTypes.Bill));
        foreach (var profile in new[] { "\"SIGNED\"", "\"lean \"", "\"unknown\"", "0", "1", "null", "\"\"" })
        {
            yield return Start($"profile {profile}", bill, profile);
        }

        foreach (var (name, text) in Base64s(28))
        {
            yield return Start($"greeting {name}", bill, cardGreeting: text);
        }
    }

    private static string CardAnswerBody(byte[] answer) => Member("cardAnswer", Convert.ToBase64String(answer));

    private static IEnumerable<Probe> CardAnswers(string path)
    {
        foreach (var (name, text) in Base64s(18))
        {
            yield return Probe.Json($"card answer {name}", s_post, path, Member("cardAnswer", text));
        }

        foreach (var status in new byte[][] { [0x69, 0x85], [0x94, 0x03], [0x6A, 0x82], [0x00, 0x00], [0xFF, 0xFF] })
        {
            yield return Probe.Json($"card answer status {Convert.ToHexString(status)}", s_post, path, CardAnswerBody(status));
        }
    }

    /// <summary>The operator's statement query, broken, missing, or signed by the store itself.</summary>
    private static IEnumerable<Probe> StatementQueries(HostileSystem system)
    {
        var path = $"/v1/operator/statements/{HostileSystem.StoreId}";
        var byTheStore = SignedMessage.Sign(system.StoreKeys.For(HostileSystem.StoreId), new StatementQuery(HostileSystem.StoreId, DateTimeOffset.UtcNow), MessageTypes.StatementQuery);
        yield return new Probe("statement query signed by the store itself", s_get, path, null, null, [(StatementQuery.Header, byTheStore)]);
        foreach (var (name, text) in Jwses(byTheStore))
        {
            yield return InHeader($"statement query {name}", path, StatementQuery.Header, text);
        }
    }

    // A GET with one header; beyond Kestrel's own header limit it is Kestrel that answers, alone (docs/errors.md).
    private static Probe InHeader(string name, string path, string header, string value) =>
        new(name, s_get, path, null, null, [(header, value)], value.Length > Probe.KestrelHeadersLengthMax ? StatusCodes.Status431RequestHeaderFieldsTooLarge : null);

    /// <summary>A settlement read with hostile proofs: broken digests, broken or foreign store queries.</summary>
    private static IEnumerable<Probe> ReadProofProbes(HostileSystem system)
    {
        var path = $"/v1/settlements/{system.Paid.SettlementId}";
        foreach (var probe in DigestProbes("wallet proof", path, SettlementReadProof.WalletHeader))
        {
            yield return probe;
        }

        var query = SettlementReadProof.ForStore(system.StoreKeys.For(HostileSystem.OtherStoreId), system.Paid.SettlementId, HostileSystem.OtherStoreId, DateTimeOffset.UtcNow);
        yield return new Probe("another member store's query", s_get, path, null, null, [(SettlementReadProof.StoreHeader, query)]);
        foreach (var (name, text) in Jwses(query))
        {
            yield return InHeader($"store query {name}", path, SettlementReadProof.StoreHeader, text);
        }
    }

    /// <summary>A top-up read with hostile proofs of the CREDIT: broken, oversized and forged digests.</summary>
    private static IEnumerable<Probe> TopUpReadProofProbes() =>
        DigestProbes("credit proof", $"/v1/topups/{Guid.NewGuid()}", TopUpReadProof.WalletHeader);

    // A read whose proof is a command's digest, with digests that are empty, not base64url, of the right length but wrong, oversized, or forging a header.
    private static IEnumerable<Probe> DigestProbes(string name, string path, string header) =>
        new[] { "", "x", "%%%", new string('A', 43), new string('A', 10_000), "AAAA\r\nX-Forged: 1" }.Select(digest =>
            new Probe($"{name} '{(digest.Length > 20 ? digest[..20] + "…" : digest)}'", s_get, path, null, null, [(header, digest)]));
    /// <summary>
    /// A refund request signed by the paid store for one more than was paid: well-formed and
    /// authentic, yet refused, so that no probe moves value; its broken and foreign forms.
    /// </summary>
    private static string RefundPastPaid(HostileSystem system) =>
        SignedMessage.Sign(system.StoreKeys.For(HostileSystem.StoreId),
            new RefundRequest(Guid.NewGuid(), system.Paid.SettlementId, HostileSystem.StoreId, new Money(system.Paid.Amount.MinorUnits + 1, system.Paid.Amount.Currency), "probe", DateTimeOffset.UtcNow),
            MessageTypes.RefundRequest);

    private static IEnumerable<Probe> RefundProbes(HostileSystem system)
    {
        var valid = RefundPastPaid(system);
        yield return Probe.Json("refund past what was paid", s_post, "/v1/refunds", Member("request", valid));
        foreach (var (name, text) in Jwses(valid))
        {
            yield return Probe.Json($"refund request {name}", s_post, "/v1/refunds", Member("request", text));
        }

        var key = system.StoreKeys.For(HostileSystem.StoreId);
        var payload = Payload(valid);
        foreach (var (name, changed) in new[]
        {
            ("amount zero", Payload(payload, ("amount", "0"))),
            ("amount negative", Payload(payload, ("amount", "-100"))),
            ("amount a float", Payload(payload, ("amount", "1.5"))),
            ("amount huge", Payload(payload, ("amount", "1e300"))),
            ("settlement unknown", Payload(payload, ("settlementId", JsonSerializer.Serialize(Guid.NewGuid())))),
            ("settlement not a guid", Payload(payload, ("settlementId", "\"x\""))),
            ("store another", Payload(payload, ("storeId", JsonSerializer.Serialize(HostileSystem.OtherStoreId)))),
            ("reason huge", Payload(payload, ("reason", JsonSerializer.Serialize(new string('r', 100_000))))),
            ("reason with a control character", Payload(payload, ("reason", "\"a\\u0000b\""))),
            ("issued long ago", Payload(payload, ("issuedAt", "\"2000-01-01T00:00:00Z\""))),
            ("refund id empty", Payload(payload, ("refundId", JsonSerializer.Serialize(Guid.Empty)))),
        })
        {
            yield return Probe.Json($"refund request signed by its store, {name}", s_post, "/v1/refunds", Member("request", Jws.Sign(key, changed, MessageTypes.RefundRequest)));
        }

        yield return Probe.Json("refund request signed by another member store", s_post, "/v1/refunds",
            Member("request", Jws.Sign(system.StoreKeys.For(HostileSystem.OtherStoreId), payload, MessageTypes.RefundRequest)));
        yield return Probe.Json("refund request of another message type", s_post, "/v1/refunds", Member("request", Jws.Sign(key, payload, MessageTypes.Receipt)));
    }

    /// <summary>A refund read with hostile proofs: none, broken, or another member store's query.</summary>
    private static IEnumerable<Probe> RefundReadProbes(HostileSystem system)
    {
        var path = $"/v1/refunds/{Guid.NewGuid()}";
        var query = SettlementReadProof.ForStore(system.StoreKeys.For(HostileSystem.OtherStoreId), system.Paid.SettlementId, HostileSystem.OtherStoreId, DateTimeOffset.UtcNow);
        yield return new Probe("another member store's query", s_get, path, null, null, [(SettlementReadProof.StoreHeader, query)]);
        foreach (var (name, text) in Jwses(query))
        {
            yield return InHeader($"store query {name}", path, SettlementReadProof.StoreHeader, text);
        }
    }

    private static IEnumerable<Probe> ReceiptProbes(HostileSystem system)
    {
        var path = $"/v1/settlements/{system.Paid.SettlementId}/receipt";
        var receipt = system.Paid.ReceiptJws;
        foreach (var (name, text) in Jwses(receipt))
        {
            yield return Probe.Json($"receipt {name}", s_post, path, Member("receipt", text));
        }

        var key = system.StoreKeys.For(HostileSystem.StoreId);
        foreach (var (name, payload) in Hostile(Payload(receipt), "amount", ["settlementId", "orderNo", "storeId", "completionDigest"], ["issuedAt"]))
        {
            yield return Probe.Json($"receipt signed by its store, {name}", s_post, path, Member("receipt", Jws.Sign(key, payload, MessageTypes.Receipt)));
        }

        yield return Probe.Json("receipt signed by another member store", s_post, path, Member("receipt", Jws.Sign(system.StoreKeys.For(HostileSystem.OtherStoreId), Payload(receipt), MessageTypes.Receipt)));
        yield return Probe.Json("receipt of another settlement", s_post, $"/v1/settlements/{Guid.NewGuid()}/receipt", Member("receipt", receipt));
    }

    private static string SyncBody(HostileSystem system)
    {
        var (challenge, greeting) = system.SyncGreeting();
        return JsonSerializer.Serialize(new CardSyncRequest(challenge, greeting), ProtocolJson.Options);
    }

    private static IEnumerable<Probe> SyncProbes(HostileSystem system)
    {
        var (challenge, greeting) = system.SyncGreeting();
        foreach (var (name, text) in Base64s(8))
        {
            yield return Probe.Json($"sync host challenge {name}", s_post, "/v1/cards/sync", JsonSerializer.Serialize(new CardSyncRequest(text, greeting), ProtocolJson.Options));
        }

        foreach (var (name, text) in Base64s(28))
        {
            yield return Probe.Json($"sync greeting {name}", s_post, "/v1/cards/sync", JsonSerializer.Serialize(new CardSyncRequest(challenge, text), ProtocolJson.Options));
        }
    }

    private static string TopUpBody(HostileSystem system)
    {
        var (challenge, greeting) = system.SyncGreeting();
        return JsonSerializer.Serialize(new TopUpRequest(Guid.NewGuid(), Money.Parse("10.00 EUR"), challenge, greeting, "a.b.c.d.e"), ProtocolJson.Options);
    }

    // Each field of a top-up out of its range: amounts, ids, base64, card data.
    private static IEnumerable<Probe> TopUpProbes(HostileSystem system)
    {
        var valid = JsonNode.Parse(TopUpBody(system))!.AsObject();
        (string Name, string Field, JsonNode? Value)[] changes =
        [
            ("zero amount", "amount", JsonValue.Create("0.00 EUR")),
            ("negative amount", "amount", JsonValue.Create("-5.00 EUR")),
            ("huge amount", "amount", JsonValue.Create("92233720368547758.07 EUR")),
            ("points", "amount", JsonValue.Create("10 PTS")),
            ("empty id", "topUpId", JsonValue.Create(Guid.Empty.ToString())),
            ("no card data", "cardData", JsonValue.Create("")),
            ("null card data", "cardData", null),
            ("long card data", "cardData", JsonValue.Create(new string('a', 20_000))),
        ];
        foreach (var (name, field, value) in changes)
        {
            var body = valid.DeepClone().AsObject();
            body[field] = value?.DeepClone();
            yield return Probe.Json($"top-up {name}", s_post, "/v1/topups", body.ToJsonString());
        }

        foreach (var (name, text) in Base64s(28))
        {
            var body = valid.DeepClone().AsObject();
            body["cardGreeting"] = text;
            yield return Probe.Json($"top-up greeting {name}", s_post, "/v1/topups", body.ToJsonString());
        }
    }

    // A transfer to a card the operator never issued: refused once the card's greeting verified.
    private static string TransferBody(HostileSystem system)
    {
        var (challenge, greeting) = system.SyncGreeting();
        return JsonSerializer.Serialize(new TransferRequest(Guid.NewGuid(), Money.Parse("1.00 EUR"), CardId.FromSerial(999_999_999_999_998).Digits, challenge, greeting), ProtocolJson.Options);
    }

    private static string CashOutBody(HostileSystem system)
    {
        var (challenge, greeting) = system.SyncGreeting();
        return JsonSerializer.Serialize(new CashOutRequest(Guid.NewGuid(), Money.Parse("1.00 EUR"), "DE89370400440532013000", "A. Holder", challenge, greeting), ProtocolJson.Options);
    }

    // Each field of a transfer or a cash-out out of its range: amounts, ids, payees, IBANs, names, base64.
    private static IEnumerable<Probe> DecreaseProbes(HostileSystem system, string path, string validBody)
    {
        var valid = JsonNode.Parse(validBody)!.AsObject();
        var id = valid.ContainsKey("transferId") ? "transferId" : "cashOutId";
        (string Name, string Field, JsonNode? Value)[] changes =
        [
            ("zero amount", "amount", JsonValue.Create("0.00 EUR")),
            ("negative amount", "amount", JsonValue.Create("-5.00 EUR")),
            ("huge amount", "amount", JsonValue.Create("92233720368547758.07 EUR")),
            ("points", "amount", JsonValue.Create("10 PTS")),
            ("empty id", id, JsonValue.Create(Guid.Empty.ToString())),
            ("payee itself", "payeeCard", JsonValue.Create(system.CardId.Digits)),
            ("payee not a number", "payeeCard", JsonValue.Create("4242-4242")),
            ("payee null", "payeeCard", null),
            ("payee long", "payeeCard", JsonValue.Create(new string('9', 5_000))),
            ("iban check digits", "iban", JsonValue.Create("DE00370400440532013000")),
            ("iban null", "iban", null),
            ("iban long", "iban", JsonValue.Create(new string('D', 3_000))),
            ("iban control characters", "iban", JsonValue.Create("DE89\u0000370400440532013000")),
            ("holder empty", "accountHolder", JsonValue.Create("")),
            ("holder null", "accountHolder", null),
            ("holder newline", "accountHolder", JsonValue.Create("A\r\nHolder")),
            ("holder long", "accountHolder", JsonValue.Create(new string('a', 3_000))),
        ];
        foreach (var (name, field, value) in changes.Where(change => change.Field is "amount" || change.Field == id || valid.ContainsKey(change.Field)))
        {
            var body = valid.DeepClone().AsObject();
            body[field] = value?.DeepClone();
            yield return Probe.Json($"{path} {name}", s_post, path, body.ToJsonString());
        }

        foreach (var (name, text) in Base64s(28))
        {
            var body = valid.DeepClone().AsObject();
            body["cardGreeting"] = text;
            yield return Probe.Json($"{path} greeting {name}", s_post, path, body.ToJsonString());
        }
    }

    private static string RegistrationBody(string storeId)
    {
        using var key = EcdsaSigningKey.Generate();
        return $$"""{"storeId":"{{storeId}}","name":"A hostile shop","mallId":null,"notifyUrl":"http://127.0.0.1:9/","jwks":{{new JsonWebKeySet([key.PublicKey]).ToJson()}}}""";
    }

    private static IEnumerable<Probe> RegistrationProbes(IReadOnlyList<(string, string)> admin)
    {
        var valid = JsonNode.Parse(RegistrationBody("hostile-shop"))!.AsObject();
        Probe With(string name, string member, string value)
        {
            var body = JsonNode.Parse(valid.ToJsonString())!.AsObject();
            body[member] = JsonNode.Parse(value);
            return Probe.Json($"registration {name}", s_post, "/v1/admin/stores", body.ToJsonString(), admin);
        }

        foreach (var id in new[] { "\"\"", "\" \"", "\"a\\r\\nb\"", "\"a\\u0000b\"", "\"" + new string('s', 5_000) + "\"", "\"../x\"", "\"b\\u00f6oks\"" })
        {
            yield return With($"store id {(id.Length > 20 ? id[..20] : id)}", "storeId", id);
        }

        foreach (var url in new[] { "\"not a url\"", "\"file:///etc/passwd\"", "\"ftp://127.0.0.1/\"", "\"http://\"", "\"" + "http://127.0.0.1/" + new string('a', 10_000) + "\"" })
        {
            yield return With($"notify URL {(url.Length > 30 ? url[..30] : url)}", "notifyUrl", url);
        }

        foreach (var jwks in new[] { "{}", "{\"keys\":[]}", "{\"keys\":[{}]}", "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}", "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\",\"kid\":\"k\"}]}", "[]", "\"keys\"", "null" })
        {
            yield return With($"jwks {jwks}", "jwks", jwks);
        }
    }

    // ---- store ----

    private static IEnumerable<Probe> OrderProbes(string path)
    {
        Probe Order(string name, string items, string storeId = "\"" + HostileSystem.StoreId + "\"") =>
            Probe.Json($"order {name}", s_post, path, $$"""{"storeId":{{storeId}},"items":{{items}}}""");
        string Line(string sku, string quantity) => $$"""{"sku":"{{sku}}","quantity":{{quantity}}}""";

        foreach (var quantity in new[] { "0", "-1", "101", "2147483647", "2147483648", "-2147483649", "1.5", "1e2", "\"1\"", "null", "99999999999999999999999" })
        {
            yield return Order($"quantity {quantity}", "[" + Line(HostileSystem.Sku, quantity) + "]");
        }

        yield return Order("no lines", "[]");
        yield return Order("21 lines", "[" + string.Join(',', Enumerable.Repeat(Line(HostileSystem.Sku, "1"), 21)) + "]");
        yield return Order("100 000 lines", "[" + string.Join(',', Enumerable.Repeat(Line(HostileSystem.Sku, "1"), 100_000)) + "]");
        yield return Order("one article on two lines", "[" + Line(HostileSystem.Sku, "1") + "," + Line(HostileSystem.Sku, "1") + "]");
        yield return Order("the most of every article", "[" + Line("book-001", "100") + "," + Line("book-002", "100") + "]");
        yield return Order("an unknown article", "[" + Line("book-999", "1") + "]");
        yield return Order("another member's article", "[" + Line("song-001", "1") + "]");
        yield return Order("an article with CR/LF", "[" + Line("book-001\\r\\nX: y", "1") + "]");
        foreach (var storeId in new[] { "\"nowhere\"", "\"\"", "null", "\"BOOKS\"", "\"" + new string('b', 100_000) + "\"" })
        {
            yield return Order($"store {(storeId.Length > 20 ? storeId[..20] : storeId)}", "[" + Line(HostileSystem.Sku, "1") + "]", storeId);
        }
    }

    private static IEnumerable<Probe> CompletionProbes(HostileSystem system, string path)
    {
        var acn = system.Paid.CompletionNoticeJws;
        foreach (var (name, text) in Jwses(acn))
        {
            yield return Probe.Json($"ACN {name}", s_post, path, Member("completionNotice", text));
        }

        // The operator's own signature over what it never said: another order's payment for this
        // order's number, amounts out of range, absurd dates. Each differs from the billed order.
        var forBilled = Payload(acn, ("orderNo", JsonSerializer.Serialize(system.Billed.OrderNo)), ("settlementId", JsonSerializer.Serialize(Guid.NewGuid())));
        foreach (var (name, payload) in Hostile(forBilled, "amount", ["orderNo", "storeId", "billDigest", "cardMasked"], ["completedAt"]))
        {
            yield return Probe.Json($"ACN signed by the operator, {name}", s_post, path, Member("completionNotice", Jws.Sign(system.Security.OperatorKey, payload, MessageTypes.CompletionNotice)));
        }

        yield return Probe.Json("ACN signed by a member store", s_post, path, Member("completionNotice", Jws.Sign(system.StoreKeys.For(HostileSystem.StoreId), Payload(acn), MessageTypes.CompletionNotice)));
        yield return Probe.Json("ACN signed as a void notice", s_post, path, Member("completionNotice", Jws.Sign(system.Security.OperatorKey, Payload(acn), MessageTypes.VoidNotice)));
        yield return Probe.Json("ACN of the paid order for the billed one", s_post, $"/v1/orders/{system.Billed.OrderNo}/completion", Member("completionNotice", acn));
    }

    private static string VoidOf(HostileSystem system, string orderNo, Money amount) =>
        SignedMessage.Sign(system.Security.OperatorKey, new VoidNotice(system.Paid.SettlementId, orderNo, HostileSystem.StoreId, DemoMall, amount, system.Paid.CompletionNotice.BillDigest, VoidReasons.Expired, DateTimeOffset.UtcNow), MessageTypes.VoidNotice);

    private const string DemoMall = Demo.DemoSystem.MallId;

    private static IEnumerable<Probe> VoidProbes(HostileSystem system)
    {
        var paidVoid = VoidOf(system, system.Paid.OrderNo, system.Paid.Amount);
        foreach (var (name, text) in Jwses(paidVoid))
        {
            yield return Probe.Json($"void notice {name}", s_post, "/v1/operator/voids", Member("voidNotice", text));
        }

        // For the billed order, every one differs from it in what it may not (amount, store, bill, reason, dates).
        var forBilled = Payload(paidVoid, ("orderNo", JsonSerializer.Serialize(system.Billed.OrderNo)));
        foreach (var (name, payload) in Hostile(forBilled, "amount", ["orderNo", "storeId", "billDigest", "reason"], ["voidedAt"]))
        {
            yield return Probe.Json($"void notice signed by the operator, {name}", s_post, "/v1/operator/voids", Member("voidNotice", Jws.Sign(system.Security.OperatorKey, payload, MessageTypes.VoidNotice)));
        }

        yield return Probe.Json("void notice signed by a member store", s_post, "/v1/operator/voids", Member("voidNotice", Jws.Sign(system.StoreKeys.For(HostileSystem.StoreId), Payload(paidVoid), MessageTypes.VoidNotice)));
        yield return Probe.Json("void notice signed as an ACN", s_post, "/v1/operator/voids", Member("voidNotice", Jws.Sign(system.Security.OperatorKey, Payload(paidVoid), MessageTypes.CompletionNotice)));
    }

    private static IEnumerable<Probe> DownloadProbes(HostileSystem system)
    {
        var receipt = system.Paid.ReceiptJws;
        Probe Download(string name, string orderNo, string? header) =>
            new($"download {name}", s_get, $"/v1/orders/{orderNo}/download", null, null, header is null ? null : [(OpenPurse.Store.Api.StoreApi.ReceiptHeader, header)],
                header?.Length > Probe.KestrelHeadersLengthMax ? StatusCodes.Status431RequestHeaderFieldsTooLarge : null);

        yield return Download("without a receipt", system.Paid.OrderNo, null);
        yield return Download("of the billed order with the paid order's receipt", system.Billed.OrderNo, receipt);
        yield return Download("of the billed order without a receipt", system.Billed.OrderNo, null);
        foreach (var (name, text) in Jwses(receipt))
        {
            yield return Download($"with a receipt {name}", system.Paid.OrderNo, text);
        }

        yield return Download("with a receipt signed by another member store", system.Paid.OrderNo, Jws.Sign(system.StoreKeys.For(HostileSystem.OtherStoreId), Payload(receipt), MessageTypes.Receipt));
        yield return Download("with two receipt headers", system.Paid.OrderNo, receipt + ", " + receipt);
        yield return Download("with a non-ASCII receipt", system.Paid.OrderNo, "r\u00e9ceipt");
        yield return Download("with a receipt of 20 KiB", system.Paid.OrderNo, receipt + new string('A', 20 * 1024));
        yield return Download("with a receipt of 100 KiB", system.Paid.OrderNo, receipt + new string('A', 100 * 1024));
    }

    // ---- shared ----

    /// <summary>A few harmless GETs with junk in the query and the headers.</summary>
    private static IEnumerable<Probe> Plain(string path)
    {
        yield return new Probe("plain", s_get, path, null, null);
        yield return new Probe("junk query", s_get, path + "?a=%00&b=%0D%0A&" + new string('c', 2_000) + "=1", null, null);
        yield return new Probe("a body on a GET", s_get, path, "{}"u8.ToArray());
        yield return new Probe("junk headers", s_get, path, null, null, [("Accept", "\u00ff/\u00ff"), ("X-Forwarded-For", "999.999.999.999"), ("Content-Length", "abc")]);
        yield return new Probe("HEAD", HttpMethod.Head, path, null, null);
        yield return new Probe("OPTIONS", HttpMethod.Options, path, null, null);
    }

    /// <summary>
    /// A page, script or stylesheet: what any GET endpoint gets, other methods (refused, never
    /// served), and the path spelled otherwise or with a step up, which serve nothing else.
    /// </summary>
    private static IEnumerable<Probe> PageProbes(string path)
    {
        foreach (var probe in Plain(path))
        {
            yield return probe;
        }

        yield return new Probe("POST with a form body", s_post, path, "decision=approve"u8.ToArray(), "application/x-www-form-urlencoded");
        yield return new Probe("POST with a JSON body", s_post, path, "{}"u8.ToArray(), "application/json");
        yield return new Probe("PUT", HttpMethod.Put, path, null, null);
        yield return new Probe("DELETE", HttpMethod.Delete, path, null, null);
        yield return new Probe("the path in capitals", s_get, path.ToUpperInvariant(), null, null);
        yield return new Probe("a step up below it", s_get, path.TrimEnd('/') + "/..%2f..%2fappsettings.json", null, null);
        yield return new Probe("a hostile query", s_get, path + "?<script>alert(1)</script>=%22%3E%3Cscript%3E&agent=http://evil.example", null, null);
        yield return new Probe("a hostile Origin and Referer", s_get, path, null, null, [("Origin", "http://evil.example"), ("Referer", "http://evil.example/\"><script>")]);
    }

    /// <summary>The scrape endpoint answers any method: a body, another method, a path below it.</summary>
    private static IEnumerable<Probe> Scrape()
    {
        yield return new Probe("POST with a body", s_post, "/metrics", "{\"a\":1}"u8.ToArray(), "application/json");
        yield return new Probe("PUT", HttpMethod.Put, "/metrics", null, null);
        yield return new Probe("DELETE", HttpMethod.Delete, "/metrics", null, null);
        yield return new Probe("Accept: protobuf", s_get, "/metrics", null, null, [("Accept", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited")]);
        yield return new Probe("Accept: OpenMetrics", s_get, "/metrics", null, null, [("Accept", "application/openmetrics-text; version=1.0.0; charset=utf-8")]);
        yield return new Probe("a path below it", s_get, "/metrics/%2e%2e/health", null, null);
    }

    /// <summary>A holder that is not what the registry keeps, on the kit's own card: refused, nothing registered.</summary>
    private static IEnumerable<Probe> HolderProbes(IReadOnlyList<(string, string)> admin)
    {
        var path = $"/v1/admin/cards/{CardId.FromSerial(999_999_999_999_999).Digits}/holder";
        var bodies = new (string Name, object Body)[]
        {
            ("no name", new { contact = "a@example.org" }),
            ("no contact", new { name = "Ada" }),
            ("a name with a line break", new { name = "Ada\nLovelace", contact = "a@example.org" }),
            ("a name with a bidi override", new { name = "Ada \u202Eecalevol", contact = "a@example.org" }),
            ("a name of 101 characters", new { name = new string('a', 101), contact = "a@example.org" }),
            ("a huge name", new { name = new string('a', 100_000), contact = "a@example.org" }),
            ("a blank name", new { name = "   ", contact = "a@example.org" }),
            ("an e-mail without a domain", new { name = "Ada", contact = "ada@" }),
            ("an e-mail with a space", new { name = "Ada", contact = "ada lovelace@example.org" }),
            ("an e-mail with a line break", new { name = "Ada", contact = "ada@example.org\n" + "Bcc: x@example.org" }),
            ("a phone without +", new { name = "Ada", contact = "0123456789" }),
            ("a phone with spaces", new { name = "Ada", contact = "+44 20 7946 0000" }),
            ("a phone of 16 digits", new { name = "Ada", contact = "+1234567890123456" }),
            ("a birth date besides", new { name = "Ada", contact = "a@example.org", birthDate = "1815-12-10" }),
            ("a holder id and a name", new { name = "Ada", contact = "a@example.org", holderId = Guid.NewGuid().ToString() }),
            ("a holder id that is no UUID", new { holderId = "../../etc" }),
            ("an unknown holder id", new { holderId = Guid.NewGuid().ToString() }),
        };
        foreach (var (name, body) in bodies)
        {
            yield return new Probe($"holder {name}", s_post, path, JsonSerializer.SerializeToUtf8Bytes(body), "application/json", admin);
        }
    }

    /// <summary>The endpoint with <paramref name="valid"/> in its route, then with every hostile route value.</summary>
    private static IEnumerable<Probe> Route(HttpMethod method, string template, string valid, string? body = null, IReadOnlyList<(string, string)>? headers = null)
    {
        var bytes = body is null ? null : Encoding.UTF8.GetBytes(body);
        var contentType = body is null ? null : "application/json";
        yield return new Probe("the valid route value", method, template.Replace("{}", Uri.EscapeDataString(valid), StringComparison.Ordinal), bytes, contentType, headers);
        foreach (var (name, segment, kestrelAlone) in HostileInputs.RouteValues())
        {
            yield return new Probe($"route value {name}", method, template.Replace("{}", segment, StringComparison.Ordinal), bytes, contentType, headers, kestrelAlone);
        }

        yield return new Probe("another method", HttpMethod.Put, template.Replace("{}", Uri.EscapeDataString(valid), StringComparison.Ordinal), bytes, contentType, headers);
    }

    /// <summary>A clearing period's query, as hostile as it comes: every one but the first is refused.</summary>
    private static IEnumerable<Probe> ClearingPeriods(string path, IReadOnlyList<(string, string)> admin) =>
        new[]
        {
            "?from=2026-01-01&to=2026-02-01", "", "?from=2026-01-01", "?to=2026-02-01", "?from=2026-02-30&to=2026-03-01", "?from=2026-1-1&to=2026-02-01",
            "?from=2026-02-01&to=2026-01-01", "?from=2000-01-01&to=9998-12-31", "?from=%EF%BC%92026-01-01&to=2026-02-01", "?from=2026-01-01&from=2026-01-02&to=2026-02-01",
            "?from=2026-01-01%0D%0A&to=2026-02-01", "?from=" + new string('9', 5_000) + "&to=2026-02-01", "?from=-2026-01-01&to=2026-02-01",
        }.Select(query => new Probe($"period {query[..Math.Min(query.Length, 40)]}", s_get, path + query, null, null, admin));

    /// <summary>
    /// An admin endpoint without the operator's token, or with a garbled one (not with whitespace
    /// around it: HTTP drops that, and the token stays the token).
    /// </summary>
    private static IEnumerable<Probe> AdminHeaders(HttpMethod method, string path, string? body)
    {
        var bytes = body is null ? null : Encoding.UTF8.GetBytes(body);
        var contentType = body is null ? null : "application/json";
        yield return new Probe("no Authorization", method, path, bytes, contentType);
        // Routing matches paths in any case: a check of the path that does not is walked around.
        foreach (var spelling in new[] { path.ToUpperInvariant(), path.Replace("/admin", "/ADMIN", StringComparison.Ordinal), path.Replace("/v1/", "/V1/", StringComparison.Ordinal), path + "/" })
        {
            yield return new Probe($"no Authorization, path spelled {spelling}", method, spelling, bytes, contentType);
        }
        foreach (var value in new[] { "", "Bearer", "Bearer ", "Bearer " + HostileSystem.AdminToken + ".", "Basic " + Convert.ToBase64String("admin:admin"u8), "Bearer wrong", "Bearer " + HostileSystem.AdminToken[..^1], "Bearer " + new string('t', 16_000), "Bearer \u00e9\u00e9", "Bearer " + HostileSystem.AdminToken + "," + HostileSystem.AdminToken })
        {
            yield return new Probe($"Authorization '{(value.Length > 30 ? value[..30] + "…" : value)}'", method, path, bytes, contentType, [("Authorization", value)]);
        }
    }

    /// <summary>Broken forms of a compact JWS.</summary>
    private static IEnumerable<(string Name, string Text)> Jwses(string valid)
    {
        var parts = valid.Split('.');
        yield return ("empty", "");
        yield return ("not a JWS", "hello");
        yield return ("of two parts", parts[0] + "." + parts[1]);
        yield return ("of four parts", valid + ".AAAA");
        yield return ("with an empty signature", parts[0] + "." + parts[1] + ".");
        yield return ("with alg none", Base64Url("{\"alg\":\"none\",\"typ\":\"x\"}") + "." + parts[1] + ".");
        yield return ("with a header that is not JSON", Base64Url("{{{") + "." + parts[1] + "." + parts[2]);
        yield return ("with an unknown kid", Base64Url("{\"alg\":\"ES256\",\"kid\":\"nobody\",\"typ\":\"openpurse-bill+jws\"}") + "." + parts[1] + "." + parts[2]);
        yield return ("with a huge kid", Base64Url("{\"alg\":\"ES256\",\"kid\":\"" + new string('k', 100_000) + "\"}") + "." + parts[1] + "." + parts[2]);
        yield return ("with a crit header", Base64Url("{\"alg\":\"ES256\",\"crit\":[\"x\"],\"x\":1}") + "." + parts[1] + "." + parts[2]);
        yield return ("with a payload that is not base64url", parts[0] + ".!!!." + parts[2]);
        yield return ("with its signature of another length", parts[0] + "." + parts[1] + "." + parts[2][..10]);
        yield return ("with padding", valid + "==");
        // A tab, not a line break: a raw LF in a header value would end the request early, and what
        // followed it would reach the server as a second request whose answer the next probe reads.
        yield return ("with whitespace", " " + valid + "\t");
        yield return ("tampered", parts[0] + "." + parts[1][..^2] + (parts[1][^2] == 'A' ? "B" : "A") + parts[1][^1] + "." + parts[2]);
        yield return ("huge", valid + new string('A', 200_000));
    }

    /// <summary>Broken forms of base64 data that should be <paramref name="length"/> bytes.</summary>
    private static IEnumerable<(string Name, string Text)> Base64s(int length)
    {
        yield return ("empty", "");
        yield return ("not base64", "not base64!");
        yield return ("base64url", Convert.ToBase64String(new byte[length]).Replace('+', '-').Replace('/', '_') + "-_");
        yield return ("one byte short", Convert.ToBase64String(new byte[length - 1]));
        yield return ("one byte long", Convert.ToBase64String(new byte[length + 1]));
        yield return ("zeros", Convert.ToBase64String(new byte[length]));
        yield return ("ones", Convert.ToBase64String(Enumerable.Repeat((byte)0xFF, length).ToArray()));
        yield return ("huge", Convert.ToBase64String(new byte[300_000]));
        yield return ("with whitespace", " " + Convert.ToBase64String(new byte[length]) + " ");
    }

    /// <summary>
    /// A signed message's payload (its JSON) with hostile values: the amount out of range (overflowing,
    /// negative, zero, a fraction, an unknown currency), identifiers emptied, lengthened, with CR/LF,
    /// dates absurd, members duplicated with another value, unknown members.
    /// </summary>
    public static IEnumerable<(string Name, byte[] Payload)> Hostile(byte[] payload, string amountMember, IReadOnlyList<string> identifiers, IReadOnlyList<string> dates)
    {
        var text = Encoding.UTF8.GetString(payload);
        foreach (var amount in HostileAmounts())
        {
            yield return ($"{amountMember} {amount}", Payload(payload, (amountMember, amount)));
        }

        foreach (var member in identifiers)
        {
            foreach (var value in new[] { "\"\"", "\"a\\r\\nb\"", "\"a\\u0000b\"", "\"" + new string('9', 100_000) + "\"", "null", "42" })
            {
                yield return ($"{member} {(value.Length > 20 ? value[..20] : value)}", Payload(payload, (member, value)));
            }
        }

        foreach (var member in dates)
        {
            foreach (var value in new[] { "\"9999-12-31T23:59:59+14:00\"", "\"0001-01-01T00:00:00-14:00\"", "\"1970-01-01T00:00:00Z\"", "\"yesterday\"", "0", "\"2026-02-30T00:00:00Z\"" })
            {
                yield return ($"{member} {value}", Payload(payload, (member, value)));
            }
        }

        var first = ((JsonObject)JsonNode.Parse(text)!).First().Key;
        yield return ($"{amountMember} duplicated with another value", Encoding.UTF8.GetBytes(text[..^1] + $",\"{amountMember}\":{{\"minorUnits\":1,\"currency\":\"EUR\"}}}}"));
        yield return ($"{first} duplicated", Encoding.UTF8.GetBytes(text[..^1] + $",\"{first}\":null}}"));
        yield return ("an unknown member", Encoding.UTF8.GetBytes(text[..^1] + ",\"unexpected\":1}"));
        yield return ("not JSON", "not json"u8.ToArray());
        yield return ("an array", "[]"u8.ToArray());
    }

    /// <summary>Amounts no message may carry, as JSON.</summary>
    public static IEnumerable<string> HostileAmounts()
    {
        foreach (var minor in new[] { "0", "-1", "-100", (Money.MaxMinorUnits + 1).ToString(System.Globalization.CultureInfo.InvariantCulture), long.MaxValue.ToString(System.Globalization.CultureInfo.InvariantCulture), long.MinValue.ToString(System.Globalization.CultureInfo.InvariantCulture), "9223372036854775808", "1.5", "4.999", "1e3", "\"100\"", "null" })
        {
            yield return $"{{\"minorUnits\":{minor},\"currency\":\"EUR\"}}";
        }

        foreach (var currency in new[] { "\"XXX\"", "\"eur\"", "\"\"", "\"EURO\"", "978", "null" })
        {
            yield return $"{{\"minorUnits\":499,\"currency\":{currency}}}";
        }

        yield return "{\"minorUnits\":499}";
        yield return "{\"minorUnits\":499,\"currency\":\"EUR\",\"minorDigits\":3}";
        yield return "499";
        yield return "\"4.99 EUR\"";
    }

    /// <summary>The payload of a compact JWS, with members replaced by raw JSON values.</summary>
    public static byte[] Payload(string compact, params (string Member, string Value)[] changes) =>
        Payload(System.Buffers.Text.Base64Url.DecodeFromChars(compact.Split('.')[1]), changes);

    private static byte[] Payload(byte[] payload, params (string Member, string Value)[] changes)
    {
        var body = (JsonObject)JsonNode.Parse(payload)!;
        var members = body.Select(m => (m.Key, Value: m.Value?.ToJsonString() ?? "null")).ToList();
        foreach (var (member, value) in changes)
        {
            var i = members.FindIndex(m => m.Key == member);
            members[i] = (member, value);
        }

        return Encoding.UTF8.GetBytes("{" + string.Join(',', members.Select(m => JsonSerializer.Serialize(m.Key) + ":" + m.Value)) + "}");
    }

    private static string Member(string name, string value) => new JsonObject { [name] = value }.ToJsonString();

    private static string Base64Url(string text) => System.Buffers.Text.Base64Url.EncodeToString(Encoding.UTF8.GetBytes(text));
}
