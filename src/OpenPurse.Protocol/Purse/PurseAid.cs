namespace OpenPurse.Protocol;

/// <summary>The OpenPurse application identifier (ISO 7816-5).</summary>
public static class PurseAid
{
    /// <summary>
    /// F0 ‖ "OpenPurse": the leading F marks a proprietary AID that needs no registered
    /// provider identifier (ISO 7816-5 category F).
    /// </summary>
    public static ReadOnlySpan<byte> Value => [0xF0, 0x4F, 0x70, 0x65, 0x6E, 0x50, 0x75, 0x72, 0x73, 0x65];
}
