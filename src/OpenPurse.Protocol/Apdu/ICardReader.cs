namespace OpenPurse.Protocol.Apdu;

/// <summary>
/// Moves APDUs between a host and a card (the reader/writer 21 of the specification): in-process
/// to an emulated card, or through PC/SC.
/// </summary>
public interface ICardReader
{
    /// <summary>A name to show the person, e.g. "In-process reader (card •••• 0019)".</summary>
    string Name { get; }

    /// <summary>Sends one command APDU and returns the card's response APDU.</summary>
    /// <exception cref="CardRemovedException">The card left the reader.</exception>
    ResponseApdu Transmit(CommandApdu command);
}

/// <summary>The card is no longer in the reader; what it did last is unknown to the host.</summary>
public sealed class CardRemovedException : IOException
{
    /// <summary>Creates the exception.</summary>
    public CardRemovedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with its cause.</summary>
    public CardRemovedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
