using System.Globalization;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Wallet.Purchase;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace OpenPurse.Wallet.Cli;

/// <summary>
/// How the wallet draws its messages. Text from other parties goes in as <see cref="Text"/>, never
/// as markup; card numbers only masked.
/// </summary>
internal static class Render
{
    /// <summary>The most characters of downloaded content shown in the terminal; the rest is cut.</summary>
    public const int ContentCharsShownMax = 4000;

    public static IRenderable Bill(Bill bill)
    {
        var table = new Table().Title($"Bill {Markup.Escape(bill.OrderNo)}").AddColumns(new TableColumn("Article"), new TableColumn("Title"), new TableColumn("Qty").RightAligned(), new TableColumn("Amount").RightAligned());
        foreach (var item in bill.Items)
        {
            table.AddRow(new Text(item.Sku), new Text(item.Title), new Text(item.Quantity.ToString(CultureInfo.InvariantCulture)), new Text(item.Amount.ToString()));
        }

        table.AddRow(new Text(""), new Markup("[bold]Total[/]"), new Text(""), new Markup($"[bold]{Markup.Escape(bill.Amount.ToString())}[/]"));
        var store = bill.MallId is null ? bill.StoreId : $"{bill.StoreId} (mall {bill.MallId})";
        var signedBy = new Text($"From {store}, signed by the store (SIG1); valid until {bill.ExpiresAt.ToString("u", CultureInfo.InvariantCulture)}.", new Style(Color.Grey));
        return new Rows(table, signedBy);
    }

    public static IRenderable Result(PurchaseResult result)
    {
        var grid = new Grid().AddColumn().AddColumn();
        grid.AddRow(new Text("Order"), new Text(result.OrderNo));
        grid.AddRow(new Text("Settlement"), new Text(result.SettlementId.ToString("D")));
        grid.AddRow(new Text("Paid"), new Text($"{result.Amount} to {result.Bill.StoreId}"));
        grid.AddRow(new Text("Card"), new Text(result.CardMasked));
        grid.AddRow(new Text("Balance"), new Text($"{result.BalanceBefore} → {result.BalanceAfter}"));
        grid.AddRow(new Text("Proofs"), new Text(result.ReceiptFromStore
            ? "completion notice (SIG3) verified; receipt (SIG4) fetched from the store and verified"
            : "completion notice (SIG3) and receipt (SIG4) verified"));
        grid.AddRow(new Text("Exchanges"), new Text(string.Create(CultureInfo.InvariantCulture, $"{result.OperatorRoundTrips} round trips to the operator, {result.CardCommands} card commands")));
        return new Panel(grid).Header("[green]Paid[/]").Border(BoxBorder.Rounded);
    }

    public static IRenderable Content(string orderNo, string content)
    {
        var shown = content.Length <= ContentCharsShownMax ? content : content[..ContentCharsShownMax] + "\n…";
        var clean = new string([.. shown.Where(c => c is '\n' or '\t' || !char.IsControl(c))]);
        return new Panel(new Text(clean)).Header($"Your purchase ({Markup.Escape(orderNo)})").Border(BoxBorder.Rounded);
    }

    public static IRenderable CardStatus(PurseStatus status, string readerName)
    {
        var grid = new Grid().AddColumn().AddColumn();
        grid.AddRow(new Text("Card"), new Text(status.CardId.Masked));
        grid.AddRow(new Text("Reader"), new Text(readerName));
        grid.AddRow(new Text("Transactions"), new Text(status.Counter.ToString(CultureInfo.InvariantCulture)));
        if (status.Balances.Count == 0)
        {
            grid.AddRow(new Text("Balance"), new Text("empty: no purse yet"));
        }

        foreach (var balance in status.Balances)
        {
            grid.AddRow(new Text("Balance"), new Markup($"[bold]{Markup.Escape(balance.ToString())}[/]"));
        }

        return new Panel(grid).Header("OpenPurse card").Border(BoxBorder.Rounded);
    }

    public static IRenderable History(IReadOnlyList<CardLogRecord> records)
    {
        var table = new Table().Title("History, newest first").AddColumns(
            new TableColumn("#").RightAligned(), new TableColumn("Kind"), new TableColumn("Amount").RightAligned(), new TableColumn("Balance after").RightAligned(), new TableColumn("Reference"));
        foreach (var record in records)
        {
            var sign = record.Kind == ValueKind.Debit ? "-" : "+";
            table.AddRow(
                new Text(record.Counter.ToString(CultureInfo.InvariantCulture)),
                new Text(record.Kind == ValueKind.Debit ? "payment" : "top-up"),
                new Text(sign + record.Amount),
                new Text(record.BalanceAfter.ToString()),
                new Text(record.TransactionRef.ToString("D")));
        }

        if (records.Count == 0)
        {
            table.AddRow(new Text(""), new Text("no transactions yet"), new Text(""), new Text(""), new Text(""));
        }

        return table;
    }
}
