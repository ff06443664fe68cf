using System.Diagnostics.CodeAnalysis;
using OpenPurse.Protocol;

namespace OpenPurse.Operator.Registry;

/// <summary>The kinds of account the journal holds (docs/reliability.md, "Ledger").</summary>
/// <remarks>
/// A new kind (a clearing account for card top-ups, payouts to stores) is a member here, its text
/// in <see cref="Account"/>'s <c>Text</c>, <c>TryParse</c> and <c>PrefixOf</c>, and its place in the ledger's
/// books (<see cref="Ledger"/>): nothing else formats or reads account text.
/// </remarks>
internal enum AccountKind
{
    /// <summary><c>issued</c>: minus the value the operator put into circulation.</summary>
    Issued,

    /// <summary><c>reversals</c>: value taken from cards by debits of settlements that did not complete, owed back to them.</summary>
    Reversals,

    /// <summary><c>card:&lt;16 digits&gt;</c>: what the operator owes the holder of a card.</summary>
    Card,

    /// <summary><c>store:&lt;store id&gt;</c>: what the operator owes a store.</summary>
    Store,

    /// <summary><c>topups</c>: minus the value put into circulation against credit-card charges (top-ups the cards took).</summary>
    TopUps,

    /// <summary><c>pending</c>: value owed to cards and delivered at their next sync (a transfer's payee, a cash-out the bank returned).</summary>
    Pending,

    /// <summary><c>payouts</c>: cash-outs owed to bank accounts until they are cleared (paid or returned by the bank).</summary>
    Payouts,

    /// <summary><c>fees</c>: the operator's revenue, the fees a clearing run took from the stores' sales.</summary>
    Fees,

    /// <summary><c>storepayouts</c>: what clearing runs owe the stores' bank accounts until each payout is marked paid.</summary>
    StorePayouts,
}

/// <summary>
/// An account of the journal: its kind and, for a card or a store, whose it is. The one place that
/// formats an account to the text stored in <c>journal.account</c> (<see cref="Text"/>) and reads it
/// back (<see cref="TryParse"/>, which refuses any text it would not have written).
/// </summary>
/// <remarks><see cref="ToString"/> masks a card's number, so an account may be logged or shown; <see cref="Text"/> may not.</remarks>
internal readonly record struct Account
{
    private const string IssuedText = "issued";
    private const string ReversalsText = "reversals";
    private const string TopUpsText = "topups";
    private const string PendingText = "pending";
    private const string PayoutsText = "payouts";
    private const string FeesText = "fees";
    private const string StorePayoutsText = "storepayouts";
    private const string CardPrefix = "card:";
    private const string StorePrefix = "store:";

    private Account(AccountKind kind, string? owner)
    {
        Kind = kind;
        Owner = owner;
    }

    /// <summary>Value the operator put into circulation (negative).</summary>
    public static Account Issued { get; } = new(AccountKind.Issued, null);

    /// <summary>Debits of settlements that did not complete, owed back to their cards.</summary>
    public static Account Reversals { get; } = new(AccountKind.Reversals, null);

    /// <summary>Value put into circulation against credit-card charges (negative).</summary>
    public static Account TopUps { get; } = new(AccountKind.TopUps, null);

    /// <summary>Value owed to cards, delivered at their next sync.</summary>
    public static Account Pending { get; } = new(AccountKind.Pending, null);

    /// <summary>Cash-outs owed to bank accounts until cleared.</summary>
    public static Account Payouts { get; } = new(AccountKind.Payouts, null);

    /// <summary>The operator's revenue from the stores' fees.</summary>
    public static Account Fees { get; } = new(AccountKind.Fees, null);

    /// <summary>Payouts owed to stores' bank accounts until paid.</summary>
    public static Account StorePayouts { get; } = new(AccountKind.StorePayouts, null);

    public AccountKind Kind { get; }

    /// <summary>A card's 16 digits or a store's id; null for the operator's own accounts.</summary>
    public string? Owner { get; }

    /// <summary>The text stored in <c>journal.account</c>. It holds a card's full number: never for a log.</summary>
    public string Text => Kind switch
    {
        AccountKind.Card or AccountKind.Store => PrefixOf(Kind) + Owner,
        _ => PrefixOf(Kind),
    };

    /// <summary>What the operator owes the holder of a card.</summary>
    public static Account Card(CardId card) => new(AccountKind.Card, card.Digits);

    /// <summary>What the operator owes the holder of the card with these digits, as the registry stores them.</summary>
    /// <exception cref="ArgumentException">Not a card number's digits.</exception>
    public static Account Card(string cardDigits) => IsCardOwner(cardDigits)
        ? new(AccountKind.Card, cardDigits)
        : throw new ArgumentException("A card account is owned by a card number's digits.", nameof(cardDigits));

    /// <summary>What the operator owes a store.</summary>
    /// <exception cref="ArgumentException">Not a store id.</exception>
    public static Account Store(string storeId) => IsStoreOwner(storeId)
        ? new(AccountKind.Store, storeId)
        : throw new ArgumentException("A store account is owned by a store id.", nameof(storeId));

    /// <summary>
    /// The text of an account of <paramref name="kind"/>: the whole text of the operator's own
    /// accounts, the prefix before the owner of a card's or a store's (for queries that group by kind).
    /// </summary>
    public static string PrefixOf(AccountKind kind) => kind switch
    {
        AccountKind.Issued => IssuedText,
        AccountKind.Reversals => ReversalsText,
        AccountKind.TopUps => TopUpsText,
        AccountKind.Pending => PendingText,
        AccountKind.Payouts => PayoutsText,
        AccountKind.Fees => FeesText,
        AccountKind.StorePayouts => StorePayoutsText,
        AccountKind.Card => CardPrefix,
        AccountKind.Store => StorePrefix,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Not an account kind."),
    };

    /// <summary>Reads a stored account; false for any text that is not one (another kind, no owner, an owner of the wrong form).</summary>
    public static bool TryParse([NotNullWhen(true)] string? text, out Account account)
    {
        account = default;
        switch (text)
        {
            case IssuedText:
                account = Issued;
                return true;
            case ReversalsText:
                account = Reversals;
                return true;
            case TopUpsText:
                account = TopUps;
                return true;
            case PendingText:
                account = Pending;
                return true;
            case PayoutsText:
                account = Payouts;
                return true;
            case FeesText:
                account = Fees;
                return true;
            case StorePayoutsText:
                account = StorePayouts;
                return true;
            case not null when text.StartsWith(CardPrefix, StringComparison.Ordinal) && IsCardOwner(text[CardPrefix.Length..]):
                account = new(AccountKind.Card, text[CardPrefix.Length..]);
                return true;
            case not null when text.StartsWith(StorePrefix, StringComparison.Ordinal) && IsStoreOwner(text[StorePrefix.Length..]):
                account = new(AccountKind.Store, text[StorePrefix.Length..]);
                return true;
            default:
                return false;
        }
    }

    /// <summary>Reads a stored account.</summary>
    /// <exception cref="FormatException">The text is not an account's.</exception>
    public static Account Parse(string text) =>
        TryParse(text, out var account) ? account : throw new FormatException("Not a journal account.");

    /// <summary>Stored account text as it may be shown: a card's number masked, also in text that is not an account.</summary>
    public static string Shown(string text) => TryParse(text, out var account)
        ? account.ToString()
        : text.StartsWith(CardPrefix, StringComparison.Ordinal) ? CardPrefix + Ledger.MaskCard(text[CardPrefix.Length..]) : text;

    /// <summary>The account as it may be shown: <see cref="Text"/> with a card's number masked.</summary>
    public override string ToString() => Kind == AccountKind.Card ? CardPrefix + Ledger.MaskCard(Owner!) : Text;

    // The registry stores a card's 16 digits; the check digit is not checked here, so that the
    // ledger can still read (and report) an account that a faulty write gave a wrong number.
    private static bool IsCardOwner(string? owner) => owner is { Length: 16 } && owner.All(char.IsAsciiDigit);

    // Store ids as the registry takes them (StoreRegistry): ASCII letters, digits, '-' and '_'.
    private static bool IsStoreOwner(string? owner) =>
        owner is { Length: > 0 } && owner.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_');
}
