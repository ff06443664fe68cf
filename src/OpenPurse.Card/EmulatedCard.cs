using OpenPurse.Protocol;

namespace OpenPurse.Card;

/// <summary>What the issuer writes into a new card.</summary>
/// <param name="CardId">The card number.</param>
/// <param name="KeyVersion">Version of the diversified keys (INITIALIZE UPDATE P1).</param>
/// <param name="EncKey">K-ENC, diversified for this card from the issuer's master key.</param>
/// <param name="MacKey">K-MAC, diversified likewise.</param>
/// <param name="BalanceMaxMinorUnits">The most any one purse may hold.</param>
public sealed record CardPersonalization(CardId CardId, byte KeyVersion, ReadOnlyMemory<byte> EncKey, ReadOnlyMemory<byte> MacKey, long BalanceMaxMinorUnits);

/// <summary>
/// An OpenPurse card in software: the purse applet over a memory file that survives the process
/// and power loss. Answers ISO 7816-4 APDUs like a contact card behind a reader.
/// </summary>
/// <remarks>Calls are serialized, as a card processes one APDU at a time.</remarks>
public sealed class EmulatedCard : IDisposable
{
    private readonly Lock _lock = new();
    private readonly PurseApplet _applet;

    private EmulatedCard(PurseApplet applet) => _applet = applet;

    /// <summary>
    /// Answer to reset: direct convention, T=1 (vpcd and PC/SC readers connect with T=1), historical
    /// bytes "OpenPurs", and the check byte T=1 requires.
    /// </summary>
    public static ReadOnlyMemory<byte> Atr { get; } = BuildAtr();

    /// <summary>The card number.</summary>
    public CardId CardId => _applet.State.CardId;

    /// <summary>Writes a new card's memory file (permissions 0600) and opens it.</summary>
    /// <exception cref="IOException">The file exists already.</exception>
    public static EmulatedCard Create(string path, CardPersonalization personalization)
    {
        ArgumentNullException.ThrowIfNull(personalization);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.ReadWrite, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        return Create(new FileStream(path, options), personalization);
    }

    /// <summary>Opens an existing card's memory file.</summary>
    /// <exception cref="InvalidDataException">The file is not an OpenPurse card.</exception>
    public static EmulatedCard Open(string path) =>
        Open(new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None));

    internal static EmulatedCard Create(Stream stream, CardPersonalization personalization)
    {
        if (personalization.EncKey.Length != CardState.KeyLength || personalization.MacKey.Length != CardState.KeyLength)
        {
            throw new ArgumentException($"Card keys are AES-128 ({CardState.KeyLength} bytes).", nameof(personalization));
        }

        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(personalization.BalanceMaxMinorUnits);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(personalization.BalanceMaxMinorUnits, Money.MaxMinorUnits);
        var state = new CardState
        {
            CardId = personalization.CardId,
            KeyVersion = personalization.KeyVersion,
            EncKey = personalization.EncKey.ToArray(),
            MacKey = personalization.MacKey.ToArray(),
            BalanceMaxMinor = personalization.BalanceMaxMinorUnits,
            Counter = 0,
            SessionCounter = 0,
            Purses = [],
            Log = [],
        };
        var memory = new CardMemory(stream, CardState.ImageLength);
        memory.Format(state.ToBytes());
        return new EmulatedCard(new PurseApplet(memory));
    }

    internal static EmulatedCard Open(Stream stream) => new(new PurseApplet(new CardMemory(stream, CardState.ImageLength)));

    internal CardState State => _applet.State;

    /// <summary>Sends one command APDU and returns the response APDU (data ‖ SW1 SW2).</summary>
    public byte[] Transmit(ReadOnlySpan<byte> command)
    {
        lock (_lock)
        {
            return _applet.Process(command).ToBytes();
        }
    }

    /// <summary>Warm reset: the session and selection are gone, the memory stays.</summary>
    public void Reset()
    {
        lock (_lock)
        {
            _applet.Reset();
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _applet.Dispose();

    private static byte[] BuildAtr()
    {
        byte[] historical = "OpenPurs"u8.ToArray();
        // TS=3B direct; T0: TD1 present, K=8; TD1: TD2 present, T=0; TD2: T=1.
        byte[] atr = [0x3B, (byte)(0x80 | historical.Length), 0x80, 0x01, .. historical, 0x00];
        byte check = 0;
        for (var i = 1; i < atr.Length - 1; i++)
        {
            check ^= atr[i];
        }

        atr[^1] = check;
        return atr;
    }
}
