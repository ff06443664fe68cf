using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using OpenPurse.Hosting;
using OpenPurse.Operator.Api;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Operator.Clearing;

/// <summary>
/// The admin API's clearing endpoints, under /v1/admin/clearing (docs/operations.md, "Clearing"):
/// statements and the summary for auditors; fees, bank accounts, runs, the bank's export and
/// payouts marked paid for administrators. Each is audited with its target.
/// </summary>
internal static class ClearingApi
{
    public static void Map(AdminEndpoints admin)
    {
        ArgumentNullException.ThrowIfNull(admin);
        admin.Query("/clearing/statements/{storeId}", "clearing.statement", StatementAsync)
            .WithName("ClearingStatement").WithSummary("A store's statement for a period (from, to: UTC days, to not included): its sales less refunds less fees, as JSON or CSV (format=csv).")
            .Produces<string>(StatusCodes.Status200OK, "text/csv")
            .Refuses(ProblemCode.ClearingPeriodInvalid, ProblemCode.StoreNotFound, ProblemCode.RequestMalformed, ProblemCode.OperatorBusy);
        admin.Query("/clearing/summary", "clearing.summary", SummaryAsync)
            .WithName("ClearingSummary").WithSummary("What the operator owes every store for a period, with the cash-outs' and the store payouts' paid and due.")
            .Refuses(ProblemCode.ClearingPeriodInvalid, ProblemCode.OperatorBusy);
        admin.Command("/clearing/stores/{storeId}/fee", "clearing.fee", SetFeeAsync)
            .WithName("SetClearingFee").WithSummary("Sets a store's fee: basis points of each sale and fixed minor units per sale (never more than the sale).")
            .Refuses(ProblemCode.ClearingFeeInvalid, ProblemCode.StoreNotFound, ProblemCode.OperatorBusy);
        admin.Command("/clearing/stores/{storeId}/bank", "clearing.bank", SetBankAsync)
            .WithName("SetClearingBank").WithSummary("Sets the bank account (IBAN and holder) a store's payouts go to.")
            .Refuses(ProblemCode.IbanInvalid, ProblemCode.ClearingHolderInvalid, ProblemCode.StoreNotFound, ProblemCode.OperatorBusy);
        admin.Command("/clearing/runs", "clearing.run", RunAsync)
            .WithName("RunClearing").WithSummary("Clears, for every store, what completed before the end and no run cleared yet; the same end again answers the same run.")
            .Refuses(ProblemCode.ClearingPeriodInvalid, ProblemCode.ClearingRunEarlier, ProblemCode.OperatorBusy);
        admin.Query("/clearing/payouts", "clearing.payout.list", ListPayoutsAsync)
            .WithName("ListStorePayouts").WithSummary("The store payouts due, IBANs masked.")
            .Refuses(ProblemCode.OperatorBusy);
        admin.Command("/clearing/payouts/export", "clearing.payout.export", ExportPayoutsAsync)
            .WithName("ExportStorePayouts").WithSummary("The store payouts due as CSV for the bank, with the full IBANs.")
            .Produces<string>(StatusCodes.Status200OK, "text/csv")
            .Refuses(ProblemCode.OperatorBusy);
        admin.Command("/clearing/runs/{runId:guid}/stores/{storeId}/paid", "clearing.payout.paid", MarkPaidAsync)
            .WithName("MarkStorePayoutPaid").WithSummary("The bank paid a store its payout of a run (or the store paid what it owed): once.")
            .Refuses(ProblemCode.ClearingPayoutNotFound, ProblemCode.ClearingPayoutNotDue, ProblemCode.OperatorBusy);
    }

    private static async Task<Results<Ok<StoreStatementView>, ContentHttpResult, ProblemHttpResult>> StatementAsync(
        string storeId, string? from, string? to, string? format, ClearingService clearing, HttpContext context, CancellationToken ct)
    {
        context.AuditTarget(ClearingService.IsStoreId(storeId) ? storeId : "(not a store id)");
        if (format is not (null or "json" or "csv"))
        {
            return new Refusal(ProblemCode.RequestMalformed, "format is json or csv.").ToResult();
        }

        var period = ClearingPeriod.TryRead(from, to);
        if (period.Refusal is { } refused)
        {
            return refused.ToResult();
        }

        var statement = await clearing.StatementAsync(storeId, period.Value, ct);
        if (statement.Refusal is { } unknown)
        {
            return unknown.ToResult();
        }

        return format == "csv" ? TypedResults.Text(ClearingService.ToCsv(statement.Value!), "text/csv; charset=utf-8") : TypedResults.Ok(statement.Value!);
    }

    private static async Task<Results<Ok<ClearingSummary>, ProblemHttpResult>> SummaryAsync(string? from, string? to, ClearingService clearing, CancellationToken ct)
    {
        var period = ClearingPeriod.TryRead(from, to);
        return period.Refusal is { } refused ? refused.ToResult() : TypedResults.Ok(await clearing.SummaryAsync(period.Value, ct));
    }

    private static async Task<Results<Ok<StoreClearingTerms>, ProblemHttpResult>> SetFeeAsync(string storeId, StoreFeeRequest request, ClearingService clearing, HttpContext context, CancellationToken ct)
    {
        context.AuditTarget(ClearingService.IsStoreId(storeId) ? storeId : "(not a store id)");
        return OperatorApi.Answer(await clearing.SetFeeAsync(storeId, request.BasisPoints, request.FixedMinor, ct));
    }

    private static async Task<Results<Ok<StoreClearingTerms>, ProblemHttpResult>> SetBankAsync(string storeId, StoreBankRequest request, ClearingService clearing, HttpContext context, CancellationToken ct)
    {
        context.AuditTarget(ClearingService.IsStoreId(storeId) ? storeId : "(not a store id)");
        return OperatorApi.Answer(await clearing.SetBankAsync(storeId, request.Iban, request.Holder, ct));
    }

    private static async Task<Results<Ok<ClearingRunView>, ProblemHttpResult>> RunAsync(ClearingRunRequest request, ClearingService clearing, HttpContext context, CancellationToken ct)
    {
        context.AuditTarget(ClearingPeriod.TryReadDay(request.To, out var end) ? "to " + ClearingPeriod.Text(end) : "(not a day)");
        return OperatorApi.Answer(await clearing.RunAsync(request.To, ct));
    }

    private static async Task<Ok<IReadOnlyList<StorePayoutView>>> ListPayoutsAsync(ClearingService clearing, CancellationToken ct) =>
        TypedResults.Ok(await clearing.ListDueAsync(ct));

    private static async Task<ContentHttpResult> ExportPayoutsAsync(ClearingService clearing, CancellationToken ct) =>
        TypedResults.Text(await clearing.ExportDueAsync(ct), "text/csv; charset=utf-8");

    private static async Task<Results<Ok<IReadOnlyList<RunPayout>>, ProblemHttpResult>> MarkPaidAsync(Guid runId, string storeId, ClearingService clearing, HttpContext context, CancellationToken ct)
    {
        context.AuditTarget($"{runId}/{(ClearingService.IsStoreId(storeId) ? storeId : "(not a store id)")}");
        return OperatorApi.Answer(await clearing.MarkPaidAsync(runId, storeId, ct));
    }
}
