using Dapper;
using OpenPurse.Storage;

namespace OpenPurse.Operator.Registry;

/// <summary>One row of the admin audit trail: who did what to what, when, how it ended, from where.</summary>
/// <param name="EventId">A version 7 UUID.</param>
/// <param name="OccurredAt">ISO 8601 UTC.</param>
/// <param name="Actor">The admin token's name, <c>anonymous</c>, or the OS user of a station command.</param>
/// <param name="Role">administrator, auditor or station; null when anonymous.</param>
/// <param name="Action">e.g. <c>card.block</c>; <c>none</c> when no admin endpoint matched.</param>
/// <param name="Target">The store id, the masked card number; the path when no endpoint matched.</param>
/// <param name="Status">The HTTP status answered.</param>
/// <param name="Code">The refusal's stable code, if any.</param>
/// <param name="RemoteAddress">The caller's address; null for a station command.</param>
/// <param name="Reason">Why, as the administrator said it: a card's block or unblock; null for the other actions.</param>
internal sealed record AuditEvent(string EventId, string OccurredAt, string Actor, string? Role, string Action, string? Target, long Status, string? Code, string? RemoteAddress, string? Reason = null);

/// <summary>
/// The admin audit trail in the registry (table admin_audit): appended to, never changed; the
/// database itself refuses UPDATE and DELETE on it (migration 0003).
/// </summary>
internal sealed class AuditTrail(Database database, TimeProvider time)
{
    /// <summary>Who a request without a valid token is.</summary>
    public const string Anonymous = "anonymous";

    /// <summary>The role of a station command run on the node's host.</summary>
    public const string StationRole = "station";

    /// <summary>The most rows one read returns.</summary>
    public const int ReadMax = 1000;

    /// <summary>Longest text kept in a column that a caller chooses (a path, a store id).</summary>
    private const int TextLengthMax = 256;

    /// <summary>Appends one event, in its own transaction.</summary>
    public Task AppendAsync(string actor, string? role, string action, string? target, int status, string? code, string? remoteAddress, CancellationToken cancellationToken) =>
        AppendAsync(actor, role, action, target, status, code, remoteAddress, reason: null, cancellationToken);

    /// <summary>Appends one event with the reason its actor gave, in its own transaction.</summary>
    public Task AppendAsync(string actor, string? role, string action, string? target, int status, string? code, string? remoteAddress, string? reason, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(actor);
        ArgumentException.ThrowIfNullOrEmpty(action);
        return database.WriteAsync(
            """
            INSERT INTO admin_audit (event_id, occurred_at, actor, role, action, target, status, code, remote_address, reason)
            VALUES (@eventId, @occurredAt, @actor, @role, @action, @target, @status, @code, @remoteAddress, @reason)
            """,
            new
            {
                eventId = Guid.CreateVersion7(time.GetUtcNow()).ToString(),
                occurredAt = StoredTime.Format(time.GetUtcNow()),
                actor = Bounded(actor),
                role,
                action = Bounded(action),
                target = target is null ? null : Bounded(target),
                status,
                code,
                remoteAddress,
                reason = reason is null ? null : Bounded(reason),
            },
            cancellationToken);
    }

    /// <summary>The newest <paramref name="limit"/> events, newest first.</summary>
    public async Task<IReadOnlyList<AuditEvent>> ReadAsync(int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(limit, ReadMax);
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        var events = await connection.QueryAsync<AuditEvent>(
            """
            SELECT event_id AS EventId, occurred_at AS OccurredAt, actor AS Actor, role AS Role, action AS Action,
                   target AS Target, CAST(status AS BIGINT) AS Status, code AS Code, remote_address AS RemoteAddress, reason AS Reason
            FROM admin_audit ORDER BY occurred_at DESC, event_id DESC LIMIT @limit
            """,
            new { limit }).ConfigureAwait(false);
        return [.. events];
    }

    private static string Bounded(string text) => text.Length <= TextLengthMax ? text : text[..TextLengthMax];
}
