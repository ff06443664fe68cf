using OpenPurse.Operator.Registry;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Operator.Refunds;

/// <summary>The states of a store's refund (the <c>refunds.state</c> column; docs/reliability.md).</summary>
internal enum RefundState
{
    /// <summary>Recorded with its entry store → pending: the card takes the value at its next sync.</summary>
    Owed,

    /// <summary>The card took the CREDIT (pending → card, posted by the card's credit).</summary>
    Credited,
}

/// <summary>
/// The one place of a refund's states. A refund is recorded in <see cref="RefundState.Owed"/> in the
/// same transaction as its entry, store → pending (<see cref="Credits.CardCredits.OweAsync"/>); it
/// becomes <see cref="RefundState.Credited"/> once the card's credit for it ran, which posts
/// pending → card itself. Like <see cref="TopUps.TopUpStates"/>.
/// </summary>
/// <remarks>
/// <code>
/// (recorded, store → pending) owed ─credit─▶ credited
/// </code>
/// </remarks>
internal static class RefundStates
{
    /// <summary>owed → credited: the card took the value. Nothing moves here: the card's credit posted pending → card.</summary>
    public static readonly Transition<RefundState> Credit =
        new("credit", [RefundState.Owed], RefundState.Credited);

    /// <summary>The state a refund is recorded in, with its entry store → pending.</summary>
    public const RefundState Initial = RefundState.Owed;

    /// <summary>Every refund state, its stored text (also the notice's <c>state</c>), and the transition table.</summary>
    public static StateMachine<RefundState> Machine { get; } = new(
        "refunds",
        "refund_id",
        new Dictionary<RefundState, string>
        {
            [RefundState.Owed] = RefundNoticeStates.Owed,
            [RefundState.Credited] = RefundNoticeStates.Credited,
        },
        [Credit]);

    /// <summary>The state's stored text, also on the wire (<see cref="RefundNotice.State"/>) and in metrics.</summary>
    public static string ToText(this RefundState state) => Machine.Text(state);
}
