namespace OpenPurse.Wallet.Purchase;

/// <summary>
/// The card reader held for one card conversation when several flows share it (the agent): taken
/// before the greeting, given back when the flow has read the card for the last time (the balance
/// after the value command), so that no other flow's SELECT ends a session the card is in. Without
/// a gate (the CLI: one flow, one process) it holds nothing.
/// </summary>
internal sealed class CardHold : IDisposable
{
    private SemaphoreSlim? _gate;

    private CardHold(SemaphoreSlim? gate) => _gate = gate;

    public static async Task<CardHold> TakeAsync(SemaphoreSlim? gate, IPurchasePrompt prompt, CancellationToken cancellationToken)
    {
        if (gate is not null && !await gate.WaitAsync(0, cancellationToken).ConfigureAwait(false))
        {
            prompt.Progress("Waiting for the card reader: another payment or top-up is using the card");
            await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        return new CardHold(gate);
    }

    /// <summary>Gives the reader back; again is nothing.</summary>
    public void Dispose() => Interlocked.Exchange(ref _gate, null)?.Release();
}
