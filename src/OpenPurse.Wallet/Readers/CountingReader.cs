using OpenPurse.Protocol.Apdu;

namespace OpenPurse.Wallet.Readers;

/// <summary>Counts the commands that go through another reader: the purchase's card round trips.</summary>
internal sealed class CountingReader(ICardReader inner) : ICardReader
{
    /// <inheritdoc/>
    public string Name => inner.Name;

    /// <summary>Commands sent so far.</summary>
    public int Commands { get; private set; }

    /// <inheritdoc/>
    public ResponseApdu Transmit(CommandApdu command)
    {
        Commands++;
        return inner.Transmit(command);
    }
}
