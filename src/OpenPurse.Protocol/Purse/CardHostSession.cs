using System.Diagnostics;
using System.Security.Cryptography;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Channel;

namespace OpenPurse.Protocol.Purse;

/// <summary>
/// The card's answer to INITIALIZE UPDATE: the standard SCP03 fields, then the purse status and
/// the card's newest log record, then a MAC over all of it under S-RMAC, so the host learns the
/// balance and what the card did last in the same exchange that authenticates the card.
/// key diversification data (10: 00 00 ‖ card id) ‖ key information (3: KVN ‖ 03 ‖ i) ‖
/// card challenge (8) ‖ card cryptogram (8) ‖ session counter (4) ‖ purse status (13 + 10n) ‖
/// m (1: 0 or 1) ‖ m × newest log record (73) ‖ status MAC (8).
/// </summary>
/// <remarks>
/// The session counter grows with every INITIALIZE UPDATE the card answers and is kept in its
/// memory, so of two greetings the operator can tell which the card gave last: only the last
/// session's commands can still run on the card. The newest log record tells the operator which
/// order moved the counter last, so a debit whose completion notice was lost is recovered the
/// next time the card is online.
/// </remarks>
public sealed record CardGreeting(CardId CardId, byte KeyVersion, ReadOnlyMemory<byte> CardChallenge, ReadOnlyMemory<byte> CardCryptogram, uint SessionCounter, PurseStatus Status, CardLogRecord? LastRecord, ReadOnlyMemory<byte> MacedData, ReadOnlyMemory<byte> StatusMac)
{
    /// <summary>SCP03 identifier in the key information.</summary>
    public const byte ScpIdentifier = 0x03;

    /// <summary>
    /// The i parameter: R-MAC and R-ENC supported (b5, b6), random card challenge (b1 clear).
    /// GP Amendment D table 5-1 bit values.
    /// </summary>
    public const byte ScpParameter = 0x30;

    internal const int FixedLength = 10 + 3 + Scp03.ChallengeLength + Scp03.CryptogramLength + 4;

    /// <summary>The card's side: encodes a greeting and appends its status MAC under the new session's S-RMAC.</summary>
    public static byte[] Encode(CardId cardId, byte keyVersion, ReadOnlySpan<byte> cardChallenge, ReadOnlySpan<byte> cardCryptogram, uint sessionCounter, PurseStatus status, CardLogRecord? lastRecord, SessionKeys keys)
    {
        ArgumentNullException.ThrowIfNull(status);
        ArgumentNullException.ThrowIfNull(keys);
        var statusBytes = status.ToBytes();
        var recordLength = lastRecord is null ? 0 : CardLogRecord.Length;
        var bytes = new byte[FixedLength + statusBytes.Length + 1 + recordLength + Scp03.MacLength];
        cardId.WriteTo(bytes.AsSpan(2));
        bytes[10] = keyVersion;
        bytes[11] = ScpIdentifier;
        bytes[12] = ScpParameter;
        cardChallenge.CopyTo(bytes.AsSpan(13));
        cardCryptogram.CopyTo(bytes.AsSpan(13 + Scp03.ChallengeLength));
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(FixedLength - 4), sessionCounter);
        statusBytes.CopyTo(bytes, FixedLength);
        var recordOffset = FixedLength + statusBytes.Length;
        bytes[recordOffset] = lastRecord is null ? (byte)0 : (byte)1;
        lastRecord?.WriteTo(bytes.AsSpan(recordOffset + 1));
        ComputeStatusMac(keys.Rmac, bytes.AsSpan(0, bytes.Length - Scp03.MacLength), bytes.AsSpan(bytes.Length - Scp03.MacLength));
        return bytes;
    }

    /// <summary>Parses the answer's data; false when it is malformed. Nothing is verified yet.</summary>
    public static bool TryParse(ReadOnlySpan<byte> data, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out CardGreeting? greeting)
    {
        greeting = null;
        // The purse status's length follows from its purse count, the byte after card id and counter.
        const int PurseCountOffset = FixedLength + CardId.Length + 4;
        if (data.Length < PurseCountOffset + 1 + 1 + Scp03.MacLength || data[0] != 0 || data[1] != 0
            || data[11] != ScpIdentifier || !CardId.TryRead(data[2..], out var cardId))
        {
            return false;
        }

        var statusLength = CardId.Length + 5 + (data[PurseCountOffset] * CardMoney.Length);
        var recordOffset = FixedLength + statusLength;
        if (data.Length < recordOffset + 1 + Scp03.MacLength
            || !PurseStatus.TryParse(data.Slice(FixedLength, statusLength), out var status) || status.CardId != cardId)
        {
            return false;
        }

        CardLogRecord? lastRecord = null;
        var records = data[recordOffset];
        if (records > 1 || data.Length != recordOffset + 1 + (records * CardLogRecord.Length) + Scp03.MacLength
            || (records == 1 && !CardLogRecord.TryParse(data.Slice(recordOffset + 1, CardLogRecord.Length), out lastRecord)))
        {
            return false;
        }

        greeting = new CardGreeting(
            cardId,
            data[10],
            data.Slice(13, Scp03.ChallengeLength).ToArray(),
            data.Slice(13 + Scp03.ChallengeLength, Scp03.CryptogramLength).ToArray(),
            System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(data[(FixedLength - 4)..]),
            status,
            lastRecord,
            data[..^Scp03.MacLength].ToArray(),
            data[^Scp03.MacLength..].ToArray());
        return true;
    }

    /// <summary>Checks the status MAC in fixed time.</summary>
    internal bool HasValidStatusMac(SessionKeys keys)
    {
        Span<byte> mac = stackalloc byte[Scp03.MacLength];
        ComputeStatusMac(keys.Rmac, MacedData.Span, mac);
        return CryptographicOperations.FixedTimeEquals(mac, StatusMac.Span);
    }

    // Status MAC = CMAC(S-RMAC, 16×00 ‖ greeting ‖ 90 00)[..8]: an R-MAC with a zero chain.
    private static void ComputeStatusMac(ReadOnlySpan<byte> rmacKey, ReadOnlySpan<byte> signed, Span<byte> mac)
    {
        using var rmac = new AesCmac(rmacKey);
        Span<byte> input = stackalloc byte[AesCmac.BlockSize + signed.Length + 2];
        input.Clear();
        signed.CopyTo(input[AesCmac.BlockSize..]);
        input[^2] = 0x90;
        Span<byte> full = stackalloc byte[AesCmac.BlockSize];
        rmac.Compute(input, full);
        full[..Scp03.MacLength].CopyTo(mac);
    }
}

/// <summary>Why a card's greeting was not accepted.</summary>
public enum CardAuthenticationError
{
    /// <summary>The card cryptogram is wrong: not the card whose keys were used, or a forged answer.</summary>
    CardCryptogramInvalid,

    /// <summary>The purse status MAC is wrong: the balance readout was changed on the way.</summary>
    StatusMacInvalid,

    /// <summary>The card's keys are of a master key version the security module does not hold.</summary>
    KeyVersionUnknown,
}

/// <summary>
/// The host's side of one card session (the security server's, ST11–ST19): checks the card's
/// greeting, makes EXTERNAL AUTHENTICATE and the secured purse commands, and opens the card's
/// secured answers. Deterministic: the same keys, challenges and commands give the same bytes,
/// so a stateless operator node can rebuild a session from what it stored.
/// </summary>
public sealed class CardHostSession : IDisposable
{
    private readonly SecureChannel _channel;
    private readonly byte[] _hostCryptogram;

    private CardHostSession(SecureChannel channel, byte[] hostCryptogram)
    {
        _channel = channel;
        _hostCryptogram = hostCryptogram;
    }

    /// <summary>The greeting this session was opened on.</summary>
    public CardGreeting Greeting { get; private init; } = null!;

    /// <summary>SELECT the OpenPurse application.</summary>
    public static CommandApdu Select() => new(PurseInstruction.ClaIso, PurseInstruction.Select, 0x04, 0x00, PurseAid.Value, le: 0);

    /// <summary>INITIALIZE UPDATE with the host challenge; key version 0 means the card's current one.</summary>
    public static CommandApdu InitializeUpdate(ReadOnlySpan<byte> hostChallenge, byte keyVersion = 0)
    {
        if (hostChallenge.Length != Scp03.ChallengeLength)
        {
            throw new ArgumentException($"The host challenge has {Scp03.ChallengeLength} bytes.", nameof(hostChallenge));
        }

        return new CommandApdu(PurseInstruction.ClaProprietary, PurseInstruction.InitializeUpdate, keyVersion, 0x00, hostChallenge, le: 0);
    }

    /// <summary>GET DATA: the purse status in clear, for a wallet to show.</summary>
    public static CommandApdu GetData() => new(PurseInstruction.ClaProprietary, PurseInstruction.GetData, 0x00, 0x00, le: 0);

    /// <summary>READ LOG in clear: <paramref name="count"/> records starting <paramref name="offset"/> back from the newest.</summary>
    public static CommandApdu ReadLogClear(byte offset, byte count) =>
        new(PurseInstruction.ClaProprietary, PurseInstruction.ReadLog, offset, count, le: 0);

    /// <summary>
    /// The wallet's final DEBIT or CREDIT: the approval the person gave, in clear, before the
    /// operator's secured command. The approval is outside the C-MAC on purpose: it is the wallet's
    /// word, not the operator's, and the card compares the two.
    /// </summary>
    public static CommandApdu WithApproval(CommandApdu secured, Approval approval)
    {
        ArgumentNullException.ThrowIfNull(secured);
        ArgumentNullException.ThrowIfNull(approval);
        if (secured.Ins is not (PurseInstruction.Debit or PurseInstruction.Credit))
        {
            throw new ArgumentException("Only DEBIT and CREDIT carry an approval.", nameof(secured));
        }

        var data = new byte[Approval.Length + secured.Data.Length];
        approval.ToBytes().CopyTo(data, 0);
        secured.Data.CopyTo(data.AsSpan(Approval.Length));
        return new CommandApdu(secured.Cla, secured.Ins, secured.P1, secured.P2, data, secured.Le);
    }

    /// <summary>
    /// Derives the session keys from the card's static keys and both challenges, and checks the
    /// card cryptogram and the status MAC in fixed time.
    /// </summary>
    /// <returns>The session, or null with the reason.</returns>
    public static CardHostSession? TryOpen(ICmac staticEnc, ICmac staticMac, ReadOnlySpan<byte> hostChallenge, CardGreeting greeting, out CardAuthenticationError error)
    {
        ArgumentNullException.ThrowIfNull(greeting);
        using var keys = Scp03.DeriveSessionKeys(staticEnc, staticMac, hostChallenge, greeting.CardChallenge.Span);
        return TryOpen(keys, hostChallenge, greeting, out error);
    }

    /// <summary>Opens the session with session keys already derived (e.g. inside an HSM).</summary>
    public static CardHostSession? TryOpen(SessionKeys keys, ReadOnlySpan<byte> hostChallenge, CardGreeting greeting, out CardAuthenticationError error)
    {
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(greeting);
        using var sessionMac = new AesCmac(keys.Mac);
        Span<byte> expected = stackalloc byte[Scp03.CryptogramLength];
        Scp03.CardCryptogram(sessionMac, hostChallenge, greeting.CardChallenge.Span, expected);
        if (!CryptographicOperations.FixedTimeEquals(expected, greeting.CardCryptogram.Span))
        {
            error = CardAuthenticationError.CardCryptogramInvalid;
            return null;
        }

        if (!greeting.HasValidStatusMac(keys))
        {
            error = CardAuthenticationError.StatusMacInvalid;
            return null;
        }

        var hostCryptogram = new byte[Scp03.CryptogramLength];
        Scp03.HostCryptogram(sessionMac, hostChallenge, greeting.CardChallenge.Span, hostCryptogram);
        error = default;
        return new CardHostSession(new SecureChannel(keys, SecurityLevel.Full), hostCryptogram) { Greeting = greeting };
    }

    /// <summary>EXTERNAL AUTHENTICATE: must be the first command of the session.</summary>
    public CommandApdu ExternalAuthenticate()
    {
        Debug.Assert(_channel.Counter == 0, "EXTERNAL AUTHENTICATE comes first.");
        return _channel.ExternalAuthenticate(_hostCryptogram);
    }

    /// <summary>READ PURSE: the secured balance readout (BRC).</summary>
    public CommandApdu ReadPurse() =>
        _channel.Wrap(new CommandApdu(PurseInstruction.ClaProprietary, PurseInstruction.ReadPurse, 0x00, 0x00, le: 0));

    /// <summary>READ LOG over the channel: <paramref name="count"/> records starting <paramref name="offset"/> back from the newest.</summary>
    public CommandApdu ReadLog(byte offset, byte count) =>
        _channel.Wrap(new CommandApdu(PurseInstruction.ClaProprietary, PurseInstruction.ReadLog, offset, count, le: 0));

    /// <summary>The secured DEBIT (SPC), without the wallet's approval; see <see cref="WithApproval"/>.</summary>
    public CommandApdu Debit(ValueCommand command) => Value(PurseInstruction.Debit, command);

    /// <summary>The secured CREDIT (value update), without the wallet's approval; see <see cref="WithApproval"/>.</summary>
    public CommandApdu Credit(ValueCommand command) => Value(PurseInstruction.Credit, command);

    /// <summary>Checks the R-MAC of a card answer and decrypts it. False when it was changed on the way.</summary>
    public bool TryUnwrap(ResponseApdu response, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out ResponseApdu? plain) =>
        _channel.TryUnwrap(response, out plain);

    /// <inheritdoc/>
    public void Dispose()
    {
        _channel.Dispose();
        CryptographicOperations.ZeroMemory(_hostCryptogram);
    }

    private CommandApdu Value(byte ins, ValueCommand command)
    {
        ArgumentNullException.ThrowIfNull(command);
        if (!command.Amount.IsPositive)
        {
            throw new ArgumentException("A debit or credit moves a positive amount.", nameof(command));
        }

        return _channel.Wrap(new CommandApdu(PurseInstruction.ClaProprietary, ins, 0x00, 0x00, command.ToBytes(), le: 0));
    }
}
