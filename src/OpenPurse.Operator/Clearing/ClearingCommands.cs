using System.CommandLine;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using OpenPurse.CommandLine;
using OpenPurse.Hosting;
using OpenPurse.Operator.Registry;
using OpenPurse.Protocol.Messages;
using Spectre.Console;

namespace OpenPurse.Operator.Clearing;

/// <summary>
/// <c>openpurse-operator clearing …</c>: the station's clearing commands (docs/operations.md,
/// "Clearing"), each the admin API's clearing endpoint of the same name, on the node's own
/// configuration, audited as the station's OS user with the API's action name.
/// </summary>
/// <remarks>
/// Exit codes: 0 done; 1 refused (no such store or payout, a run earlier than the last, a payout
/// not due, a file that exists); 2 bad usage: a date, fee, IBAN or name that is none, or a
/// configuration the node cannot work with.
/// </remarks>
internal static class ClearingCommands
{
    private const string ConfigurationExit = "2 bad usage (a date, fee, IBAN or name that is none), or a configuration it cannot work with";

    public static Command Build()
    {
        return new Command("clearing", "What the operator owes the stores: statements, fees, bank accounts, clearing runs and the stores' payouts.")
        {
            Statement(), Summary(), Fee(), Bank(), Run(), Payouts(), Export(), Paid(),
        };
    }

    private static Command Statement()
    {
        var store = new Argument<string>("store") { Description = "The store's id." };
        var (from, to) = Period();
        var csv = new Option<string>("--csv") { Description = "Write the statement as CSV into this new file." };
        var json = Json();
        var command = new Command("statement", "A store's statement for a period: its sales less refunds less fees, line by line and per currency.") { store, from, to, csv, json }
            .WithConfigurationOverrides()
            .WithExitCodes("0 written", "1 no such store, or the CSV file exists", ConfigurationExit);
        command.SetAction(parse => OperatorCommandLine.Configured(parse, options =>
        {
            var (output, error) = (parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error);
            var period = ClearingPeriod.TryRead(parse.GetValue(from), parse.GetValue(to));
            if (period.Refusal is { } bad)
            {
                return Task.FromResult(Refused(error, bad, parse.GetValue(json), output));
            }

            var path = parse.GetValue(csv);
            if (path is not null && File.Exists(path))
            {
                error.WriteLine($"openpurse-operator: {path} exists; a statement is written into a new file.");
                return Task.FromResult(StationCommands.ExitFailed);
            }

            return StationCommands.WithStationAsync(options, async services =>
            {
                var storeId = parse.GetValue(store)!;
                var statement = await services.GetRequiredService<ClearingService>().StatementAsync(storeId, period.Value, CancellationToken.None).ConfigureAwait(false);
                await AuditAsync(services, "clearing.statement", ClearingService.IsStoreId(storeId) ? storeId : "(not a store id)", statement.Refusal).ConfigureAwait(false);
                if (statement.Refusal is { } refusal)
                {
                    return Refused(error, refusal, parse.GetValue(json), output);
                }

                var view = statement.Value!;
                if (path is not null)
                {
                    await File.WriteAllTextAsync(path, ClearingService.ToCsv(view)).ConfigureAwait(false);
                    output.WriteLine($"Wrote the statement of store '{view.StoreId}' from {view.From} to {view.To} ({view.Lines.Count} lines) into {path}.");
                    return StationCommands.ExitOk;
                }

                if (parse.GetValue(json))
                {
                    output.WriteLine(JsonSerializer.Serialize(view, ProtocolJson.Options));
                    return StationCommands.ExitOk;
                }

                var console = StationCommands.Console(output);
                console.WriteLine($"Store '{view.StoreId}' ({view.Name}){(view.MallId is { } mall ? $" in mall '{mall}'" : "")}, from {view.From} to {view.To} (UTC, {view.To} not included).");
                if (view.Members.Count > 0)
                {
                    console.WriteLine($"Its members, each with a statement of its own: {string.Join(", ", view.Members)}.");
                }

                var lines = new Table().Border(TableBorder.Simple).AddColumns(
                    new TableColumn("Kind").NoWrap(), new TableColumn("Id").NoWrap(), new TableColumn("Order").NoWrap(), new TableColumn("Time").NoWrap(),
                    new TableColumn("Amount").RightAligned().NoWrap(), new TableColumn("Fee").RightAligned().NoWrap(), new TableColumn("Run").NoWrap());
                foreach (var line in view.Lines)
                {
                    lines.AddRow(new Text(line.Kind), new Text(line.Id), new Text(line.OrderNo), new Text(line.At),
                        new Text(Ledger.FormatAmount(line.Kind == "refund" ? -line.AmountMinor : line.AmountMinor, line.Currency)), new Text(Ledger.FormatAmount(line.FeeMinor, line.Currency)), new Text(line.RunId ?? "not cleared"));
                }

                console.Write(lines);
                console.Write(TotalsTable(view.Totals));
                return StationCommands.ExitOk;
            });
        }));
        return command;
    }

    private static Command Summary()
    {
        var (from, to) = Period();
        var json = Json();
        var command = new Command("summary", "What the operator owes every store for a period, with the cash-outs' and the store payouts' paid and due.") { from, to, json }
            .WithConfigurationOverrides()
            .WithExitCodes("0 written", ConfigurationExit);
        command.SetAction(parse => OperatorCommandLine.Configured(parse, options =>
        {
            var (output, error) = (parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error);
            var period = ClearingPeriod.TryRead(parse.GetValue(from), parse.GetValue(to));
            if (period.Refusal is { } bad)
            {
                return Task.FromResult(Refused(error, bad, parse.GetValue(json), output));
            }

            return StationCommands.WithStationAsync(options, async services =>
            {
                var summary = await services.GetRequiredService<ClearingService>().SummaryAsync(period.Value, CancellationToken.None).ConfigureAwait(false);
                await AuditAsync(services, "clearing.summary", $"{summary.From}..{summary.To}", null).ConfigureAwait(false);
                if (parse.GetValue(json))
                {
                    output.WriteLine(JsonSerializer.Serialize(summary, ProtocolJson.Options));
                    return StationCommands.ExitOk;
                }

                var console = StationCommands.Console(output);
                console.WriteLine($"All stores, from {summary.From} to {summary.To} (UTC, {summary.To} not included).");
                var stores = new Table().Border(TableBorder.Simple).AddColumns(
                    new TableColumn("Store").NoWrap(), new TableColumn("Mall").NoWrap(), new TableColumn("Sales").RightAligned().NoWrap(), new TableColumn("Refunds").RightAligned().NoWrap(),
                    new TableColumn("Fees").RightAligned().NoWrap(), new TableColumn("Owed").RightAligned().NoWrap());
                foreach (var store in summary.Stores)
                {
                    foreach (var total in store.Totals)
                    {
                        stores.AddRow(new Text(store.StoreId), new Text(store.MallId ?? "–"), new Text(Ledger.FormatAmount(total.Sales, total.Currency)), new Text(Ledger.FormatAmount(total.Refunds, total.Currency)),
                            new Text(Ledger.FormatAmount(total.Fees, total.Currency)), new Text(Ledger.FormatAmount(total.Owed, total.Currency)));
                    }
                }

                console.Write(stores);
                console.Write(TotalsTable(summary.Totals));
                foreach (var (title, payouts) in new[] { ("Cash-outs", summary.CashOuts), ("Store payouts", summary.StorePayouts) })
                {
                    var table = new Table().Border(TableBorder.Simple).Title(title).AddColumns(
                        new TableColumn("Currency").NoWrap(), new TableColumn("Paid").RightAligned().NoWrap(), new TableColumn("Paid sum").RightAligned().NoWrap(),
                        new TableColumn("Due").RightAligned().NoWrap(), new TableColumn("Due sum").RightAligned().NoWrap());
                    foreach (var p in payouts)
                    {
                        table.AddRow(new Text(p.Currency), new Text($"{p.PaidCount}"), new Text(Ledger.FormatAmount(p.PaidMinor, p.Currency)), new Text($"{p.DueCount}"), new Text(Ledger.FormatAmount(p.DueMinor, p.Currency)));
                    }

                    console.Write(table);
                }

                return StationCommands.ExitOk;
            });
        }));
        return command;
    }

    private static Command Fee()
    {
        var store = new Argument<string>("store") { Description = "The store's id." };
        var basisPoints = new Option<long>("--basis-points") { Description = "Basis points of each sale, 0 to 10000 (250 = 2.5 %), rounded half up to a minor unit.", Required = true };
        var fixedMinor = new Option<long>("--fixed") { Description = "Minor units per sale, of the sale's currency (30 = 0.30 EUR); default 0." };
        var json = Json();
        var command = new Command("fee", "Set a store's fee: a share of each sale and/or a fixed part per sale, never more than the sale.") { store, basisPoints, fixedMinor, json }
            .WithConfigurationOverrides()
            .WithExitCodes("0 set", "1 no such store", ConfigurationExit);
        command.SetAction(parse => OperatorCommandLine.Configured(parse, options => StationCommands.WithStationAsync(options, async services =>
        {
            var storeId = parse.GetValue(store)!;
            var set = await services.GetRequiredService<ClearingService>().SetFeeAsync(storeId, parse.GetValue(basisPoints), parse.GetValue(fixedMinor), CancellationToken.None).ConfigureAwait(false);
            await AuditAsync(services, "clearing.fee", ClearingService.IsStoreId(storeId) ? storeId : "(not a store id)", set.Refusal).ConfigureAwait(false);
            return Told(parse, parse.GetValue(json), set, terms => $"Store '{terms.StoreId}' pays {terms.FeeBasisPoints} basis points and {terms.FeeFixedMinor} minor units per sale.");
        })));
        return command;
    }

    private static Command Bank()
    {
        var store = new Argument<string>("store") { Description = "The store's id." };
        var iban = new Option<string>("--iban") { Description = "The IBAN its payouts go to (spaces allowed).", Required = true };
        var holder = new Option<string>("--holder") { Description = "The account holder's name (up to 70 characters).", Required = true };
        var json = Json();
        var command = new Command("bank", "Set the bank account a store's payouts go to.") { store, iban, holder, json }
            .WithConfigurationOverrides()
            .WithExitCodes("0 set", "1 no such store", ConfigurationExit);
        command.SetAction(parse => OperatorCommandLine.Configured(parse, options => StationCommands.WithStationAsync(options, async services =>
        {
            var storeId = parse.GetValue(store)!;
            var set = await services.GetRequiredService<ClearingService>().SetBankAsync(storeId, parse.GetValue(iban), parse.GetValue(holder), CancellationToken.None).ConfigureAwait(false);
            await AuditAsync(services, "clearing.bank", ClearingService.IsStoreId(storeId) ? storeId : "(not a store id)", set.Refusal).ConfigureAwait(false);
            return Told(parse, parse.GetValue(json), set, terms => $"Store '{terms.StoreId}' is paid to {terms.Iban} ({terms.AccountHolder}).");
        })));
        return command;
    }

    private static Command Run()
    {
        var to = new Option<string>("--to") { Description = "The run's end, yyyy-MM-dd (UTC): it clears what completed before 00:00 of that day.", Required = true };
        var json = Json();
        var command = new Command("run", "Clear, for every store, every sale and refund before the end that no run cleared yet; the same end again answers the same run.") { to, json }
            .WithConfigurationOverrides()
            .WithExitCodes("0 cleared (or cleared before, the same run)", "1 refused: the end is before the last run's", ConfigurationExit);
        command.SetAction(parse => OperatorCommandLine.Configured(parse, options => StationCommands.WithStationAsync(options, async services =>
        {
            var end = parse.GetValue(to);
            var run = await services.GetRequiredService<ClearingService>().RunAsync(end, CancellationToken.None).ConfigureAwait(false);
            await AuditAsync(services, "clearing.run", ClearingPeriod.TryReadDay(end, out var day) ? "to " + ClearingPeriod.Text(day) : "(not a day)", run.Refusal).ConfigureAwait(false);
            if (run.Refusal is not null || parse.GetValue(json))
            {
                return Told(parse, parse.GetValue(json), run, _ => "");
            }

            var view = run.Value!;
            var console = StationCommands.Console(parse.InvocationConfiguration.Output);
            console.WriteLine($"Clearing run {view.RunId} to {view.To} (started {view.CreatedAt}, completed {view.CompletedAt}).");
            var table = new Table().Border(TableBorder.Simple).AddColumns(
                new TableColumn("Store").NoWrap(), new TableColumn("Sales").RightAligned().NoWrap(), new TableColumn("Refunds").RightAligned().NoWrap(),
                new TableColumn("Fee").RightAligned().NoWrap(), new TableColumn("Payout").RightAligned().NoWrap(), new TableColumn("State").NoWrap());
            foreach (var p in view.Payouts)
            {
                table.AddRow(new Text(p.StoreId), new Text(Ledger.FormatAmount(p.Sales, p.Currency)), new Text(Ledger.FormatAmount(p.Refunds, p.Currency)),
                    new Text(Ledger.FormatAmount(p.Fee, p.Currency)), new Text(Ledger.FormatAmount(p.Net, p.Currency)), new Text(p.State));
            }

            console.Write(table);
            console.Write(TotalsTable(view.Totals));
            return StationCommands.ExitOk;
        })));
        return command;
    }

    private static Command Payouts()
    {
        var json = Json();
        var command = new Command("payouts", "The store payouts due, IBANs masked.") { json }
            .WithConfigurationOverrides()
            .WithExitCodes("0 listed", ConfigurationExit);
        command.SetAction(parse => OperatorCommandLine.Configured(parse, options => StationCommands.WithStationAsync(options, async services =>
        {
            var due = await services.GetRequiredService<ClearingService>().ListDueAsync(CancellationToken.None).ConfigureAwait(false);
            await AuditAsync(services, "clearing.payout.list", null, null).ConfigureAwait(false);
            var output = parse.InvocationConfiguration.Output;
            if (parse.GetValue(json))
            {
                output.WriteLine(JsonSerializer.Serialize(due, ProtocolJson.Options));
                return StationCommands.ExitOk;
            }

            var table = new Table().Border(TableBorder.Simple).AddColumns(
                new TableColumn("Run").NoWrap(), new TableColumn("Store").NoWrap(), new TableColumn("Amount").RightAligned().NoWrap(),
                new TableColumn("IBAN").NoWrap(), new TableColumn("Holder").NoWrap(), new TableColumn("Due since").NoWrap());
            foreach (var p in due)
            {
                table.AddRow(new Text(p.RunId), new Text(p.StoreId), new Text(Ledger.FormatAmount(p.AmountMinor, p.Currency)),
                    new Text(p.Iban ?? "no bank account"), new Text(p.AccountHolder ?? "–"), new Text(p.DueSince));
            }

            var console = StationCommands.Console(output);
            console.Write(table);
            console.WriteLine(due.Count == 0 ? "No store payout is due." : $"{due.Count} store payout(s) due; below zero, the store owes it.");
            return StationCommands.ExitOk;
        })));
        return command;
    }

    private static Command Export()
    {
        var command = new Command("export", "The store payouts due as CSV for the bank, with the full IBANs, on standard output.")
            .WithConfigurationOverrides()
            .WithExitCodes("0 written", ConfigurationExit);
        command.SetAction(parse => OperatorCommandLine.Configured(parse, options => StationCommands.WithStationAsync(options, async services =>
        {
            var csv = await services.GetRequiredService<ClearingService>().ExportDueAsync(CancellationToken.None).ConfigureAwait(false);
            await AuditAsync(services, "clearing.payout.export", null, null).ConfigureAwait(false);
            await parse.InvocationConfiguration.Output.WriteAsync(csv).ConfigureAwait(false);
            return StationCommands.ExitOk;
        })));
        return command;
    }

    private static Command Paid()
    {
        var run = new Argument<string>("run") { Description = "The run's id, as `clearing run` and `clearing payouts` show it." };
        var store = new Argument<string>("store") { Description = "The store's id." };
        var json = Json();
        var command = new Command("paid", "The bank paid a store its payout of a run (or the store paid what it owed): once.") { run, store, json }
            .WithConfigurationOverrides()
            .WithExitCodes("0 marked paid", "1 no such payout, or it is not due", ConfigurationExit);
        command.SetAction(parse => OperatorCommandLine.Configured(parse, options =>
        {
            if (!Guid.TryParseExact(parse.GetValue(run), "D", out var runId))
            {
                parse.InvocationConfiguration.Error.WriteLine("openpurse-operator: that is not a run's id; `clearing payouts` shows them.");
                return Task.FromResult(StationCommands.ExitUsage);
            }

            return StationCommands.WithStationAsync(options, async services =>
            {
                var storeId = parse.GetValue(store)!;
                var paid = await services.GetRequiredService<ClearingService>().MarkPaidAsync(runId, storeId, CancellationToken.None).ConfigureAwait(false);
                await AuditAsync(services, "clearing.payout.paid", $"{runId}/{(ClearingService.IsStoreId(storeId) ? storeId : "(not a store id)")}", paid.Refusal).ConfigureAwait(false);
                return Told(parse, parse.GetValue(json), paid, payouts => string.Join(Environment.NewLine, payouts.Select(p => $"Run {runId}: store '{p.StoreId}' {Ledger.FormatAmount(p.Net, p.Currency)} {p.State}.")));
            });
        }));
        return command;
    }

    private static (Option<string> From, Option<string> To) Period() =>
        (new Option<string>("--from") { Description = "The first day, yyyy-MM-dd (UTC).", Required = true },
         new Option<string>("--to") { Description = "The day after the last, yyyy-MM-dd (UTC): not included.", Required = true });

    private static Option<bool> Json() => new("--json") { Description = "As JSON, for scripts." };

    private static Table TotalsTable(IReadOnlyList<StatementTotals> totals)
    {
        var table = new Table().Border(TableBorder.Simple).Title("Totals").AddColumns(
            new TableColumn("Currency").NoWrap(), new TableColumn("Sales").RightAligned().NoWrap(), new TableColumn("Refunds").RightAligned().NoWrap(),
            new TableColumn("Fees").RightAligned().NoWrap(), new TableColumn("Owed").RightAligned().NoWrap());
        foreach (var t in totals)
        {
            table.AddRow(new Text(t.Currency), new Text($"{Ledger.FormatUnits(t.Sales, t.Currency)} ({t.SalesCount})"), new Text($"{Ledger.FormatUnits(t.Refunds, t.Currency)} ({t.RefundsCount})"),
                new Text(Ledger.FormatUnits(t.Fees, t.Currency)), new Text(Ledger.FormatUnits(t.Owed, t.Currency)));
        }

        return table;
    }

    // The outcome of a command: its value (JSON, or a sentence), or its refusal with its code.
    private static int Told<T>(ParseResult parse, bool json, Result<T> result, Func<T, string> sentence)
    {
        var (output, error) = (parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error);
        if (result.Refusal is { } refusal)
        {
            return Refused(error, refusal, json, output);
        }

        output.WriteLine(json ? JsonSerializer.Serialize(result.Value, ProtocolJson.Options) : sentence(result.Value!));
        return StationCommands.ExitOk;
    }

    // A refusal: one line on stderr with its code (and, for scripts, its code as JSON); bad input is bad usage.
    private static int Refused(TextWriter error, Refusal refusal, bool json, TextWriter output)
    {
        error.WriteLine($"openpurse-operator: {refusal.Detail} ({refusal.Code})");
        if (json)
        {
            output.WriteLine(JsonSerializer.Serialize(new { code = refusal.Code, detail = refusal.Detail }, ProtocolJson.Options));
        }

        return refusal.Problem.Status is StatusCodes.Status400BadRequest or StatusCodes.Status422UnprocessableEntity ? StationCommands.ExitUsage : StationCommands.ExitFailed;
    }

    private static Task AuditAsync(IServiceProvider services, string action, string? target, Refusal? refusal) =>
        StationCommands.AuditAsync(services, action, target, refusal?.Problem.Status ?? StatusCodes.Status200OK, refusal?.Code);
}
