using System.Data.Common;
using Dapper;
using OpenPurse.Operator.Registry;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Storage;

namespace OpenPurse.Operator.TopUps;

/// <summary>A top-up as stored. It holds no card number, expiry, PIN or card data: the last four digits only.</summary>
internal sealed record TopUpRow
{
    /// <summary>The SET clause every change of a top-up carries, with the parameter <c>@now</c>.</summary>
    public const string Touch = "updated_at = @now";

    private const string Select =
        """
        SELECT topup_id AS TopUpId, card_id AS CardId, amount_minor AS AmountMinor, currency AS Currency, request_digest AS RequestDigest,
               state AS StoredState, authorization_id AS AuthorizationId, last_four AS LastFour, decline_code AS DeclineCode,
               credit_greeting AS CreditGreeting, credit_challenge AS CreditChallenge, response AS Response, card_answer AS CardAnswer,
               balance_after_minor AS BalanceAfterMinor, updated_at AS StoredUpdatedAt
        FROM topups WHERE
        """;

    public required string TopUpId { get; init; }

    public required string CardId { get; init; }

    public required long AmountMinor { get; init; }

    public required string Currency { get; init; }

    public required string RequestDigest { get; init; }

    public required TopUpState State { get; init; }

    public string? AuthorizationId { get; init; }

    public string? LastFour { get; init; }

    public string? DeclineCode { get; init; }

    public byte[]? CreditGreeting { get; init; }

    public byte[]? CreditChallenge { get; init; }

    public string? Response { get; init; }

    public byte[]? CardAnswer { get; init; }

    public long? BalanceAfterMinor { get; init; }

    /// <summary>When the top-up last changed (or, authorizing, when its wallet last asked).</summary>
    public DateTimeOffset UpdatedAt { get; init; }

    public Guid Id => Guid.Parse(TopUpId);

    public Money Amount => new(AmountMinor, Protocol.Currency.FromCode(Currency));

    /// <summary>The top-up's CREDIT: its id is the value update's and the source's, its digest names it in the card's log.</summary>
    public Credits.CreditOrder CreditOrder => new(Id, CreditDigests.TopUp(Id), Amount, ValueUpdatePurposes.TopUp, Id);

    /// <summary>What the top-up's journal entry needs of it.</summary>
    public Movement Movement => new(TopUpId, CardId, null, Amount);

    public TopUpView View => new(Id, State.ToText(), Amount, LastFour ?? "", BalanceAfterMinor is { } after ? new Money(after, Amount.Currency) : null);

    private string StoredState
    {
        init => State = TopUpStates.Machine.Parse(value);
    }

    private string StoredUpdatedAt
    {
        init => UpdatedAt = StoredTime.Parse(value);
    }

    public static Task<TopUpRow?> LoadAsync(DbConnection connection, DbTransaction? transaction, Guid topUpId) =>
        LoadAsync(connection, transaction, "topup_id = @id", new { id = topUpId.ToString() });

    public static async Task<TopUpRow?> LoadAsync(DbConnection connection, DbTransaction? transaction, string where, object parameters) =>
        await connection.QuerySingleOrDefaultAsync<TopUpRow>(Select + " " + where, parameters, transaction).ConfigureAwait(false);

    public static async Task<IReadOnlyList<TopUpRow>> ListAsync(DbConnection connection, string where, object parameters) =>
        [.. await connection.QueryAsync<TopUpRow>(Select + " " + where, parameters).ConfigureAwait(false)];
}
