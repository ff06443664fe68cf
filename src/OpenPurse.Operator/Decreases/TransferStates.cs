using OpenPurse.Hosting;
using OpenPurse.Operator.Registry;

namespace OpenPurse.Operator.Decreases;

/// <summary>The states of a transfer from one card to another (the <c>transfers.state</c> column; docs/reliability.md).</summary>
internal enum TransferState
{
    /// <summary>The paying card has its DEBIT; its answer, or its next greeting, says whether it ran.</summary>
    Debiting,

    /// <summary>The card ran the DEBIT: the value left its account and is owed to the payee card until its next sync.</summary>
    Debited,

    /// <summary>The card provably never ran the DEBIT: nothing moved, and nothing will.</summary>
    Abandoned,
}

/// <summary>
/// The one place of a transfer's states: value leaves the paying card when its answer or its next
/// greeting proves the DEBIT, and is owed to the payee card (card → pending, posted by
/// <see cref="Credits.CardCredits.OweAsync"/> in the same transaction), which takes it at its next sync.
/// </summary>
/// <remarks>
/// <code>
/// debiting ─debit─▶ debited
///     └─abandon─▶ abandoned
/// </code>
/// </remarks>
internal static class TransferStates
{
    /// <summary>debiting → debited: the card ran the DEBIT. The entry (card → pending) is the owed credit's.</summary>
    public static readonly Transition<TransferState> Debit =
        new("debit", [TransferState.Debiting], TransferState.Debited);

    /// <summary>debiting → abandoned: a later session proves the card never ran the DEBIT. Nothing moves.</summary>
    public static readonly Transition<TransferState> Abandon =
        new("abandon", [TransferState.Debiting], TransferState.Abandoned);

    /// <summary>Every transfer state, its stored text, and the transition table.</summary>
    public static StateMachine<TransferState> Machine { get; } = new(
        "transfers",
        "transfer_id",
        new Dictionary<TransferState, string>
        {
            [TransferState.Debiting] = "debiting",
            [TransferState.Debited] = "debited",
            [TransferState.Abandoned] = "abandoned",
        },
        [Debit, Abandon]);

    /// <summary>The state's stored text, also on the wire (<c>TransferView.State</c>).</summary>
    public static string ToText(this TransferState state) => Machine.Text(state);
}
