using System.CommandLine;
using OpenPurse.CommandLine;
using OpenPurse.Hosting;

namespace OpenPurse.Store;

/// <summary>
/// <c>openpurse-store serve</c>: a store (or mall) with the options of the <c>Store</c> section of
/// appsettings.json, overridden by environment variables (<c>Store__MallId</c>) and the command
/// line (<c>--Store:Urls=http://127.0.0.1:5090</c>). <c>openpurse-store registration</c> prints
/// what the operator registers for each member store (JSON, public keys only) and exits. Nothing
/// is read, made or started before the command line parsed.
/// </summary>
internal static class Program
{
    public static Task<int> Main(string[] args) =>
        CommandLines.InvokeAsync(Build(), args, Console.Out, Console.Error, cancelOnInterrupt: false);

    internal static RootCommand Build()
    {
        var serve = ServerCommand.Serve("openpurse-store", "Run the store (or mall) until SIGINT or SIGTERM. Overrides: --Store:Key=value.", overrides => StoreHost.Build(ReadOptions(overrides)));

        var registration = new Command("registration", "Print the store's registration for the operator (JSON, public keys only); makes each member's signing key on first use.")
            .WithConfigurationOverrides()
            .WithExitCodes("0 printed", "2 bad usage or configuration");
        registration.SetAction(parse =>
        {
            try
            {
                parse.InvocationConfiguration.Output.WriteLine(StoreHost.Registrations(ReadOptions(parse.ConfigurationOverrides())));
                return CommandLines.ExitOk;
            }
            catch (Exception e) when (e is FormatException or ArgumentException or InvalidOperationException)
            {
                parse.InvocationConfiguration.Error.WriteLine("openpurse-store: " + e.Message);
                return CommandLines.ExitUsage;
            }
        });

        var orderNo = new Argument<string>("order-no") { Description = "The paid order to refund." };
        var amount = new Option<string?>("--amount") { Description = "What to give back, e.g. 5.00 (in the order's currency); default: all that is left." };
        var reason = new Option<string?>("--reason") { Description = "Why, in a few words (at most 200 characters); recorded by the store and the operator." };
        var refund = new Command("refund", "Refund (part of) a paid order: the operator records the value as owed to the card that paid, which takes it at its next sync.")
        {
            orderNo, amount, reason,
        }.WithConfigurationOverrides()
            .WithExitCodes("0 refunded", "1 refused (the order is not paid, the amount is more than is left, the operator refused or did not answer)", "2 bad usage or configuration");
        refund.SetAction(async (parse, cancellationToken) =>
        {
            try
            {
                return await RefundCommand.RunAsync(ReadOptions(parse.ConfigurationOverrides()), new Orders.RefundOrder(parse.GetValue(orderNo)!, parse.GetValue(amount), parse.GetValue(reason)),
                    parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is FormatException or ArgumentException or InvalidOperationException)
            {
                await parse.InvocationConfiguration.Error.WriteLineAsync("openpurse-store: " + e.Message).ConfigureAwait(false);
                return CommandLines.ExitUsage;
            }
        });

        var refundedOrderNo = new Argument<string>("order-no") { Description = "The order whose refunds to list." };
        var refunds = new Command("refunds", "List an order's refunds, each still open asked about first: owed (the card takes it at its next sync), or credited once the card took it.")
        {
            refundedOrderNo,
        }.WithConfigurationOverrides()
            .WithExitCodes("0 listed", "1 no such order, or an open refund could not be asked about (listed as last recorded; why on stderr)", "2 bad usage or configuration");
        refunds.SetAction(async (parse, cancellationToken) =>
        {
            try
            {
                return await RefundCommand.ListAsync(ReadOptions(parse.ConfigurationOverrides()), parse.GetValue(refundedOrderNo)!,
                    parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is FormatException or ArgumentException or InvalidOperationException)
            {
                await parse.InvocationConfiguration.Error.WriteLineAsync("openpurse-store: " + e.Message).ConfigureAwait(false);
                return CommandLines.ExitUsage;
            }
        });

        return new RootCommand("openpurse-store: an OpenPurse store or mall. `serve` runs it; `registration` prints what the operator registers; `refund` gives back a payment; `refunds` lists an order's.")
        {
            serve, registration, refund, refunds,
        }.WithExitCodes("0 ok", "1 the operation failed", "2 bad usage or configuration");
    }

    private static StoreOptions ReadOptions(string[] overrides)
    {
        return StoreConfiguration.Read(ServerCommand.Configuration(overrides).GetSection(StoreConfiguration.SectionName));
    }
}
