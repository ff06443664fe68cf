using System.Buffers.Text;
using System.Security.Cryptography;
using OpenPurse.Operator.Security;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;

namespace OpenPurse.Operator.Credits;

/// <summary>
/// What a CREDIT the operator makes is: its reference, the digest the card writes in its log, the
/// amount, and what it is for (the purpose and source of its value update information, SIG5).
/// </summary>
internal sealed record CreditOrder(Guid ValueUpdateId, ReadOnlyMemory<byte> OrderDigest, Money Amount, string Purpose, Guid SourceId)
{
    /// <summary>
    /// The digest a CREDIT carries: SHA-256 over its purpose and source, so that the card's log names
    /// what the value came from.
    /// </summary>
    public static byte[] DigestOf(string purpose, Guid sourceId) =>
        SHA256.HashData([.. System.Text.Encoding.ASCII.GetBytes($"openpurse-{purpose}:"), .. sourceId.ToByteArray(bigEndian: true)]);

    /// <summary>
    /// Makes the CREDIT in the card's session (<paramref name="session"/>, opened on
    /// <paramref name="greeting"/>): EXTERNAL AUTHENTICATE, the secured CREDIT, and the value update
    /// information the operator signs over it.
    /// </summary>
    public CardCredit Make(ISecurityModule security, CardHostSession session, CardGreeting greeting)
    {
        ArgumentNullException.ThrowIfNull(security);
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(greeting);
        var order = ToCommand(greeting);
        var externalAuthenticate = session.ExternalAuthenticate().ToBytes();
        var creditCommand = session.Credit(order).ToBytes();
        var balance = greeting.Status.BalanceOf(Amount.Currency) ?? Money.Zero(Amount.Currency);
        var valueUpdate = SignedMessage.Sign(security.OperatorKey,
            new ValueUpdate(ValueUpdateId, greeting.CardId.Digits, Amount, balance, Purpose, SourceId,
                Base64Url.EncodeToString(OrderDigest.Span), Base64Url.EncodeToString(SHA256.HashData(creditCommand))),
            MessageTypes.ValueUpdate);
        return new CardCredit(ValueUpdateId, Convert.ToBase64String(externalAuthenticate), Convert.ToBase64String(creditCommand), valueUpdate);
    }

    /// <summary>
    /// Rebuilds the CREDIT's session from the greeting and host challenge it was made for and opens
    /// the card's answer: the card's log record when the answer verifies as this CREDIT's, else null.
    /// </summary>
    public CardLogRecord? OpenAnswer(ISecurityModule security, byte[]? creditGreeting, byte[]? creditChallenge, ResponseApdu answer)
    {
        ArgumentNullException.ThrowIfNull(security);
        if (creditGreeting is null || creditChallenge is null || !CardGreeting.TryParse(creditGreeting, out var greeting))
        {
            return null;
        }

        using var session = security.OpenCardSession(greeting.CardId, creditChallenge, greeting, out _);
        if (session is null)
        {
            return null;
        }

        var order = ToCommand(greeting);
        session.ExternalAuthenticate();
        session.Credit(order);
        return session.TryUnwrap(answer, out var plain) && CardLogRecord.TryParse(plain.Data, out var record)
            && record.Kind == ValueKind.Credit && record.Counter == order.ExpectedCounter + 1 && record.Amount == order.Amount && record.TransactionRef == order.TransactionRef
            ? record
            : null;
    }

    private ValueCommand ToCommand(CardGreeting greeting) => new(ValueUpdateId, OrderDigest, Amount, greeting.Status.Counter);
}
