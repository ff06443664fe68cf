using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using OpenPurse.Hosting;
using OpenPurse.Operator.Decreases;
using OpenPurse.Operator.Issuance;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Security;
using OpenPurse.Operator.Settlement;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Operator.Api;

/// <summary>
/// The admin API: under /v1/admin, on the admin listener only (<see cref="Listeners"/>), each
/// endpoint declared through <see cref="AdminEndpoints"/> with its role and the action it is
/// audited as.
/// </summary>
internal static class AdminApi
{
    public const string Prefix = "/v1/admin";

    // Store ids are at most 64 characters, kids (RFC 7638 thumbprints) 43: longer ones name nothing, and are not written to the audit trail.
    private const int KeyPathPartLengthMax = 128;

    /// <summary>The OpenAPI document of the admin API, served on the admin listener.</summary>
    public const string Document = "admin";

    public static IEndpointRouteBuilder MapAdminApi(this IEndpointRouteBuilder app)
    {
        var admin = new AdminEndpoints(app.MapGroup(Prefix));
        admin.Command("/stores", "store.register", RegisterStoreAsync).WithBodyLimit(OperatorApi.RegistrationBodyLengthMax)
            .WithName("RegisterStore").WithSummary("Registers a store (or replaces its registration): its id, name, mall, notification URL and public keys.")
            .Refuses(ProblemCode.StoreInvalid, ProblemCode.OperatorBusy);
        // A card by what an operator has: its last digits. The reference each found card carries (its
        // number, for an administrator only) is what block and unblock take.
        admin.Query("/cards", "card.find", FindCardsAsync)
            .WithName("FindCards").WithSummary("The cards whose numbers end in the given 4 to 8 digits (last), or registered to a holder whose name contains the text or whose contact is it (holder); at most 50: masked, with their state, dates, balances and holder.")
            .Refuses(ProblemCode.CardQueryInvalid, ProblemCode.OperatorBusy);
        // Registration to a person: a name and one contact, nothing else; the audit trail gets the holder's id.
        admin.Command("/cards/{cardNumber}/holder", "card.register", RegisterHolderAsync)
            .WithName("RegisterCardHolder").WithSummary("Registers a card to a holder: a new one (name and contact; a card registered already has its holder's corrected), or an existing one (holderId).")
            .Refuses(ProblemCode.CardUnknown, ProblemCode.CardHolderInvalid, ProblemCode.CardHolderUnknown, ProblemCode.RequestMalformed, ProblemCode.OperatorBusy);
        admin.Command("/holders/{holderId:guid}/erase", "holder.erase", EraseHolderAsync)
            .WithName("EraseCardHolder").WithSummary("Erases a holder's name and contact, on their request; their cards and the ledger stay.")
            .Refuses(ProblemCode.CardHolderUnknown, ProblemCode.OperatorBusy);
        admin.Command("/cards/{cardNumber}/block", "card.block", BlockCardAsync)
            .WithName("BlockCard").WithSummary("Blocks a card: the operator refuses its settlements from now on. An optional reason goes to the audit trail.")
            .Refuses(ProblemCode.CardUnknown, ProblemCode.RequestMalformed, ProblemCode.OperatorBusy);
        admin.Command("/cards/{cardNumber}/unblock", "card.unblock", UnblockCardAsync)
            .WithName("UnblockCard").WithSummary("Unblocks a card blocked by mistake; the reason, required, goes to the audit trail.")
            .Refuses(ProblemCode.CardUnknown, ProblemCode.CardNotBlocked, ProblemCode.CardReplaced, ProblemCode.RequestMalformed, ProblemCode.OperatorBusy);
        admin.Query("/stores", "store.list", ListStoresAsync)
            .WithName("ListStores").WithSummary("The registered stores.")
            .Refuses(ProblemCode.OperatorBusy);
        // Key rotation (docs/operations.md, "Rotating keys"). A store's key: listed, retired. The
        // operator's signing keys: listed, activated, retired; a new one is made by the station
        // (`openpurse-operator key rotate`), where the vault is opened on purpose.
        admin.Query("/stores/{storeId}/keys", "store.keys", ListStoreKeysAsync)
            .WithName("ListStoreKeys").WithSummary("A store's keys, active and retired, with when each was registered and retired.")
            .Refuses(ProblemCode.StoreNotFound, ProblemCode.OperatorBusy);
        admin.Command("/stores/{storeId}/keys/{kid}/retire", "store.key_retire", RetireStoreKeyAsync)
            .WithName("RetireStoreKey").WithSummary("Retires a store's key: every signature under it is refused from now on; its kid can never be registered again. An optional reason goes to the audit trail.")
            .Refuses(ProblemCode.StoreKeyNotFound, ProblemCode.StoreKeyLast, ProblemCode.RequestMalformed, ProblemCode.OperatorBusy);
        admin.Query("/keys", "key.list", ListKeysAsync)
            .WithName("ListKeys").WithSummary("The operator's signing keys with their states, and the card master key versions (never a key's value).")
            .Refuses(ProblemCode.OperatorBusy);
        admin.Command("/keys/{kid}/activate", "key.activate", ActivateKeyAsync)
            .WithName("ActivateKey").WithSummary("Makes an operator signing key the active one; the one active until now stays published as previous.")
            .Refuses(ProblemCode.OperatorKeyNotFound, ProblemCode.OperatorKeyWrongState, ProblemCode.OperatorKeyNotInVault, ProblemCode.OperatorBusy);
        admin.Command("/keys/{kid}/retire", "key.retire", RetireKeyAsync)
            .WithName("RetireKey").WithSummary("Retires an operator signing key that is not the active one: it is no longer published.")
            .Refuses(ProblemCode.OperatorKeyNotFound, ProblemCode.OperatorKeyWrongState, ProblemCode.OperatorBusy);
        admin.Query("/audit", "audit.read", ReadAuditAsync)
            .WithName("ReadAudit").WithSummary("The newest entries of the admin audit trail.")
            .Refuses(ProblemCode.OperatorBusy);
        // A disputed settlement (its store kept refusing the ACN, or could not be told): the operator's decision.
        admin.Command("/settlements/{id:guid}/return", "settlement.return", ReturnSettlementAsync)
            .WithName("ReturnSettlement").WithSummary("Decides a disputed settlement: its amount goes back to the card at its next sync.")
            .Refuses(ProblemCode.SettlementNotFound, ProblemCode.SettlementNotDisputed, ProblemCode.CardBusy, ProblemCode.OperatorBusy);
        admin.Command("/settlements/{id:guid}/retell", "settlement.retell", RetellSettlementAsync)
            .WithName("RetellSettlement").WithSummary("Decides a disputed settlement: the store is told of its completion again.")
            .Refuses(ProblemCode.SettlementNotFound, ProblemCode.SettlementNotDisputed, ProblemCode.OperatorBusy);
        // Cash-outs' payouts: listed masked for anyone who may read; the export with the full IBANs, meant
        // for the bank, is an administrator's command, audited like every other.
        admin.Query("/payouts", "payout.list", ListPayoutsAsync)
            .WithName("ListPayouts").WithSummary("The cash-outs' payouts waiting for clearing, IBANs masked.")
            .Refuses(ProblemCode.OperatorBusy);
        admin.Command("/payouts/export", "payout.export", ExportPayoutsAsync)
            .WithName("ExportPayouts").WithSummary("The payouts waiting for clearing as CSV for the bank, with the full IBANs.")
            .Produces<string>(StatusCodes.Status200OK, "text/csv")
            .Refuses(ProblemCode.OperatorBusy);
        admin.Command("/payouts/{id:guid}/paid", "payout.paid", MarkPayoutPaidAsync)
            .WithName("MarkPayoutPaid").WithSummary("The bank paid a cash-out's payout: its value leaves circulation.")
            .Refuses(ProblemCode.CashOutNotFound, ProblemCode.PayoutNotPending, ProblemCode.OperatorBusy);
        admin.Command("/payouts/{id:guid}/returned", "payout.returned", MarkPayoutReturnedAsync)
            .WithName("MarkPayoutReturned").WithSummary("The bank sent a cash-out's payout back: the card gets its value at its next sync.")
            .Refuses(ProblemCode.CashOutNotFound, ProblemCode.PayoutNotPending, ProblemCode.OperatorBusy);
        // Clearing: statements, fees, bank accounts, runs and the stores' payouts.
        Clearing.ClearingApi.Map(admin);
        // The careful examination reads the whole registry and asks each store for its statement: an auditor's query.
        admin.Query("/examination", "examination.run", ExamineAsync)
            .WithName("RunExamination").WithSummary("The careful examination: every card log record against its transaction, each card's chain and balance, transactions without records, the ledger and the stores' statements; card numbers masked.")
            .Refuses(ProblemCode.OperatorBusy);
        // Open to anyone on the admin listener: it describes the endpoints, each of which asks for its token.
        app.MapApiDocument(Document).WithMetadata(AdminSurface.Instance);
        return app;
    }

    private static async Task<Results<Ok<StoreRecord>, ProblemHttpResult>> RegisterStoreAsync(StoreRegistration registration, StoreRegistry stores, HttpContext context, CancellationToken ct)
    {
        context.AuditTarget(registration.StoreId);
        return OperatorApi.Answer(await stores.RegisterAsync(registration, ct));
    }

    private static async Task<Results<Ok<CardSearch>, ProblemHttpResult>> FindCardsAsync(string? last, string? holder, CardRegistry cards, HttpContext context, CancellationToken ct)
    {
        CardSearch found;
        if (holder is not null && last is null)
        {
            if (!CardHolders.IsSearch(holder))
            {
                return new Refusal(ProblemCode.CardQueryInvalid, $"holder is {CardHolders.SearchLengthMin} to {CardHolders.NameLengthMax} characters of a name, or a contact, without control characters.").ToResult();
            }

            // What was searched for is personal data: the audit row says only that a holder was searched.
            context.AuditTarget("holder");
            found = await cards.FindByHolderAsync(holder, ct);
        }
        else
        {
            if (holder is not null || !CardRegistry.IsLastDigits(last))
            {
                return new Refusal(ProblemCode.CardQueryInvalid, $"last is {CardRegistry.LastDigitsMin} to {CardRegistry.LastDigitsMax} digits, the end of a card number (or holder, a name or a contact, alone).").ToResult();
            }

            context.AuditTarget(CardRegistry.AuditTarget(last));
            found = await cards.FindAsync(last, ct);
        }

        // The reference is the card's number, and the holder's name and contact personal data: for those who may act on them.
        return TypedResults.Ok(context.User.IsInRole(AdminRoles.Administrator) ? found : found with { Cards = [.. found.Cards.Select(c => c.WithoutReference())] });
    }

    private static async Task<Results<Ok<CardView>, ProblemHttpResult>> RegisterHolderAsync(string cardNumber, HolderRequest? request, CardHolders holders, CardRegistry cards, HttpContext context, CancellationToken ct)
    {
        if (!CardId.TryParse(cardNumber, out var cardId))
        {
            return new Refusal(ProblemCode.CardUnknown, "No such card.").ToResult();
        }

        context.AuditTarget(cardId.Masked);
        (HolderChange Change, Guid HolderId) registered;
        if (request is { HolderId: { } given, Name: null, Contact: null })
        {
            if (!CardHolders.TryReadHolderId(given, out var holderId))
            {
                return new Refusal(ProblemCode.CardHolderUnknown, "No such card holder.").ToResult();
            }

            registered = (await holders.LinkAsync(cardId, holderId, ct), holderId);
        }
        else if (request is { HolderId: null } && CardHolders.TryReadName(request.Name, out var name) && CardHolders.TryReadContact(request.Contact, out var contact))
        {
            registered = await holders.RegisterAsync(cardId, name, contact, ct);
        }
        else
        {
            return new Refusal(ProblemCode.CardHolderInvalid,
                $"Either holderId, or a name (1 to {CardHolders.NameLengthMax} characters, no control characters) and a contact (an e-mail address, or a phone number as + and 7 to 15 digits).").ToResult();
        }

        switch (registered.Change)
        {
            case HolderChange.CardUnknown:
                return new Refusal(ProblemCode.CardUnknown, "No such card.").ToResult();
            case HolderChange.HolderUnknown:
                return new Refusal(ProblemCode.CardHolderUnknown, "No such card holder.").ToResult();
        }

        context.AuditTarget(CardHolders.AuditTarget(cardId, registered.HolderId));
        return await cards.GetAsync(cardId, ct) is { } card ? TypedResults.Ok(card) : new Refusal(ProblemCode.CardUnknown, "No such card.").ToResult();
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> EraseHolderAsync(Guid holderId, CardHolders holders, HttpContext context, CancellationToken ct)
    {
        context.AuditTarget("holder " + holderId);
        return await holders.EraseAsync(holderId, ct) ? TypedResults.NoContent() : new Refusal(ProblemCode.CardHolderUnknown, "No such card holder.").ToResult();
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> BlockCardAsync(string cardNumber, CardChangeRequest? request, CardRegistry cards, HttpContext context, CancellationToken ct)
    {
        if (!CardId.TryParse(cardNumber, out var cardId))
        {
            return new Refusal(ProblemCode.CardUnknown, "No such card.").ToResult();
        }

        context.AuditTarget(cardId.Masked);
        // Optional for a block: an emergency is not held up for words, but what is given is kept.
        if (request?.Reason is { } given)
        {
            if (!CardRegistry.TryReadReason(given, out var reason))
            {
                return ReasonRefusal();
            }

            context.AuditReason(reason);
        }

        return await cards.BlockAsync(cardId, ct) == CardChange.Unknown ? new Refusal(ProblemCode.CardUnknown, "No such card.").ToResult() : TypedResults.NoContent();
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> UnblockCardAsync(string cardNumber, CardChangeRequest? request, CardRegistry cards, HttpContext context, CancellationToken ct)
    {
        if (!CardId.TryParse(cardNumber, out var cardId))
        {
            return new Refusal(ProblemCode.CardUnknown, "No such card.").ToResult();
        }

        context.AuditTarget(cardId.Masked);
        if (!CardRegistry.TryReadReason(request?.Reason, out var reason))
        {
            return ReasonRefusal();
        }

        context.AuditReason(reason);
        return await cards.UnblockAsync(cardId, ct) switch
        {
            CardChange.Done => TypedResults.NoContent(),
            CardChange.Refused => new Refusal(ProblemCode.CardNotBlocked, "The card is not blocked.").ToResult(),
            CardChange.Replaced => new Refusal(ProblemCode.CardReplaced, "The card was replaced: it stays blocked, its value went to its replacement.").ToResult(),
            _ => new Refusal(ProblemCode.CardUnknown, "No such card.").ToResult(),
        };
    }

    private static ProblemHttpResult ReasonRefusal() =>
        new Refusal(ProblemCode.RequestMalformed, $"reason is 1 to {CardRegistry.ReasonLengthMax} characters, without control characters.").ToResult();

    private static async Task<Results<Ok<StoreKeys>, ProblemHttpResult>> ListStoreKeysAsync(string storeId, StoreRegistry stores, HttpContext context, CancellationToken ct)
    {
        context.AuditTarget(storeId);
        return await stores.ListKeysAsync(storeId, ct) is { } keys
            ? TypedResults.Ok(keys)
            : new Refusal(ProblemCode.StoreNotFound, $"No store '{storeId}'.").ToResult();
    }

    private static async Task<Results<Ok<StoreKeys>, ProblemHttpResult>> RetireStoreKeyAsync(string storeId, string kid, KeyRetirementRequest? request, StoreRegistry stores, HttpContext context, CancellationToken ct)
    {
        if (storeId.Length > KeyPathPartLengthMax || kid.Length > KeyPathPartLengthMax)
        {
            return new Refusal(ProblemCode.StoreKeyNotFound, "No such store key.").ToResult();
        }

        context.AuditTarget($"{storeId}/{kid}");
        if (request?.Reason is { } given)
        {
            if (!CardRegistry.TryReadReason(given, out var reason))
            {
                return ReasonRefusal();
            }

            context.AuditReason(reason);
        }

        return OperatorApi.Answer(await stores.RetireKeyAsync(storeId, kid, ct));
    }

    private static async Task<Ok<KeyList>> ListKeysAsync(OperatorKeyRing keys, CancellationToken ct) =>
        TypedResults.Ok(await keys.ListAsync(ct));

    private static async Task<Results<Ok<OperatorKeyView>, ProblemHttpResult>> ActivateKeyAsync(string kid, OperatorKeyRing keys, HttpContext context, CancellationToken ct)
    {
        if (kid.Length > KeyPathPartLengthMax)
        {
            return new Refusal(ProblemCode.OperatorKeyNotFound, "No such operator key.").ToResult();
        }

        context.AuditTarget(kid);
        return OperatorApi.Answer(await keys.ActivateAsync(kid, ct));
    }

    private static async Task<Results<Ok<OperatorKeyView>, ProblemHttpResult>> RetireKeyAsync(string kid, OperatorKeyRing keys, HttpContext context, CancellationToken ct)
    {
        if (kid.Length > KeyPathPartLengthMax)
        {
            return new Refusal(ProblemCode.OperatorKeyNotFound, "No such operator key.").ToResult();
        }

        context.AuditTarget(kid);
        return OperatorApi.Answer(await keys.RetireAsync(kid, ct));
    }

    private static async Task<Ok<IReadOnlyList<RegisteredStore>>> ListStoresAsync(StoreRegistry stores, CancellationToken ct) =>
        TypedResults.Ok(await stores.ListAsync(ct));

    private static async Task<Results<Ok<IReadOnlyList<AuditEvent>>, ProblemHttpResult>> ReadAuditAsync(int? limit, AuditTrail audit, CancellationToken ct) =>
        limit is < 1 or > AuditTrail.ReadMax
            ? new Refusal(ProblemCode.RequestMalformed, $"limit is 1 to {AuditTrail.ReadMax}.").ToResult()
            : TypedResults.Ok(await audit.ReadAsync(limit ?? 100, ct));

    private static async Task<Results<Ok<SettlementView>, ProblemHttpResult>> ReturnSettlementAsync(Guid id, SettlementService service, HttpContext context, CancellationToken ct)
    {
        context.AuditTarget(id.ToString());
        return OperatorApi.Answer(await service.ResolveDisputeAsync(id, DisputeResolution.ReturnToCard, ct));
    }

    private static async Task<Ok<ExaminationReport>> ExamineAsync(Examination examination, CancellationToken ct) =>
        TypedResults.Ok(await examination.RunAsync(null, ct));

    private static async Task<Ok<IReadOnlyList<PayoutView>>> ListPayoutsAsync(Payouts payouts, CancellationToken ct) =>
        TypedResults.Ok(await payouts.ListDueAsync(ct));

    private static async Task<ContentHttpResult> ExportPayoutsAsync(Payouts payouts, CancellationToken ct) =>
        TypedResults.Text(await payouts.ExportDueAsync(ct), "text/csv; charset=utf-8");

    private static async Task<Results<Ok<PayoutView>, ProblemHttpResult>> MarkPayoutPaidAsync(Guid id, Payouts payouts, HttpContext context, CancellationToken ct)
    {
        context.AuditTarget(id.ToString());
        return OperatorApi.Answer(await payouts.MarkPaidAsync(id, ct));
    }

    private static async Task<Results<Ok<PayoutView>, ProblemHttpResult>> MarkPayoutReturnedAsync(Guid id, Payouts payouts, HttpContext context, CancellationToken ct)
    {
        context.AuditTarget(id.ToString());
        return OperatorApi.Answer(await payouts.MarkReturnedAsync(id, ct));
    }

    private static async Task<Results<Ok<SettlementView>, ProblemHttpResult>> RetellSettlementAsync(Guid id, SettlementService service, HttpContext context, CancellationToken ct)
    {
        context.AuditTarget(id.ToString());
        return OperatorApi.Answer(await service.ResolveDisputeAsync(id, DisputeResolution.TellStoreAgain, ct));
    }
}

/// <summary>
/// The only way to add an admin endpoint: a command (POST, administrators) or a query (GET,
/// auditors and administrators), each on the admin listener only, with its authorization
/// policy and the name it is audited under. One line per endpoint, nothing to forget.
/// </summary>
internal sealed class AdminEndpoints(RouteGroupBuilder group)
{
    /// <summary>An action that changes something: POST, an administrator's token.</summary>
    /// <param name="pattern">The route below /v1/admin.</param>
    /// <param name="action">What the audit trail calls it, e.g. <c>card.block</c>.</param>
    /// <param name="handler">The minimal API handler.</param>
    public RouteHandlerBuilder Command(string pattern, string action, Delegate handler) =>
        Declare(group.MapPost(pattern, handler), action, AdminAccess.AdministratorPolicy);

    /// <summary>A read: GET, an auditor's or an administrator's token.</summary>
    /// <param name="pattern">The route below /v1/admin.</param>
    /// <param name="action">What the audit trail calls it, e.g. <c>audit.read</c>.</param>
    /// <param name="handler">The minimal API handler.</param>
    public RouteHandlerBuilder Query(string pattern, string action, Delegate handler) =>
        Declare(group.MapGet(pattern, handler), action, AdminAccess.AuditorPolicy);

    private static RouteHandlerBuilder Declare(RouteHandlerBuilder endpoint, string action, string policy) => endpoint
        .WithMetadata(AdminSurface.Instance, new AdminAction(action))
        .RequireAuthorization(policy)
        .AddEndpointFilter(AdminAudit.RecordRefusalAsync)
        .Refuses(ProblemCode.AdminUnauthorized, ProblemCode.AdminForbidden);
}

/// <summary>The body of a card's block (optional) or unblock: why, for the audit trail.</summary>
/// <param name="Reason">1 to 200 characters; required to unblock.</param>
internal sealed record CardChangeRequest(string? Reason = null);

/// <summary>The body of a card's registration: a new holder's name and contact, or an existing holder's id.</summary>
/// <param name="Name">1 to 100 characters, no control characters.</param>
/// <param name="Contact">An e-mail address, or a phone number as + and 7 to 15 digits.</param>
/// <param name="HolderId">An existing holder's id, alone: the card is another of theirs.</param>
internal sealed record HolderRequest(string? Name = null, string? Contact = null, string? HolderId = null);
/// <summary>The body of a store key's retirement (optional): why, for the audit trail.</summary>
/// <param name="Reason">1 to 200 characters.</param>
internal sealed record KeyRetirementRequest(string? Reason = null);

/// <summary>Endpoint metadata: the name of an admin action in the audit trail.</summary>
internal sealed record AdminAction(string Name);
