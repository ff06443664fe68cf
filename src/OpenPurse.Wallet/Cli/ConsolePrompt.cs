using OpenPurse.Protocol.Messages;
using OpenPurse.Wallet.Purchase;
using Spectre.Console;

namespace OpenPurse.Wallet.Cli;

/// <summary>
/// The person at a terminal: the estimate, the bill, then balance and bill side by side and the
/// question; a spinner while the card works. With <c>--yes</c> everything is shown and nothing asked.
/// </summary>
internal sealed class ConsolePrompt(IAnsiConsole console, bool assumeYes) : ITopUpPrompt, IDecreasePrompt
{
    public void Progress(string message) => console.MarkupLine($"[grey]•[/] {Markup.Escape(message)}");

    public void ShowEstimate(EstimateResponse estimate)
    {
        var table = new Table().Title($"Estimate from {Markup.Escape(estimate.StoreId)}").AddColumns(new TableColumn("Article"), new TableColumn("Title"), new TableColumn("Qty").RightAligned(), new TableColumn("Amount").RightAligned());
        foreach (var line in estimate.Lines)
        {
            table.AddRow(new Text(line.Sku), new Text(line.Title), new Text(line.Quantity.ToString(System.Globalization.CultureInfo.InvariantCulture)), new Text(line.Amount.ToString()));
        }

        table.AddRow(new Text(""), new Markup("[bold]Total[/]"), new Text(""), new Markup($"[bold]{Markup.Escape(estimate.Total.ToString())}[/]"));
        console.Write(table);
    }

    public void ShowBill(Bill bill) => console.Write(Render.Bill(bill));

    public ValueTask<bool> ConfirmAsync(PurchaseConfirmation confirmation, CancellationToken cancellationToken) => ValueTask.FromResult(Confirm(confirmation));

    public ValueTask<bool> ConfirmTopUpAsync(TopUpConfirmation confirmation, CancellationToken cancellationToken) => ValueTask.FromResult(ConfirmTopUp(confirmation));

    // The console asks synchronously: the person answers at the terminal the flow runs in.
    private bool Confirm(PurchaseConfirmation confirmation)
    {
        ArgumentNullException.ThrowIfNull(confirmation);
        var bill = confirmation.Bill;
        var side = new Table().Border(TableBorder.Rounded).AddColumns($"Your card {Markup.Escape(confirmation.CardMasked)}", $"Bill {Markup.Escape(bill.OrderNo)}");
        side.AddRow(
            new Markup($"Balance [bold]{Markup.Escape(confirmation.Balance.ToString())}[/]\n[grey]{(confirmation.BalanceSignedByOperator ? "read by the operator, signed (SIG2)" : "read from your card")}[/]"),
            new Markup($"Pay [bold]{Markup.Escape(bill.Amount.ToString())}[/]\n[grey]to {Markup.Escape(bill.StoreId)}, signed by the store (SIG1)[/]"));
        side.AddRow(new Markup($"After: [bold]{Markup.Escape(confirmation.BalanceAfter.ToString())}[/]"), new Text(""));
        console.Write(side);
        if (assumeYes)
        {
            console.MarkupLine("[grey]Approved with --yes.[/]");
            return true;
        }

        if (!console.Profile.Capabilities.Interactive)
        {
            throw new WalletException(WalletErrors.Declined, "The wallet cannot ask you here (the terminal is not interactive); nothing was written to the card. Run it again with --yes to approve the bill shown.");
        }

        return console.Confirm($"Pay [bold]{Markup.Escape(bill.Amount.ToString())}[/] to {Markup.Escape(bill.StoreId)} with card {Markup.Escape(confirmation.CardMasked)}?", defaultValue: false);
    }

    private bool ConfirmTopUp(TopUpConfirmation confirmation)
    {
        ArgumentNullException.ThrowIfNull(confirmation);
        var question = $"Top up {confirmation.Amount}, charged to the credit card ending {confirmation.LastFour}: balance {confirmation.Balance} → {confirmation.BalanceAfter}.";
        if (assumeYes)
        {
            console.MarkupLine($"{Markup.Escape(question)} [grey]Agreed with --yes.[/]");
            return true;
        }

        if (!console.Profile.Capabilities.Interactive)
        {
            console.MarkupLine($"{Markup.Escape(question)} [yellow]The wallet cannot ask you here (the terminal is not interactive): run it again with --yes to agree.[/]");
            return false;
        }

        return console.Confirm($"{Markup.Escape(question)} Add it?", defaultValue: false);
    }

    public bool ConfirmDecrease(DecreaseConfirmation confirmation)
    {
        ArgumentNullException.ThrowIfNull(confirmation);
        var to = confirmation.Purpose == Protocol.Messages.ValueDecreasePurposes.Transfer
            ? $"to card {confirmation.Payee}"
            : $"to the bank account {confirmation.Payee} of {confirmation.AccountHolder}";
        var question = $"Take {confirmation.Amount} off card {confirmation.CardMasked} {to}: balance {confirmation.Balance} → {confirmation.BalanceAfter}.";
        if (assumeYes)
        {
            console.MarkupLine($"{Markup.Escape(question)} [grey]Agreed with --yes.[/]");
            return true;
        }

        if (!console.Profile.Capabilities.Interactive)
        {
            console.MarkupLine($"{Markup.Escape(question)} [yellow]The wallet cannot ask you here (the terminal is not interactive): run it again with --yes to agree.[/]");
            return false;
        }

        return console.Confirm($"{Markup.Escape(question)} Agree?", defaultValue: false);
    }

    public T WhileCardWorks<T>(string message, Func<T> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        if (!console.Profile.Capabilities.Interactive)
        {
            Progress(message);
            return work();
        }

        return console.Status().Spinner(Spinner.Known.Dots).Start(Markup.Escape(message), _ => work());
    }
}
