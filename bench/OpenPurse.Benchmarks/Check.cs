using System.Diagnostics.CodeAnalysis;

namespace OpenPurse.Benchmarks;

/// <summary>
/// Always-on checks for benchmark setups: a benchmark that measures a failing path (a refused
/// MAC, a 6982 answer) reports a wrong number, so setups prove the path works before timing it.
/// </summary>
internal static class Check
{
    /// <exception cref="InvalidOperationException">The bytes differ.</exception>
    public static void Equal(ReadOnlySpan<byte> expected, ReadOnlySpan<byte> actual, string what)
    {
        if (!expected.SequenceEqual(actual))
        {
            throw new InvalidOperationException($"{what}: expected {Convert.ToHexString(expected)}, got {Convert.ToHexString(actual)}.");
        }
    }

    /// <exception cref="InvalidOperationException">The condition is false.</exception>
    public static void That([DoesNotReturnIf(false)] bool condition, string what)
    {
        if (!condition)
        {
            throw new InvalidOperationException($"Benchmark precondition failed: {what}.");
        }
    }
}
