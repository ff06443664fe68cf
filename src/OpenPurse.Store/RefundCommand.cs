using OpenPurse.Hosting;
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
/// </summary>
internal static class RefundCommand
{
    public static async Task<int> RunAsync(StoreOptions options, RefundOrder order, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
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
        await using var provider = services.BuildServiceProvider();
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
            await output.WriteLineAsync($"  {recorded.RequestedAt:yyyy-MM-dd HH:mm:ss}Z  {recorded.RefundId}  {recorded.Amount,14}  {recorded.State}{(recorded.RefusedCode is { } code ? $" ({code})" : "")}{(recorded.Reason is { } reason ? $"  {reason}" : "")}")
                .ConfigureAwait(false);
        }

        await output.WriteLineAsync($"Refunded in all: {refund.RefundedTotal}.").ConfigureAwait(false);
        return CommandLine.CommandLines.ExitOk;
    }
}
