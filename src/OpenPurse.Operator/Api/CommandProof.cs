using System.Buffers.Text;
using System.Security.Cryptography;

namespace OpenPurse.Operator.Api;

/// <summary>
/// A wallet's proof that it holds a secured command the operator gave only to it (the DEBIT of a
/// settlement, the CREDIT of a top-up): base64url SHA-256 of the command's bytes. It lets the
/// wallet read what the command belongs to, where an id alone must not.
/// </summary>
internal static class CommandProof
{
    /// <summary>Whether <paramref name="digest"/> is the proof of <paramref name="command"/>, compared in constant time.</summary>
    public static bool Holds(string? digest, ReadOnlySpan<byte> command) =>
        digest is not null && Base64Url.IsValid(digest, out var length) && length == SHA256.HashSizeInBytes
        && CryptographicOperations.FixedTimeEquals(SHA256.HashData(command), Base64Url.DecodeFromChars(digest));
}
