using System.Security.Cryptography;
using System.Text.Json;
using OpenPurse.Hosting;
using OpenPurse.Operator.Api;
using OpenPurse.Operator.Credit;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Security;
using OpenPurse.Operator.Settlement;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;

namespace OpenPurse.Operator.TopUps;

/// <summary>
/// A top-up's completion (<c>POST /v1/topups/{id}/completion</c>): the card's answer to its CREDIT,
/// opened in the CREDIT's session; an answer that proves it posts the credit (topups → card), and
/// only after that commit is the charge captured.
/// </summary>
internal sealed class TopUpCompletion(
    Database database,
    ISecurityModule security,
    TimeProvider time,
    TopUpResolution resolution,
    TopUpEvents events,
    ICreditAuthorizer? authorizer = null)
{
    /// <summary><c>POST /v1/topups/{id}/completion</c>: the card's answer to the top-up's CREDIT.</summary>
    public async Task<Result<TopUpView>> CompleteAsync(Guid topUpId, CompleteSettlementRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (authorizer is null)
        {
            return TopUpRequests.Unavailable();
        }

        if (CardRecovery.ParseCardAnswer(request.CardAnswer) is not var (answerBytes, answer))
        {
            return new Refusal(ProblemCode.RequestMalformed, "The card answer is not a base64 response APDU.");
        }

        TopUpRow credited;
        await using (var write = await database.BeginWriteAsync(cancellationToken).ConfigureAwait(false))
        {
            var (connection, transaction) = (write.Connection, write.Inner);
            var row = await TopUpRow.LoadAsync(connection, transaction, topUpId).ConfigureAwait(false);
            switch (row?.State)
            {
                case null or TopUpState.Authorizing or TopUpState.Declined:
                    return new Refusal(ProblemCode.TopUpNotFound, $"No top-up {topUpId} was credited to a card.");
                case TopUpState.Credited or TopUpState.Captured:
                    return row.CardAnswer is null || CryptographicOperations.FixedTimeEquals(row.CardAnswer, answerBytes)
                        ? row.View
                        : new Refusal(ProblemCode.CardAnswerInvalid, "The card took this top-up; this card answer is not the one that reported it.");
                case TopUpState.Voiding or TopUpState.Voided:
                    return new Refusal(ProblemCode.TopUpConflict, $"Top-up {topUpId} is {row.State.ToText()}: the card never took its credit.");
            }

            if (!answer.IsOk)
            {
                // Nothing is written: the card's next greeting proves the CREDIT never ran, and the authorization is voided then.
                return new Refusal(ProblemCode.CardRefused, $"The card answered {(ushort)answer.Status:X4} to the credit.");
            }

            var record = row.CreditOrder.OpenAnswer(security, row.CreditGreeting, row.CreditChallenge, answer);
            if (record is null || !await TopUpResolution.CreditedAsync(connection, transaction, row, record, answerBytes, time.GetUtcNow()).ConfigureAwait(false))
            {
                return new Refusal(ProblemCode.CardAnswerInvalid, "The card's answer does not verify for this top-up.");
            }

            await write.CommitAsync(cancellationToken).ConfigureAwait(false);
            credited = row with { State = TopUpState.Credited, BalanceAfterMinor = record.BalanceAfter.MinorUnits };
        }

        events.Entered(credited.Id, TopUpState.Credited, credited.Amount, credited.LastFour);
        // Only now, after the commit that posted the credit: the charge is captured.
        return await resolution.CaptureAsync(credited, cancellationToken).ConfigureAwait(false) is { } captured ? captured.View : credited.View;
    }

    /// <summary>
    /// <c>GET /v1/topups/{id}</c>: the top-up as it is now, for the wallet that proves it holds the
    /// CREDIT the operator gave it for this top-up (<see cref="TopUpReadProof"/>). A proof that does
    /// not hold is answered as an unknown id, so that no answer tells whether somebody else's top-up
    /// exists; a top-up that never had a CREDIT (declined, or still authorizing) cannot be read.
    /// </summary>
    public async Task<Result<TopUpView>> GetAsync(Guid topUpId, string? creditDigest, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(creditDigest))
        {
            return new Refusal(ProblemCode.TopUpProofRequired,
                $"Prove the top-up is yours: send the digest of the CREDIT it gave the card in {TopUpReadProof.WalletHeader}.");
        }

        TopUpRow? row;
        await using (var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false))
        {
            row = await TopUpRow.LoadAsync(connection, null, topUpId).ConfigureAwait(false);
        }

        return row?.Response is { } response
            && CommandProof.Holds(creditDigest, Convert.FromBase64String(JsonSerializer.Deserialize<TopUpResponse>(response, ProtocolJson.Options)!.Credit.Credit))
            ? row.View
            : new Refusal(ProblemCode.TopUpNotFound, $"No top-up {topUpId} that the proof is for.");
    }
}
