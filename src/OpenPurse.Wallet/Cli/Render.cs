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
        if (result.Receipt.Points is { } points)
        {
            grid.AddRow(new Text("Points"), new Text($"{points} awarded; the card takes them at its next sync (openpurse sync)"));
        }

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

    /// <summary>What a store (or mall) sells, as its catalog says.</summary>
    public static IRenderable Catalog(CatalogResponse catalog)
    {
        var table = new Table().Title("Catalog").AddColumns(
            new TableColumn("Article").NoWrap(), new TableColumn("Title"), new TableColumn("Store"), new TableColumn("Price").RightAligned().NoWrap());
        foreach (var item in catalog.Items.Where(i => i is not null).OrderBy(i => i.StoreId, StringComparer.Ordinal).ThenBy(i => i.Sku, StringComparer.Ordinal))
        {
            table.AddRow(new Text(item.Sku), new Text(item.Title), new Text(item.StoreId), new Text(item.Price.ToString()));
        }

        if (catalog.Items.Count == 0)
        {
            table.AddRow(new Text(""), new Text("the store sells nothing"), new Text(""), new Text(""));
        }

        return table;
    }

    /// <summary>
    /// The card's log, newest first, with the date, store and order the wallet kept from each
    /// purchase's receipt, and the date and credit card (its last four digits) of each top-up;
    /// records it kept nothing for show what the card knows. Fits 80 columns:
    /// long ids are cut short, the settlement id is its last eight digits (the first are its time,
    /// alike for purchases close together).
    /// </summary>
    public static IRenderable History(IReadOnlyList<CardLogRecord> records, IReadOnlyDictionary<Guid, PurchaseJournal.Entry> journal)
    {
        ArgumentNullException.ThrowIfNull(records);
        ArgumentNullException.ThrowIfNull(journal);
        var table = new Table().Title("History, newest first").Border(TableBorder.Simple).AddColumns(
            new TableColumn("Date").NoWrap(),
            new TableColumn("Store").NoWrap(),
            new TableColumn("Order").NoWrap(),
            new TableColumn("Amount").RightAligned().NoWrap(),
            new TableColumn("Balance").RightAligned().NoWrap(),
            new TableColumn("Ref").NoWrap());
        foreach (var record in records)
        {
            var debit = record.Kind == ValueKind.Debit;
            var kept = journal.GetValueOrDefault(record.TransactionRef);
            table.AddRow(
                new Text(kept is null ? "–" : kept.IssuedAt.UtcDateTime.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)),
                new Text(kept switch
                {
                    { Kind: PurchaseJournal.TransferKind } => "transfer",
                    { Kind: PurchaseJournal.CashOutKind } => "cash-out",
                    _ => debit ? Short(kept?.StoreId ?? "payment", 12) : CreditLabel(record, kept),
                }),
                new Text(kept switch
                {
                    null => "–",
                    { IsTopUp: true } => "card …" + kept.LastFour,
                    { IsDecrease: true } => Short(kept.Payee!, 16),
                    _ => Short(kept.OrderNo ?? "–", 16),
                }),
                new Text((debit ? "-" : "+") + record.Amount),
                new Text(record.BalanceAfter.ToString()),
                new Text(record.TransactionRef.ToString("N")[^8..]));
        }

        if (records.Count == 0)
        {
            table.AddRow(new Text(""), new Text("no transactions yet"), new Text(""), new Text(""), new Text(""), new Text(""));
        }

        return table;
    }

    // What a credit was, from the wallet's note or else the digest the card logged with it. What a
    // sync brings (a return, a refund, a transfer) names a source the log does not hold: a credit.
    private static string CreditLabel(CardLogRecord record, PurchaseJournal.Entry? kept) =>
        kept is { IsTopUp: true } || CreditDigests.Carries(record, CreditDigests.TopUp) ? "top-up"
        : kept?.Kind is ValueUpdatePurposes.Refund or ValueUpdatePurposes.Transfer or ValueUpdatePurposes.Return or ValueUpdatePurposes.Points ? kept.Kind
        : CreditDigests.Carries(record, CreditDigests.Load) ? "load"
        : record.Amount.Currency.IsPoints ? "points"
        : "credit";

    // An id cut to its ends when longer than the column: the start names it, the end tells it apart.
    private static string Short(string text, int width) =>
        text.Length <= width ? text : string.Concat(text.AsSpan(0, (width / 2) - 1), "…", text.AsSpan(text.Length - (width - (width / 2))));
}
