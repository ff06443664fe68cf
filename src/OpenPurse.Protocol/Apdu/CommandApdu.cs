using System.Diagnostics;

namespace OpenPurse.Protocol.Apdu;

/// <summary>
/// An ISO/IEC 7816-4 command APDU in short form: CLA INS P1 P2 [Lc data] [Le].
/// </summary>
/// <remarks>
/// Short form only: every OpenPurse command and answer fits in 255/256 bytes, and a
/// card that never parses extended lengths has less to get wrong.
/// </remarks>
public sealed class CommandApdu
{
    /// <summary>The most data bytes a short command carries.</summary>
    public const int DataLengthMax = 255;

    private readonly byte[] _data;

    /// <summary>Creates a command.</summary>
    /// <param name="cla">Class byte.</param>
    /// <param name="ins">Instruction byte.</param>
    /// <param name="p1">Parameter 1.</param>
    /// <param name="p2">Parameter 2.</param>
    /// <param name="data">Command data (copied); empty for none.</param>
    /// <param name="le">Expected response length: null for none, 0 for "up to 256".</param>
    /// <exception cref="ArgumentOutOfRangeException">The data is longer than <see cref="DataLengthMax"/> or Le is not 0..255.</exception>
    public CommandApdu(byte cla, byte ins, byte p1, byte p2, ReadOnlySpan<byte> data = default, int? le = null)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(data.Length, DataLengthMax, nameof(data));
        if (le is < 0 or > 255)
        {
            throw new ArgumentOutOfRangeException(nameof(le), le, "Le of a short APDU is 0..255 (0 means 256).");
        }

        Cla = cla;
        Ins = ins;
        P1 = p1;
        P2 = p2;
        _data = data.ToArray();
        Le = le;
    }

    /// <summary>Class byte.</summary>
    public byte Cla { get; }

    /// <summary>Instruction byte.</summary>
    public byte Ins { get; }

    /// <summary>Parameter 1.</summary>
    public byte P1 { get; }

    /// <summary>Parameter 2.</summary>
    public byte P2 { get; }

    /// <summary>The command data; empty when there is none.</summary>
    public ReadOnlySpan<byte> Data => _data;

    /// <summary>Expected response length, or null when the command expects no data.</summary>
    public int? Le { get; }

    /// <summary>Encodes the command as bytes for a reader.</summary>
    public byte[] ToBytes()
    {
        var length = 4 + (_data.Length > 0 ? 1 + _data.Length : 0) + (Le is null ? 0 : 1);
        var bytes = new byte[length];
        bytes[0] = Cla;
        bytes[1] = Ins;
        bytes[2] = P1;
        bytes[3] = P2;
        var offset = 4;
        if (_data.Length > 0)
        {
            bytes[offset++] = (byte)_data.Length;
            _data.CopyTo(bytes, offset);
            offset += _data.Length;
        }

        if (Le is { } le)
        {
            bytes[offset++] = (byte)le;
        }

        Debug.Assert(offset == length, "Encoded length must match the computed length.");
        return bytes;
    }

    /// <summary>
    /// Parses a short command APDU (ISO 7816-3 cases 1 to 4).
    /// </summary>
    /// <returns>False when the bytes are not a well-formed short APDU.</returns>
    public static bool TryParse(ReadOnlySpan<byte> bytes, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out CommandApdu? command)
    {
        command = null;
        if (bytes.Length < 4)
        {
            return false;
        }

        var body = bytes[4..];
        switch (body.Length)
        {
            case 0: // Case 1: header only.
                command = new CommandApdu(bytes[0], bytes[1], bytes[2], bytes[3]);
                return true;
            case 1: // Case 2: Le only.
                command = new CommandApdu(bytes[0], bytes[1], bytes[2], bytes[3], default, body[0]);
                return true;
        }

        var lc = body[0];
        if (lc == 0)
        {
            // Lc = 0 would mean extended length, which this card does not speak.
            return false;
        }

        if (body.Length == 1 + lc) // Case 3: data, no Le.
        {
            command = new CommandApdu(bytes[0], bytes[1], bytes[2], bytes[3], body.Slice(1, lc));
            return true;
        }

        if (body.Length == 2 + lc) // Case 4: data and Le.
        {
            command = new CommandApdu(bytes[0], bytes[1], bytes[2], bytes[3], body.Slice(1, lc), body[^1]);
            return true;
        }

        return false;
    }

    /// <summary>A copy with another class byte and data, the header otherwise unchanged.</summary>
    public CommandApdu With(byte cla, ReadOnlySpan<byte> data) => new(cla, Ins, P1, P2, data, Le);

    /// <inheritdoc/>
    public override string ToString() => Convert.ToHexString(ToBytes());
}
