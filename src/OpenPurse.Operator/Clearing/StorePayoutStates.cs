using OpenPurse.Operator.Registry;

namespace OpenPurse.Operator.Clearing;

/// <summary>The states of a store's payout from a clearing run (the <c>store_payouts.state</c> column; docs/reliability.md, "Clearing").</summary>
internal enum StorePayoutState
{
    /// <summary>Owed to the store's bank account (or, a net below zero, owed by the store) until marked paid.</summary>
    Due,

    /// <summary>The bank transfer was made (or the store's payment came in): the value left circulation (or came back into it).</summary>
    Paid,

    /// <summary>The run's sales, refunds and fee came to zero: nothing to pay either way.</summary>
    NothingDue,
}

/// <summary>
/// The one place of a store payout's states. A payout is recorded by its clearing run with its
/// entries, store → fees (the fee) and store → storepayouts (the net; storepayouts → store for a
/// net below zero), in <see cref="StorePayoutState.Due"/>, or in <see cref="StorePayoutState.NothingDue"/>
/// when the net is zero. Marking it paid posts storepayouts → issued (the value left for the store's
/// bank), or issued → storepayouts for a store that paid what it owed.
/// </summary>
/// <remarks>
/// <code>
/// (recorded by the run) due ─pay─▶ paid        (net above zero: storepayouts → issued)
///                        due ─collect─▶ paid    (net below zero: issued → storepayouts)
/// (recorded by the run) nothing_due
/// </code>
/// </remarks>
internal static class StorePayoutStates
{
    /// <summary>due → paid for a payout to the store: storepayouts → issued.</summary>
    public static readonly Transition<StorePayoutState> Pay =
        new("pay", [StorePayoutState.Due], StorePayoutState.Paid, new(AccountKind.StorePayouts, AccountKind.Issued));

    /// <summary>due → paid for what the store owed (refunds above its sales): issued → storepayouts.</summary>
    public static readonly Transition<StorePayoutState> Collect =
        new("collect", [StorePayoutState.Due], StorePayoutState.Paid, new(AccountKind.Issued, AccountKind.StorePayouts));

    /// <summary>Every store payout state, its stored text, and the transition table.</summary>
    public static StateMachine<StorePayoutState> Machine { get; } = new(
        "store_payouts",
        "payout_id",
        new Dictionary<StorePayoutState, string>
        {
            [StorePayoutState.Due] = "due",
            [StorePayoutState.Paid] = "paid",
            [StorePayoutState.NothingDue] = "nothing_due",
        },
        [Pay, Collect]);

    /// <summary>The state's stored text, also in the answers and statements.</summary>
    public static string ToText(this StorePayoutState state) => Machine.Text(state);
}
