using OpenPurse.Operator.Registry;

namespace OpenPurse.Operator.Credits;

/// <summary>The states of value owed to a card (the <c>card_credits.state</c> column; docs/reliability.md).</summary>
internal enum CardCreditState
{
    /// <summary>Owed: the value is on the <c>pending</c> account until the card's next sync.</summary>
    Owed,

    /// <summary>A sync made the CREDIT; the card's answer, or its next greeting, says whether it ran.</summary>
    Crediting,

    /// <summary>The card took the CREDIT: the value is on the card's account.</summary>
    Credited,
}

/// <summary>
/// The one place of a card credit's states: value a store, another card or a points award owes a
/// card, recorded with its entry (giver → pending) when it is decided (<see cref="CardCredits.OweAsync"/>),
/// and moved pending → card once when the card's answer or its next greeting proves the CREDIT.
/// </summary>
/// <remarks>
/// <code>
/// owed ─issue─▶ crediting ─credit─▶ credited
///   ▲               │
///   └──not run──────┘   (a later greeting proves the CREDIT never ran; the next sync makes another)
/// </code>
/// </remarks>
internal static class CardCreditStates
{
    /// <summary>owed → crediting: a sync made the CREDIT for the card's session. Nothing moves.</summary>
    public static readonly Transition<CardCreditState> Issue =
        new("issue", [CardCreditState.Owed], CardCreditState.Crediting);

    /// <summary>crediting → credited: the card took the CREDIT; pending → card.</summary>
    public static readonly Transition<CardCreditState> Credit =
        new("credit", [CardCreditState.Crediting], CardCreditState.Credited, new(AccountKind.Pending, AccountKind.Card));

    /// <summary>crediting → owed: a later greeting proves the CREDIT never ran. Nothing moves.</summary>
    public static readonly Transition<CardCreditState> NotRun =
        new("not run", [CardCreditState.Crediting], CardCreditState.Owed);

    /// <summary>Every card credit state, its stored text, and the transition table.</summary>
    public static StateMachine<CardCreditState> Machine { get; } = new(
        "card_credits",
        "credit_id",
        new Dictionary<CardCreditState, string>
        {
            [CardCreditState.Owed] = "owed",
            [CardCreditState.Crediting] = "crediting",
            [CardCreditState.Credited] = "credited",
        },
        [Issue, Credit, NotRun]);

    /// <summary>The state's stored text.</summary>
    public static string ToText(this CardCreditState state) => Machine.Text(state);

    /// <inheritdoc cref="StateMachine{TState}.In"/>
    public static string In(params IReadOnlyList<CardCreditState> states) => Machine.In(states);
}
