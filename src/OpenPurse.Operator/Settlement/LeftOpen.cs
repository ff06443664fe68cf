using OpenPurse.Hosting;
using OpenPurse.Operator.TopUps;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Operator.Settlement;

/// <summary>
/// What a card's earlier sessions left open, once its new greeting has judged each order
/// (<see cref="CardRecovery.ResolveLeftOpenAsync"/>): every session the card opens — a sync, a
/// purchase, a top-up, a transfer or cash-out — starts here, so the card's counter never moves past
/// an order whose outcome is unknown.
/// </summary>
/// <param name="LoadPending">The issuing station's load is still unresolved.</param>
/// <param name="Settlement">The card's unresolved settlement as it is now, if it had one.</param>
/// <param name="SettlementWas">The settlement's state before the greeting moved it; null when it did not.</param>
/// <param name="TopUp">The card's top-up that was crediting, and its state now.</param>
/// <param name="Decrease">A transfer's or cash-out's DEBIT still open.</param>
/// <param name="Credit">A card credit's CREDIT still open.</param>
internal sealed record LeftOpen(bool LoadPending, SettlementRow? Settlement, SettlementState? SettlementWas, (Guid Id, TopUpState State)? TopUp, Guid? Decrease, Guid? Credit)
{
    /// <summary>Why the card may not take a new order yet, or null when nothing it left stays open.</summary>
    public Refusal? Busy => this switch
    {
        { LoadPending: true } => new Refusal(ProblemCode.CardBusy, "The card has an unfinished load that must be resolved first."),
        { Settlement.State: SettlementState.Reversing } =>
            new Refusal(ProblemCode.CardSyncRequired, "The card paid a settlement that did not complete; the operator returns that amount first (openpurse sync)."),
        { Settlement.State: SettlementState.Authorized or SettlementState.Expired } =>
            new Refusal(ProblemCode.CardBusy, "The card has an unfinished settlement that must be resolved first."),
        { TopUp: (var id, TopUpState.Crediting) } => new Refusal(ProblemCode.CardBusy, $"The card has top-up {id} still open; run or abandon its credit first."),
        { Decrease: { } id } => new Refusal(ProblemCode.CardBusy, $"The card has value decrease {id} still open; run or abandon its debit first."),
        { Credit: { } id } => new Refusal(ProblemCode.CardBusy, $"The card has credit {id} still open; sync the card first (openpurse sync)."),
        _ => null,
    };
}
