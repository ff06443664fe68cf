namespace OpenPurse.Protocol.Apdu;

/// <summary>An ISO/IEC 7816-4 response APDU: data followed by the two status bytes.</summary>
public sealed class ResponseApdu
{
    private readonly byte[] _data;

    /// <summary>Creates a response.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The data is longer than 256 bytes.</exception>
    public ResponseApdu(ReadOnlySpan<byte> data, StatusWord status)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(data.Length, DataLengthMax, nameof(data));
        _data = data.ToArray();
        Status = status;
    }

    /// <summary>The most data a short response carries.</summary>
    public const int DataLengthMax = 256;

    /// <summary>The response data; empty when there is none.</summary>
    public ReadOnlySpan<byte> Data => _data;

    /// <summary>SW1 SW2.</summary>
    public StatusWord Status { get; }

    /// <summary>Whether the card answered 9000.</summary>
    public bool IsOk => Status == StatusWord.Ok;

    /// <summary>A response with no data.</summary>
    public static ResponseApdu Of(StatusWord status) => new([], status);

    /// <summary>Encodes data ‖ SW1 ‖ SW2.</summary>
    public byte[] ToBytes()
    {
        var bytes = new byte[_data.Length + 2];
        _data.CopyTo(bytes, 0);
        bytes[^2] = (byte)((ushort)Status >> 8);
        bytes[^1] = (byte)Status;
        return bytes;
    }

    /// <summary>Parses data ‖ SW1 ‖ SW2 as a reader returns it.</summary>
    /// <exception cref="FormatException">Fewer than two bytes, or more than 258.</exception>
    public static ResponseApdu Parse(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < 2 || bytes.Length > DataLengthMax + 2)
        {
            throw new FormatException($"A response APDU has 2..{DataLengthMax + 2} bytes, not {bytes.Length}.");
        }

        return new ResponseApdu(bytes[..^2], (StatusWord)((bytes[^2] << 8) | bytes[^1]));
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Convert.ToHexString(_data)} {(ushort)Status:X4}";
}
