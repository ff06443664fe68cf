using OpenPurse.Operator.Registry;

namespace OpenPurse.Operator.TopUps;

/// <summary>The states of a top-up by credit card (the <c>topups.state</c> column; docs/reliability.md).</summary>
internal enum TopUpState
{
    /// <summary>
    /// Recorded; the authorizer is asked (or its answer was lost, and it is asked again with the same
    /// key while the wallet sends the same request, for at most <c>TopUpAuthorizingMax</c> between two).
    /// </summary>
    Authorizing,

    /// <summary>The issuer declined the charge, or the authorizer refused the card data. Nothing moves.</summary>
    Declined,

    /// <summary>Approved: the card has its CREDIT; its answer, or its next greeting, says whether it ran.</summary>
    Crediting,

    /// <summary>The card took the CREDIT; the value is on the card's account and the charge is to be captured.</summary>
    Credited,

    /// <summary>The charge is captured: the top-up is done.</summary>
    Captured,

    /// <summary>
    /// The card provably never took the CREDIT (or refused it), or the top-up was abandoned while
    /// authorizing: the authorization, if there is one, is to be voided.
    /// </summary>
    Voiding,

    /// <summary>The authorization is voided: nothing was charged and nothing credited.</summary>
    Voided,
}

/// <summary>
/// The one place of a top-up's states: the movement that puts value into circulation against a
/// credit-card charge, topups → card, posted once when the card's answer or its next greeting proves
/// the CREDIT. Like <see cref="Settlement.SettlementStates"/> and <see cref="Issuance.CardLoadStates"/>.
/// </summary>
/// <remarks>
/// <code>
/// authorizing ─decline─▶ declined
///   │  └─approve─▶ crediting ─credit─▶ credited ─capture─▶ captured
///   │                  └─give up─▶ voiding ─void─▶ voided
///   └─abandon───────────────────────▶ voiding
/// </code>
/// The charge is captured only after the commit that posts the credit, and voided only after the
/// commit that proves the card never took it: the authorizer is never ahead of the ledger. An
/// abandoned top-up never had a CREDIT: approve is refused from voiding, so nothing is ever
/// captured for it, and whatever the authorizer approved under its id is voided.
/// </remarks>
internal static class TopUpStates
{
    /// <summary>authorizing → declined: the issuer declined, or the card data was refused. Nothing moves.</summary>
    public static readonly Transition<TopUpState> Decline =
        new("decline", [TopUpState.Authorizing], TopUpState.Declined);

    /// <summary>authorizing → crediting: approved; the CREDIT is made for the card's session.</summary>
    public static readonly Transition<TopUpState> Approve =
        new("approve", [TopUpState.Authorizing], TopUpState.Crediting);

    /// <summary>crediting → credited: the card took the CREDIT; topups → card.</summary>
    public static readonly Transition<TopUpState> Credit =
        new("credit", [TopUpState.Crediting], TopUpState.Credited, new(AccountKind.TopUps, AccountKind.Card));

    /// <summary>credited → captured: the authorizer took the charge. Nothing moves in the journal.</summary>
    public static readonly Transition<TopUpState> Capture =
        new("capture", [TopUpState.Credited], TopUpState.Captured);

    /// <summary>crediting → voiding: a later session proves the card never ran the CREDIT. Nothing moves.</summary>
    public static readonly Transition<TopUpState> GiveUp =
        new("give up", [TopUpState.Crediting], TopUpState.Voiding);

    /// <summary>voiding → voided: the authorization is voided.</summary>
    public static readonly Transition<TopUpState> Void =
        new("void", [TopUpState.Voiding], TopUpState.Voided);

    /// <summary>
    /// authorizing → voiding: no request for the top-up for longer than <c>TopUpAuthorizingMax</c>
    /// (its authorizer's answer lost, the wallet gone). No CREDIT was ever made; nothing moves.
    /// </summary>
    public static readonly Transition<TopUpState> Abandon =
        new("abandon", [TopUpState.Authorizing], TopUpState.Voiding);

    /// <summary>The states in which the card has the top-up's value (posted), for the ledger and the daily maximum.</summary>
    public static readonly TopUpState[] Posted = [TopUpState.Credited, TopUpState.Captured];

    /// <summary>The states that count toward a card's daily maximum.</summary>
    public static readonly TopUpState[] Counted = [TopUpState.Crediting, TopUpState.Credited, TopUpState.Captured];

    /// <summary>Every top-up state, its stored text, and the transition table.</summary>
    public static StateMachine<TopUpState> Machine { get; } = new(
        "topups",
        "topup_id",
        new Dictionary<TopUpState, string>
        {
            [TopUpState.Authorizing] = "authorizing",
            [TopUpState.Declined] = "declined",
            [TopUpState.Crediting] = "crediting",
            [TopUpState.Credited] = "credited",
            [TopUpState.Captured] = "captured",
            [TopUpState.Voiding] = "voiding",
            [TopUpState.Voided] = "voided",
        },
        [Decline, Approve, Credit, Capture, GiveUp, Void, Abandon]);

    /// <summary>The state's stored text, also on the wire (<c>TopUpView.State</c>).</summary>
    public static string ToText(this TopUpState state) => Machine.Text(state);

    /// <inheritdoc cref="StateMachine{TState}.In"/>
    public static string In(params IReadOnlyList<TopUpState> states) => Machine.In(states);
}
