using OpenPurse.Testing;

namespace OpenPurse.Hostile.Tests;

/// <summary>
/// The refusal codes docs/errors.md documents for one party, with the HTTP status each is answered
/// with (<see cref="ErrorsDocument"/>), so that a code the servers answer but the document does not
/// name, or names with another status, fails the suite.
/// </summary>
internal sealed class DocumentedCodes
{
    private readonly IReadOnlyDictionary<string, int> _statuses;

    private DocumentedCodes(string section) => _statuses = ErrorsDocument.StatusesOf(section);

    public static DocumentedCodes Operator { get; } = new("Operator");

    public static DocumentedCodes Store { get; } = new("Store (and mall)");

    public static DocumentedCodes Authorizer { get; } = new("Credit authorizer");

    public static DocumentedCodes Agent { get; } = new("Wallet agent");

    /// <summary>The documented status of <paramref name="code"/>, or null when the document does not name it.</summary>
    public int? StatusOf(string code) => _statuses.TryGetValue(code, out var status) ? status : null;
}
