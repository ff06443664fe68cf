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

    /// <summary>Takes the reader, waiting while another flow holds it.</summary>
    /// <param name="gate">The reader's gate; null holds nothing.</param>
    /// <param name="prompt">Told when the flow waits for another.</param>
    /// <param name="cancellationToken">Ends the wait.</param>
    /// <param name="arrival">
    /// When set, awaited once the reader is held and before the greeting: it returns when a card
    /// answers in the reader, or throws (the agent waits for the person to put their card on it).
    /// </param>
    public static async Task<CardHold> TakeAsync(SemaphoreSlim? gate, IPurchasePrompt prompt, CancellationToken cancellationToken, Func<CancellationToken, Task>? arrival = null)
    {
        if (gate is not null && !await gate.WaitAsync(0, cancellationToken).ConfigureAwait(false))
        {
            prompt.Progress("Waiting for the card reader: another payment or top-up is using the card");
            await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        var hold = new CardHold(gate);
        if (arrival is not null)
        {
            try
            {
                await arrival(cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                hold.Dispose();
                throw;
            }
        }

        return hold;
    }

    /// <summary>Gives the reader back; again is nothing.</summary>
    public void Dispose() => Interlocked.Exchange(ref _gate, null)?.Release();
}
