using System.Globalization;

namespace OpenPurse.Storage;

/// <summary>
/// Times as the parties keep them in their databases: ISO 8601 in UTC with milliseconds
/// (<c>2026-12-02T10:15:00.123Z</c>), which sorts as text in every engine. A time taken from a
/// signed message is kept to the millisecond here; the message stored beside it has the exact one.
/// </summary>
public static class StoredTime
{
    private const string Pattern = "yyyy-MM-dd'T'HH:mm:ss.fff'Z'";

    /// <summary>The stored form of <paramref name="time"/>, in UTC.</summary>
    public static string Format(DateTimeOffset time) => time.UtcDateTime.ToString(Pattern, CultureInfo.InvariantCulture);

    /// <summary>
    /// A time as <see cref="Format"/> wrote it, or in the round-trip form (<c>"O"</c>) the store's
    /// orders kept before, so that a database written by an earlier version still reads.
    /// </summary>
    /// <exception cref="FormatException">Neither form.</exception>
    public static DateTimeOffset Parse(string text) =>
        DateTimeOffset.TryParseExact(text, Pattern, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time)
            ? time
            : DateTimeOffset.ParseExact(text, "O", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);
}
