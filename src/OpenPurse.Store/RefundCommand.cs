using System.Globalization;
using OpenPurse.Hosting;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Transport;
using OpenPurse.Storage;
using OpenPurse.Store.Catalog;
using OpenPurse.Store.Keys;
using OpenPurse.Store.Operator;
using OpenPurse.Store.Orders;

namespace OpenPurse.Store;

/// <summary>
/// <c>openpurse-store refund &lt;order-no&gt; [--amount 5.00] [--reason …]</c>: the store owner gives
/// back (part of) a paid order, on the store's own data directory and keys, whether or not the
/// store is serving; the same checks and records as the admin API (<see cref="RefundDesk"/>).
/// <c>openpurse-store refunds &lt;order-no&gt;</c> lists an order's refunds, as the admin API's
/// <c>GET /v1/admin/orders/{orderNo}/refunds</c> does.
/// </summary>
internal static class RefundCommand
{
    public static async Task<int> RunAsync(StoreOptions options, RefundOrder order, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        await using var provider = Open(options);
        var database = provider.GetRequiredService<OrderDatabase>();
        var refunded = await provider.GetRequiredService<RefundDesk>().RefundAsync(order, cancellationToken).ConfigureAwait(false);
        if (refunded.Value is not { } refund)
        {
            await error.WriteLineAsync($"openpurse-store: refund refused: {refunded.Refusal!.Code}: {refunded.Refusal.Detail}").ConfigureAwait(false);
            return refunded.Refusal.Code == Protocol.Messages.ProblemCode.RequestMalformed.Code ? CommandLine.CommandLines.ExitUsage : CommandLine.CommandLines.ExitFailed;
        }

        await output.WriteLineAsync($"Refund {refund.RefundId} of order {refund.OrderNo}: {refund.Amount} {refund.State}, to card {refund.CardMasked} at its next sync.").ConfigureAwait(false);
        // The order's refunds, as the store recorded them.
        foreach (var recorded in await database.RefundsOfAsync(refund.OrderNo, cancellationToken).ConfigureAwait(false))
        {
            await output.WriteLineAsync(Line(recorded.RequestedAt, recorded.RefundId, recorded.Amount, recorded.State, recorded.RefusedCode, recorded.Reason)).ConfigureAwait(false);
        }

        await output.WriteLineAsync($"Refunded in all: {refund.RefundedTotal}.").ConfigureAwait(false);
        return CommandLine.CommandLines.ExitOk;
    }

    /// <summary>
    /// <c>openpurse-store refunds &lt;order-no&gt;</c>: the order's refunds, each still open asked
    /// about first (<see cref="RefundDesk.RefundsOfAsync"/>); 1 when the order is unknown or an open
    /// refund could not be asked about (it is listed as last recorded, and why on standard error).
    /// </summary>
    public static async Task<int> ListAsync(StoreOptions options, string orderNo, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        await using var provider = Open(options);
        var listed = await provider.GetRequiredService<RefundDesk>().RefundsOfAsync(orderNo, cancellationToken).ConfigureAwait(false);
        if (listed.Value is not { } refunds)
        {
            await error.WriteLineAsync($"openpurse-store: refunds refused: {listed.Refusal!.Code}: {listed.Refusal.Detail}").ConfigureAwait(false);
            return CommandLine.CommandLines.ExitFailed;
        }

        if (refunds.Refunds.Count == 0)
        {
            await output.WriteLineAsync($"Order {refunds.OrderNo} (paid {refunds.Paid}) has no refunds.").ConfigureAwait(false);
            return CommandLine.CommandLines.ExitOk;
        }

        await output.WriteLineAsync($"Refunds of order {refunds.OrderNo} (paid {refunds.Paid}):").ConfigureAwait(false);
        foreach (var refund in refunds.Refunds)
        {
            var line = Line(refund.RequestedAt, refund.RefundId, refund.Amount, refund.State, refund.RefusedCode, refund.Reason);
            await output.WriteLineAsync(refund.NotRefreshed is null ? line : line + "  (as last recorded: the operator was not asked)").ConfigureAwait(false);
        }

        await output.WriteLineAsync($"Refunded: {refunds.Refunded}, of which {refunds.Credited} taken by the card.").ConfigureAwait(false);
        var unasked = refunds.Refunds.Where(r => r.NotRefreshed is not null).ToList();
        foreach (var refund in unasked)
        {
            await error.WriteLineAsync($"openpurse-store: refund {refund.RefundId} not asked about: {refund.NotRefreshed!.Code}: {refund.NotRefreshed.Detail}").ConfigureAwait(false);
        }

        return unasked.Count == 0 ? CommandLine.CommandLines.ExitOk : CommandLine.CommandLines.ExitFailed;
    }

    // One refund, one line: when, which, how much, its state (and a refusal's code), why.
    private static string Line(DateTimeOffset requestedAt, Guid refundId, Money amount, string state, string? refusedCode, string? reason) =>
        string.Create(CultureInfo.InvariantCulture,
            $"  {requestedAt:yyyy-MM-dd HH:mm:ss}Z  {refundId}  {amount,14}  {state}{(refusedCode is { } code ? $" ({code})" : "")}{(reason is { } why ? $"  {why}" : "")}");

    // The store's database and what a refund needs of it, on the store's own data directory and keys.
    private static ServiceProvider Open(StoreOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(options.DataDirectory, nameof(options));
        var directory = StoreDirectory.Create(options);
        if (!File.Exists(Path.Combine(options.DataDirectory, OrderDatabase.FileName)))
        {
            throw new ArgumentException($"No store database in {options.DataDirectory}: set Store:DataDirectory to the store's.", nameof(options));
        }

        var database = new OrderDatabase(options.DataDirectory);
        database.Initialize();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton(TimeProvider.System);
        var http = services.AddHttpClient(OperatorClient.HttpClientName, client =>
        {
            client.BaseAddress = OperatorClient.BaseAddressFor(options.OperatorUrl);
            client.Timeout = OperatorClient.RequestTimeout;
            client.MaxResponseContentBufferSize = OperatorClient.ResponseLengthMax;
        });
        if (ServerTls.LoadTrustedRoots(options.TrustedRootsPath) is { } trustedRoots)
        {
            http.ConfigurePrimaryHttpMessageHandler(() => TrustedRoots.CreateHandler(trustedRoots));
        }

        services.AddSingleton(database);
        services.AddSingleton(_ => MemberKeys.LoadOrCreate(options.DataDirectory, directory.Members.Select(m => m.StoreId)));
        services.AddSingleton<OperatorClient>();
        services.AddSingleton<OperatorKeys>();
        services.AddSingleton<RefundDesk>();
        return services.BuildServiceProvider();
    }
}
