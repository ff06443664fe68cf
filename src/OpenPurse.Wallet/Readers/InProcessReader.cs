using OpenPurse.Card;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Wallet.Purchase;

namespace OpenPurse.Wallet.Readers;

/// <summary>
/// The default reader: an emulated card in this process, opened from its memory file. The bytes are
/// the same a PC/SC reader would carry.
/// </summary>
public sealed class InProcessReader : ICardReader, IDisposable
{
    private readonly EmulatedCard _card;
    private readonly bool _ownsCard;

    /// <summary>Wraps a card that is already open.</summary>
    /// <param name="card">The card.</param>
    /// <param name="ownsCard">Whether disposing the reader closes the card.</param>
    public InProcessReader(EmulatedCard card, bool ownsCard = false)
    {
        ArgumentNullException.ThrowIfNull(card);
        _card = card;
        _ownsCard = ownsCard;
    }

    /// <inheritdoc/>
    public string Name => $"In-process reader (card {_card.CardId.Masked})";

    /// <summary>Opens the card whose memory file is at <paramref name="path"/>; the reader owns it.</summary>
    /// <exception cref="WalletException">No card there, the file is in use, or it is not an OpenPurse card.</exception>
    public static InProcessReader Open(string path) => new(OpenCard(path), ownsCard: true);

    /// <summary>Opens the card whose memory file is at <paramref name="path"/>, for this process alone.</summary>
    /// <exception cref="WalletException">No card there, the file is in use, or it is not an OpenPurse card.</exception>
    public static EmulatedCard OpenCard(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
        {
            throw new WalletException(WalletErrors.CardNotFound, $"There is no card at {path}. Give its file with --card or OPENPURSE_CARD.");
        }

        try
        {
            return EmulatedCard.Open(path);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            // IOException includes the sharing violation of a card another process holds.
            throw new WalletException(WalletErrors.CardUnreadable, $"The card at {path} cannot be opened: {e.Message}", innerException: e);
        }
    }

    /// <inheritdoc/>
    public ResponseApdu Transmit(CommandApdu command)
    {
        ArgumentNullException.ThrowIfNull(command);
        try
        {
            return ResponseApdu.Parse(_card.Transmit(command.ToBytes()));
        }
        catch (ObjectDisposedException e)
        {
            throw new CardRemovedException("The card was closed.", e);
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_ownsCard)
        {
            _card.Dispose();
        }
    }
}
