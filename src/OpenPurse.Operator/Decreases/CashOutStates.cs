using OpenPurse.Hosting;
using OpenPurse.Operator.Registry;

namespace OpenPurse.Operator.Decreases;

/// <summary>The states of a cash-out to a bank account (the <c>cashouts.state</c> column; docs/reliability.md).</summary>
internal enum CashOutState
{
    /// <summary>The card has its DEBIT; its answer, or its next greeting, says whether it ran.</summary>
    Debiting,

    /// <summary>The card ran the DEBIT: the value is owed to the bank account (payouts) until the payout is cleared.</summary>
    Debited,

    /// <summary>The bank transfer was made: the value left circulation.</summary>
    Paid,

    /// <summary>The bank sent the payout back: the value is owed to the card again, which takes it at its next sync.</summary>
    Returned,

    /// <summary>The card provably never ran the DEBIT: nothing moved, and nothing will.</summary>
    Abandoned,
}

/// <summary>
/// The one place of a cash-out's states: value leaves the card when its answer or its next greeting
/// proves the DEBIT (card → payouts), and leaves circulation when the operator marks the payout paid
/// (payouts → issued), or goes back to the card when the bank returned it (payouts → pending, posted
/// by <see cref="Credits.CardCredits.OweAsync"/>; the card takes it at its next sync).
/// </summary>
/// <remarks>
/// <code>
/// debiting ─debit─▶ debited ─pay─▶ paid
///     │                └─return─▶ returned
///     └─abandon─▶ abandoned
/// </code>
/// </remarks>
internal static class CashOutStates
{
    /// <summary>debiting → debited: the card ran the DEBIT; card → payouts.</summary>
    public static readonly Transition<CashOutState> Debit =
        new("debit", [CashOutState.Debiting], CashOutState.Debited, new(AccountKind.Card, AccountKind.Payouts));

    /// <summary>debiting → abandoned: a later session proves the card never ran the DEBIT. Nothing moves.</summary>
    public static readonly Transition<CashOutState> Abandon =
        new("abandon", [CashOutState.Debiting], CashOutState.Abandoned);

    /// <summary>debited → paid: the bank transfer was made; payouts → issued (the value left circulation).</summary>
    public static readonly Transition<CashOutState> Pay =
        new("pay", [CashOutState.Debited], CashOutState.Paid, new(AccountKind.Payouts, AccountKind.Issued));

    /// <summary>debited → returned: the bank sent the payout back. The entry (payouts → pending) is the owed credit's.</summary>
    public static readonly Transition<CashOutState> Return =
        new("return", [CashOutState.Debited], CashOutState.Returned);

    /// <summary>The states in which the card's DEBIT is posted (card → payouts).</summary>
    public static readonly CashOutState[] Posted = [CashOutState.Debited, CashOutState.Paid, CashOutState.Returned];

    /// <summary>Every cash-out state, its stored text, and the transition table.</summary>
    public static StateMachine<CashOutState> Machine { get; } = new(
        "cashouts",
        "cashout_id",
        new Dictionary<CashOutState, string>
        {
            [CashOutState.Debiting] = "debiting",
            [CashOutState.Debited] = "debited",
            [CashOutState.Paid] = "paid",
            [CashOutState.Returned] = "returned",
            [CashOutState.Abandoned] = "abandoned",
        },
        [Debit, Abandon, Pay, Return]);

    /// <summary>The state's stored text, also on the wire (<c>CashOutView.State</c>).</summary>
    public static string ToText(this CashOutState state) => Machine.Text(state);
}
