using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Wallet.Purchase;

/// <summary>
/// The person's side of a purchase: what the wallet shows while it works, and the one question it
/// asks. A console implementation draws with Spectre.Console; <see cref="AutoPrompt"/> answers by
/// itself for <c>--yes</c>, the demo and tests.
/// </summary>
public interface IPurchasePrompt
{
    /// <summary>One line of progress, e.g. "Asking the store for a bill".</summary>
    void Progress(string message);

    /// <summary>Shows the store's estimate before the order is placed.</summary>
    void ShowEstimate(EstimateResponse estimate);

    /// <summary>Shows the bill once its signature (SIG1) and contents are checked.</summary>
    void ShowBill(Bill bill);

    /// <summary>
    /// Shows the balance beside the bill and asks the person to agree. Nothing is written to the
    /// card unless this returns true. Asynchronous: the agent's answer comes when the person posts
    /// the approval page, which may be minutes later; the card's session waits meanwhile.
    /// </summary>
    ValueTask<bool> ConfirmAsync(PurchaseConfirmation confirmation, CancellationToken cancellationToken);

    /// <summary>Runs card work (which must not be interrupted) while showing that the card is busy.</summary>
    T WhileCardWorks<T>(string message, Func<T> work);
}

/// <summary>What the person is asked to agree to.</summary>
/// <param name="Bill">The bill, verified.</param>
/// <param name="Balance">The card's balance in the bill's currency.</param>
/// <param name="BalanceSignedByOperator">True in profile "signed" (the balance came with SIG2), false in "lean" (the wallet read it from the card).</param>
/// <param name="CardMasked">The card number, masked.</param>
public sealed record PurchaseConfirmation(Bill Bill, Money Balance, bool BalanceSignedByOperator, string CardMasked)
{
    /// <summary>The balance after the payment, if the person agrees.</summary>
    public Money BalanceAfter => Balance - Bill.Amount;
}

/// <summary>
/// A prompt that asks nobody: it approves (or declines) every purchase and keeps what it was shown,
/// for <c>--yes</c>, the demo and tests.
/// </summary>
public sealed class AutoPrompt : ITopUpPrompt, IDecreasePrompt
{
    private readonly List<string> _progress = [];
    private readonly bool _approve;

    /// <summary>Creates the prompt.</summary>
    /// <param name="approve">The answer to every confirmation.</param>
    public AutoPrompt(bool approve = true) => _approve = approve;

    /// <summary>The progress lines, in order.</summary>
    public IReadOnlyList<string> ProgressLines => _progress;

    /// <summary>The last estimate shown.</summary>
    public EstimateResponse? Estimate { get; private set; }

    /// <summary>The last bill shown.</summary>
    public Bill? Bill { get; private set; }

    /// <summary>The last confirmation asked.</summary>
    public PurchaseConfirmation? Confirmation { get; private set; }

    /// <summary>The last top-up confirmation asked.</summary>
    public TopUpConfirmation? TopUpConfirmation { get; private set; }

    /// <inheritdoc/>
    public void Progress(string message) => _progress.Add(message);

    /// <inheritdoc/>
    public void ShowEstimate(EstimateResponse estimate) => Estimate = estimate;

    /// <inheritdoc/>
    public void ShowBill(Bill bill) => Bill = bill;

    /// <inheritdoc/>
    public ValueTask<bool> ConfirmAsync(PurchaseConfirmation confirmation, CancellationToken cancellationToken)
    {
        Confirmation = confirmation;
        return ValueTask.FromResult(_approve);
    }

    /// <inheritdoc/>
    public ValueTask<bool> ConfirmTopUpAsync(TopUpConfirmation confirmation, CancellationToken cancellationToken)
    {
        TopUpConfirmation = confirmation;
        return ValueTask.FromResult(_approve);
    }

    /// <summary>The last transfer or cash-out confirmation asked.</summary>
    public DecreaseConfirmation? DecreaseConfirmation { get; private set; }

    /// <inheritdoc/>
    public bool ConfirmDecrease(DecreaseConfirmation confirmation)
    {
        DecreaseConfirmation = confirmation;
        return _approve;
    }

    /// <inheritdoc/>
    public T WhileCardWorks<T>(string message, Func<T> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        _progress.Add(message);
        return work();
    }
}
