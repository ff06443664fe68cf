using OpenPurse.Operator.Registry;

namespace OpenPurse.Operator.Issuance;

/// <summary>The states of a load at the issuing station (the <c>card_loads.state</c> column).</summary>
internal enum CardLoadState
{
    /// <summary>Recorded before the card gets its CREDIT.</summary>
    Pending,

    /// <summary>The card took the CREDIT; the value is in the ledger.</summary>
    Loaded,

    /// <summary>A later session proves the card never ran the CREDIT.</summary>
    Failed,
}

/// <summary>
/// The one place of a load's states: the movement that puts value into circulation, issued → card,
/// posted when the card took it. Like <see cref="Settlement.SettlementStates"/>.
/// </summary>
internal static class CardLoadStates
{
    /// <summary>pending → loaded: the card took the CREDIT; issued → card.</summary>
    public static readonly Transition<CardLoadState> Post =
        new("post", [CardLoadState.Pending], CardLoadState.Loaded, new(AccountKind.Issued, AccountKind.Card));

    /// <summary>pending → failed: the card never ran the CREDIT. Nothing moves.</summary>
    public static readonly Transition<CardLoadState> Fail =
        new("fail", [CardLoadState.Pending], CardLoadState.Failed);

    /// <summary>Every load state, its stored text, and the transition table.</summary>
    public static StateMachine<CardLoadState> Machine { get; } = new(
        "card_loads",
        "load_id",
        new Dictionary<CardLoadState, string>
        {
            [CardLoadState.Pending] = "pending",
            [CardLoadState.Loaded] = "loaded",
            [CardLoadState.Failed] = "failed",
        },
        [Post, Fail]);
}
