using OpenPurse.Operator.Registry;

namespace OpenPurse.Operator.Settlement;

/// <summary>The states of a settlement (the <c>settlements.state</c> column; docs/reliability.md).</summary>
internal enum SettlementState
{
    /// <summary>Round trip 1 gave the card its DEBIT; the card's answer, or word of it, is awaited.</summary>
    Authorized,

    /// <summary>The card paid; the store is owed the amount.</summary>
    Completed,

    /// <summary>Completed, but the store would not take its ACN: the operator decides.</summary>
    Disputed,

    /// <summary>The card never ran the DEBIT; the store is not paid.</summary>
    Voided,

    /// <summary>Its deadline passed without word from the card; the store is not paid.</summary>
    Expired,

    /// <summary>Its amount is owed back to the card, and goes back with the card's next CREDIT.</summary>
    Reversing,

    /// <summary>The card took the CREDIT that returned the amount.</summary>
    Reversed,
}

/// <summary>
/// The one place of a settlement's states: their stored text, which transition is allowed from
/// which state, and the journal entry each money-moving transition posts. Code runs a transition
/// through <see cref="Machine"/> (<see cref="StateMachine{TState}.RunAsync"/>); SQL names states
/// through <see cref="In"/>; the ledger's check of what each state has posted
/// (<see cref="PostingsTo"/>) is derived from the same table.
/// </summary>
/// <remarks>
/// <code>
/// authorized ─complete─▶ completed ─dispute─▶ disputed ─return─▶ reversing ─reverse─▶ reversed
///   │  └─expire─▶ expired ─owe back─▶ reversing       └─tell again─▶ completed
///   ├─return blocked─▶ reversing (the card was blocked before its DEBIT was learned)
///   └─void─▶ voided ◀─void─ expired
/// </code>
/// </remarks>
internal static class SettlementStates
{
    /// <summary>authorized → completed: the card paid; card → store.</summary>
    public static readonly Transition<SettlementState> Complete =
        new("complete", [SettlementState.Authorized], SettlementState.Completed, new(AccountKind.Card, AccountKind.Store));

    /// <summary>authorized → expired: the deadline passed (sweeper); the store is told it is not paid. Nothing moves.</summary>
    public static readonly Transition<SettlementState> Expire =
        new("expire", [SettlementState.Authorized], SettlementState.Expired);

    /// <summary>authorized or expired → voided: a later session proves the card never ran the DEBIT. Nothing moves.</summary>
    public static readonly Transition<SettlementState> Void =
        new("void", [SettlementState.Authorized, SettlementState.Expired], SettlementState.Voided);

    /// <summary>expired → reversing: the card ran the DEBIT after all; card → reversals, owed back to it.</summary>
    public static readonly Transition<SettlementState> OweBack =
        new("owe back", [SettlementState.Expired], SettlementState.Reversing, new(AccountKind.Card, AccountKind.Reversals));

    /// <summary>
    /// authorized → reversing: the card ran the DEBIT, but was blocked before the operator learned
    /// it; card → reversals, owed back to its holder, and the store is told it is not paid. A store
    /// hands over goods only on an ACN, so no store that delivered is left unpaid by it.
    /// </summary>
    public static readonly Transition<SettlementState> ReturnBlocked =
        new("return blocked", [SettlementState.Authorized], SettlementState.Reversing, new(AccountKind.Card, AccountKind.Reversals));

    /// <summary>reversing → reversed: the card took the CREDIT; reversals → card.</summary>
    public static readonly Transition<SettlementState> Reverse =
        new("reverse", [SettlementState.Reversing], SettlementState.Reversed, new(AccountKind.Reversals, AccountKind.Card));

    /// <summary>completed → disputed: the store would not take the ACN (sweeper). Nothing moves: the amount stays the store's.</summary>
    public static readonly Transition<SettlementState> Dispute =
        new("dispute", [SettlementState.Completed], SettlementState.Disputed);

    /// <summary>disputed → reversing, by the operator: store → reversals; the card's next sync takes it back.</summary>
    public static readonly Transition<SettlementState> ReturnDisputed =
        new("return", [SettlementState.Disputed], SettlementState.Reversing, new(AccountKind.Store, AccountKind.Reversals));

    /// <summary>disputed → completed, by the operator: the store is told its ACN again. Nothing moves.</summary>
    public static readonly Transition<SettlementState> RetellDisputed =
        new("tell again", [SettlementState.Disputed], SettlementState.Completed);

    /// <summary>The state a settlement is recorded in.</summary>
    public const SettlementState Initial = SettlementState.Authorized;

    /// <summary>The states in which a settlement still waits for word from its card: one per card (a partial unique index over these).</summary>
    public static readonly SettlementState[] Unresolved = [SettlementState.Authorized, SettlementState.Expired, SettlementState.Reversing];

    /// <summary>The final outcomes a store is told, until it acknowledges (a partial index over these).</summary>
    public static readonly SettlementState[] Told =
        [SettlementState.Completed, SettlementState.Voided, SettlementState.Expired, SettlementState.Reversing, SettlementState.Reversed];

    /// <summary>The states in which the store is owed the amount.</summary>
    public static readonly SettlementState[] PaidToStore = [SettlementState.Completed, SettlementState.Disputed];

    /// <summary>The states whose postings the ledger checks: every one but the initial, which has posted nothing yet.</summary>
    public static readonly SettlementState[] Posted = [.. Enum.GetValues<SettlementState>().Where(s => s != Initial)];

    /// <summary>Every settlement state, its stored text, and the transition table.</summary>
    public static StateMachine<SettlementState> Machine { get; } = new(
        "settlements",
        "settlement_id",
        new Dictionary<SettlementState, string>
        {
            [SettlementState.Authorized] = "authorized",
            [SettlementState.Completed] = "completed",
            [SettlementState.Disputed] = "disputed",
            [SettlementState.Voided] = "voided",
            [SettlementState.Expired] = "expired",
            [SettlementState.Reversing] = "reversing",
            [SettlementState.Reversed] = "reversed",
        },
        [Complete, ReturnBlocked, Expire, Void, OweBack, Reverse, Dispute, ReturnDisputed, RetellDisputed]);

    private static readonly Dictionary<SettlementState, IReadOnlyList<IReadOnlyList<Posting>>> s_postings = Paths();

    /// <summary>The state's stored text, also on the wire (<c>SettlementView.State</c>) and in metrics.</summary>
    public static string ToText(this SettlementState state) => Machine.Text(state);

    /// <summary>Reads a stored state.</summary>
    /// <exception cref="FormatException">Not a settlement state.</exception>
    public static SettlementState Parse(string text) => Machine.Parse(text);

    /// <inheritdoc cref="StateMachine{TState}.In"/>
    public static string In(params IReadOnlyList<SettlementState> states) => Machine.In(states);

    /// <summary>
    /// The entries a settlement in <paramref name="state"/> has posted: one list per way of reaching
    /// it from <see cref="Initial"/> through the transition table (without passing a state twice),
    /// the shortest way first. Reversing, for example: card → reversals (expired, then found on the
    /// card), or card → store, store → reversals (completed, disputed, then returned).
    /// </summary>
    public static IReadOnlyList<IReadOnlyList<Posting>> PostingsTo(SettlementState state) => s_postings[state];

    // Breadth first, so that shorter ways come first; ways that post the same entries count once.
    private static Dictionary<SettlementState, IReadOnlyList<IReadOnlyList<Posting>>> Paths()
    {
        var found = Enum.GetValues<SettlementState>().ToDictionary(s => s, _ => new List<IReadOnlyList<Posting>>());
        var ways = new Queue<(SettlementState At, SettlementState[] Passed, Posting[] Posted)>();
        ways.Enqueue((Initial, [Initial], []));
        while (ways.TryDequeue(out var way))
        {
            if (!found[way.At].Any(known => known.SequenceEqual(way.Posted)))
            {
                found[way.At].Add(way.Posted);
            }

            foreach (var next in Machine.Transitions.Where(t => t.AllowedFrom(way.At) && !way.Passed.Contains(t.To)))
            {
                ways.Enqueue((next.To, [.. way.Passed, next.To], next.Posts is { } posting ? [.. way.Posted, posting] : way.Posted));
            }
        }

        return found.ToDictionary(f => f.Key, f => (IReadOnlyList<IReadOnlyList<Posting>>)f.Value);
    }
}
