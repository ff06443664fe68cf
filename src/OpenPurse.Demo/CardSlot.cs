using OpenPurse.Card;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Wallet.Readers;

namespace OpenPurse.Demo;

/// <summary>
/// The wallet agent's reader in the demo: empty until a card is put on it. The agent starts before
/// the operator that issues the card (the operator's pages must know the agent's address), so the
/// card comes later, as a person puts theirs on a reader the agent already watches.
/// </summary>
internal sealed class CardSlot : ICardReader, IDisposable
{
    private readonly Lock _lock = new();
    private EmulatedCard? _card;

    /// <inheritdoc/>
    public string Name
    {
        get
        {
            lock (_lock)
            {
                return _card is null ? "In-process reader (empty)" : $"In-process reader (card {_card.CardId.Masked})";
            }
        }
    }

    /// <summary>Whether a card is on the reader.</summary>
    public bool HasCard
    {
        get
        {
            lock (_lock)
            {
                return _card is not null;
            }
        }
    }

    /// <summary>Puts <paramref name="card"/> on the reader; the slot closes it when the card is taken off or the slot is disposed.</summary>
    public void Insert(EmulatedCard card)
    {
        ArgumentNullException.ThrowIfNull(card);
        lock (_lock)
        {
            if (_card is not null)
            {
                throw new InvalidOperationException("A card is already on the reader.");
            }

            _card = card;
        }
    }

    /// <summary>Takes the card off the reader and closes it (its file keeps what it holds).</summary>
    public void Remove()
    {
        lock (_lock)
        {
            _card?.Dispose();
            _card = null;
        }
    }

    /// <inheritdoc/>
    public ResponseApdu Transmit(CommandApdu command)
    {
        ArgumentNullException.ThrowIfNull(command);
        lock (_lock)
        {
            if (_card is null)
            {
                throw new CardRemovedException("No card is on the reader.");
            }

            // The in-process reader's own mapping of a closed card to a removed one.
            return new InProcessReader(_card).Transmit(command);
        }
    }

    public void Dispose() => Remove();
}
