namespace OpenPurse.Protocol.Channel;

/// <summary>
/// An AES-CMAC (NIST SP 800-38B) under one key. The key may live in process memory
/// (<see cref="AesCmac"/>) or inside a key vault or HSM that only hands out MACs.
/// </summary>
public interface ICmac
{
    /// <summary>Computes the full 16-byte CMAC of <paramref name="message"/> into <paramref name="mac"/>.</summary>
    /// <exception cref="ArgumentException"><paramref name="mac"/> is shorter than 16 bytes.</exception>
    void Compute(ReadOnlySpan<byte> message, Span<byte> mac);
}
