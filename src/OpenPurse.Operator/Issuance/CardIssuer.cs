using System.Security.Cryptography;
using Dapper;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Security;
using OpenPurse.Operator.Settlement;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Purse;
using OpenPurse.Storage;

namespace OpenPurse.Operator.Issuance;

/// <summary>
/// The issuing station: registers a new card and hands out its diversified keys for
/// personalization; loads value onto a card it holds in a reader, recording the value issued.
/// </summary>
internal sealed class CardIssuer(Database database, ISecurityModule security, TimeProvider time)
{
    /// <summary>Card numbers start with this issuer prefix (the first 6 digits).</summary>
    private const ulong IssuerPrefix = 940_000;

    public async Task<IssuedCardKeys> IssueAsync(CancellationToken cancellationToken)
    {
        for (var attempt = 0; attempt < 8; attempt++)
        {
            var serial = (IssuerPrefix * 1_000_000_000) + (ulong)RandomNumberGenerator.GetInt32(1_000_000_000);
            var cardId = CardId.FromSerial(serial);
            // Under the newest master key version, which the card row records.
            var keys = security.IssueCardKeys(cardId);
            var inserted = await database.WriteAsync(
                "INSERT INTO cards (card_id, key_version, status, counter, issued_at) VALUES (@id, @version, 'active', 0, @now) ON CONFLICT (card_id) DO NOTHING",
                new { id = cardId.Digits, version = (long)keys.KeyVersion, now = StoredTime.Format(time.GetUtcNow()) }, cancellationToken).ConfigureAwait(false);
            if (inserted == 1)
            {
                return keys;
            }

            CryptographicOperations.ZeroMemory(keys.EncKey);
            CryptographicOperations.ZeroMemory(keys.MacKey);
        }

        throw new InvalidOperationException("Could not find a free card number.");
    }

    /// <summary>
    /// Loads value onto a registered card in the issuing station's reader (a CREDIT over the secure
    /// channel). The load is recorded as pending before the card gets the CREDIT and posted when the
    /// card's answer verifies; if the station dies in between, the card's next greeting settles it
    /// (<see cref="CardRecovery.ResolveLoadAsync"/>), so value is never on a card without being in the ledger.
    /// </summary>
    /// <exception cref="InvalidOperationException">The card refused, is not authentic, or has something unfinished.</exception>
    public async Task<Money> LoadAsync(ICardReader reader, Money amount, CancellationToken cancellationToken)
    {
        Expect(reader.Transmit(CardHostSession.Select()));
        var hostChallenge = RandomNumberGenerator.GetBytes(8);
        var answer = Expect(reader.Transmit(CardHostSession.InitializeUpdate(hostChallenge)));
        if (!CardGreeting.TryParse(answer.Data, out var greeting))
        {
            throw new InvalidOperationException("The card's greeting is malformed.");
        }

        using var session = security.OpenCardSession(greeting.CardId, hostChallenge, greeting, out var error)
            ?? throw new InvalidOperationException($"The card is not authentic ({error}).");
        var loadId = Guid.CreateVersion7(time.GetUtcNow());
        var order = new ValueCommand(loadId, CreditDigests.Load(loadId), amount, greeting.Status.Counter);
        await using (var pending = await database.BeginWriteAsync(cancellationToken).ConfigureAwait(false))
        {
            // One order per card at a time: what an earlier station run or a purchase left unfinished first.
            if (!await CardRecovery.ResolveLoadAsync(pending.Connection, pending.Inner, greeting, time.GetUtcNow()).ConfigureAwait(false)
                || await CardRecovery.FindUnresolvedAsync(pending.Connection, pending.Inner, greeting.CardId).ConfigureAwait(false) is not null)
            {
                throw new InvalidOperationException($"Card {greeting.CardId.Masked} has an unfinished load or settlement; bring it online (openpurse sync) first.");
            }

            await pending.Connection.ExecuteAsync(
                """
                INSERT INTO card_loads (load_id, card_id, amount_minor, currency, expected_counter, session_counter, state, created_at)
                VALUES (@loadId, @cardId, @amount, @currency, @counter, @session, @state, @now)
                """,
                new
                {
                    loadId = loadId.ToString(),
                    cardId = greeting.CardId.Digits,
                    amount = amount.MinorUnits,
                    currency = amount.Currency.Code,
                    counter = (long)greeting.Status.Counter,
                    session = (long)greeting.SessionCounter,
                    state = CardLoadStates.Machine.Text(CardLoadState.Pending),
                    now = StoredTime.Format(time.GetUtcNow()),
                },
                pending.Inner).ConfigureAwait(false);
            await pending.CommitAsync(cancellationToken).ConfigureAwait(false);
        }

        Expect(reader.Transmit(session.ExternalAuthenticate()));
        var credited = Expect(reader.Transmit(CardHostSession.WithApproval(session.Credit(order), order.ToApproval())));
        if (!session.TryUnwrap(credited, out var plain) || !CardLogRecord.TryParse(plain.Data, out var record) || record.TransactionRef != loadId
            || record.Kind != ValueKind.Credit || record.Counter != order.ExpectedCounter + 1)
        {
            throw new InvalidOperationException("The card's answer to the load does not verify.");
        }

        await using var write = await database.BeginWriteAsync(cancellationToken).ConfigureAwait(false);
        await CardRecovery.PostLoadAsync(write.Connection, write.Inner, loadId.ToString(), greeting.CardId.Digits, record, time.GetUtcNow()).ConfigureAwait(false);
        await write.CommitAsync(cancellationToken).ConfigureAwait(false);
        return record.BalanceAfter;
    }

    /// <summary>Blocks the card (<see cref="CardStates.Block"/>); false when there is no such card. A card blocked already stays so.</summary>
    public async Task<bool> BlockAsync(CardId cardId, CancellationToken cancellationToken) =>
        await CardStates.RunAsync(database, cardId, CardStates.Block, time.GetUtcNow(), cancellationToken).ConfigureAwait(false) != CardChange.Unknown;

    private static ResponseApdu Expect(ResponseApdu answer) =>
        answer.IsOk ? answer : throw new InvalidOperationException($"The card answered {(ushort)answer.Status:X4}.");
}
