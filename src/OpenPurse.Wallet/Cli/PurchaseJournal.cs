using System.Text.Json;
using System.Text.Json.Serialization;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Wallet.Cli;

/// <summary>
/// What the wallet learned at each purchase that the card's log does not keep: the store, the
/// order and the date, from the store's verified receipt (SIG4); and at each top-up, the date and
/// the credit card's last four digits. One JSON line per purchase or top-up in
/// <c>&lt;card file&gt;.journal</c>, owner-only (0600), with no card number; <c>openpurse card</c>
/// joins it to the card's log by settlement id. It is the wallet's own note, never a proof: the
/// card's log and the signed receipt are.
/// </summary>
internal static class PurchaseJournal
{
    /// <summary>The most of the journal read: far more lines than a card's log has records.</summary>
    public const int BytesReadMax = 1 << 20;

    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode OwnerOnlyDirectory = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>The <see cref="Entry.Kind"/> of a top-up; purchases have none.</summary>
    public const string TopUpKind = "topup";

    /// <summary>The <see cref="Entry.Kind"/> of a transfer to another card.</summary>
    public const string TransferKind = ValueDecreasePurposes.Transfer;

    /// <summary>The <see cref="Entry.Kind"/> of a cash-out to a bank account.</summary>
    public const string CashOutKind = ValueDecreasePurposes.CashOut;

    /// <summary>
    /// One purchase as the receipt told it, or one top-up (<see cref="Kind"/> <see cref="TopUpKind"/>,
    /// keyed by its CREDIT's transaction reference, with the credit card's last four digits and the
    /// balance after).
    /// </summary>
    /// <remarks>A transfer or a cash-out (<see cref="Kind"/> <see cref="TransferKind"/> or <see cref="CashOutKind"/>) is keyed by its DEBIT's transaction reference, with the payee masked.</remarks>
    public sealed record Entry(Guid SettlementId, string? OrderNo, string? StoreId, Money Amount, DateTimeOffset IssuedAt, string? Kind = null, string? LastFour = null, Money? BalanceAfter = null,
        string? Payee = null)
    {
        [JsonIgnore]
        public bool IsTopUp => Kind == TopUpKind;

        [JsonIgnore]
        public bool IsDecrease => Kind is TransferKind or CashOutKind;
    }

    /// <summary>The journal beside a card file.</summary>
    public static string PathFor(string cardPath) => cardPath + ".journal";

    /// <summary>Adds the receipt's purchase to the journal, making it (0600) when absent.</summary>
    /// <exception cref="IOException">The journal cannot be written.</exception>
    /// <exception cref="UnauthorizedAccessException">The journal or its directory is not the person's to write.</exception>
    public static void Append(string path, Receipt receipt)
    {
        ArgumentNullException.ThrowIfNull(receipt);
        Write(path, new Entry(receipt.SettlementId, receipt.OrderNo, receipt.StoreId, receipt.Amount, receipt.IssuedAt));
    }

    /// <summary>Adds a top-up to the journal, making it (0600) when absent.</summary>
    /// <param name="path">The journal.</param>
    /// <param name="valueUpdateId">The CREDIT's transaction reference, which the card's log keeps.</param>
    /// <param name="amount">What the card got.</param>
    /// <param name="lastFour">The credit card's last four digits; never more of its number.</param>
    /// <param name="balanceAfter">The card's balance after the CREDIT.</param>
    /// <param name="at">When.</param>
    /// <exception cref="IOException">The journal cannot be written.</exception>
    /// <exception cref="UnauthorizedAccessException">The journal or its directory is not the person's to write.</exception>
    public static void AppendTopUp(string path, Guid valueUpdateId, Money amount, string lastFour, Money balanceAfter, DateTimeOffset at) =>
        Write(path, new Entry(valueUpdateId, null, null, amount, at, TopUpKind, lastFour, balanceAfter));

    /// <summary>Adds a transfer or cash-out to the journal, making it (0600) when absent.</summary>
    /// <param name="path">The journal.</param>
    /// <param name="kind"><see cref="TransferKind"/> or <see cref="CashOutKind"/>.</param>
    /// <param name="id">The DEBIT's transaction reference, which the card's log keeps.</param>
    /// <param name="amount">What left the card.</param>
    /// <param name="payee">The payee card or IBAN, masked; never in full.</param>
    /// <param name="balanceAfter">The card's balance after the DEBIT.</param>
    /// <param name="at">When.</param>
    /// <exception cref="IOException">The journal cannot be written.</exception>
    /// <exception cref="UnauthorizedAccessException">The journal or its directory is not the person's to write.</exception>
    public static void AppendDecrease(string path, string kind, Guid id, Money amount, string payee, Money balanceAfter, DateTimeOffset at) =>
        Write(path, new Entry(id, null, null, amount, at, kind, BalanceAfter: balanceAfter, Payee: payee));

    /// <summary>Adds a credit a sync gave the card (a return, a refund, a transfer, points) to the journal, making it (0600) when absent.</summary>
    /// <param name="path">The journal.</param>
    /// <param name="update">The CREDIT's value update information (SIG5), verified: its purpose, source and amount.</param>
    /// <param name="at">When.</param>
    /// <exception cref="IOException">The journal cannot be written.</exception>
    /// <exception cref="UnauthorizedAccessException">The journal or its directory is not the person's to write.</exception>
    public static void AppendCredit(string path, ValueUpdate update, DateTimeOffset at)
    {
        ArgumentNullException.ThrowIfNull(update);
        Write(path, new Entry(update.ValueUpdateId, null, null, update.Amount, at, update.Purpose));
    }

    private static void Write(string path, Entry entry)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        if (!Directory.Exists(directory))
        {
            if (OperatingSystem.IsWindows())
            {
                Directory.CreateDirectory(directory);
            }
            else
            {
                Directory.CreateDirectory(directory, OwnerOnlyDirectory);
            }
        }

        var line = JsonSerializer.Serialize(entry, ProtocolJson.Options) + "\n";
        var options = new FileStreamOptions { Mode = FileMode.Append, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = OwnerOnly;
        }

        using var stream = new FileStream(path, options);
        if (!OperatingSystem.IsWindows() && (File.GetUnixFileMode(stream.SafeFileHandle) & ~OwnerOnly) != 0)
        {
            // A journal someone else may read tells them where the person shops: tighten it.
            File.SetUnixFileMode(stream.SafeFileHandle, OwnerOnly);
        }

        var bytes = System.Text.Encoding.UTF8.GetBytes(line);
        stream.Write(bytes);
    }

    /// <summary>
    /// The journal's entries by settlement id; none when there is no journal. Lines that do not
    /// read are passed over: the journal only adds to what the card says.
    /// </summary>
    public static IReadOnlyDictionary<Guid, Entry> Read(string path)
    {
        var entries = new Dictionary<Guid, Entry>();
        if (!File.Exists(path))
        {
            return entries;
        }

        using var stream = File.OpenRead(path);
        var buffer = new byte[(int)Math.Min(stream.Length, BytesReadMax)];
        stream.ReadExactly(buffer);
        foreach (var line in System.Text.Encoding.UTF8.GetString(buffer).Split('\n'))
        {
            try
            {
                if (line.Length > 0 && JsonSerializer.Deserialize<Entry>(line, ProtocolJson.Options) is { } entry
                    && (entry.IsTopUp ? entry.LastFour is { Length: 4 } : entry.IsDecrease ? entry.Payee is { Length: > 0 and <= 16 } : entry is { Kind: null, OrderNo: not null, StoreId: not null }))
                {
                    entries[entry.SettlementId] = entry;
                }
            }
            catch (JsonException)
            {
                // A torn or foreign line: the card's own record still shows.
            }
        }

        return entries;
    }
}
