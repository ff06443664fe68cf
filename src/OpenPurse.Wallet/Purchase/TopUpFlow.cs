using System.Security.Cryptography;
using System.Text.Json;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Wallet.Http;
using OpenPurse.Wallet.Readers;

namespace OpenPurse.Wallet.Purchase;

/// <summary>What the person is asked to agree to before a top-up's CREDIT runs.</summary>
/// <param name="Amount">What the CREDIT adds, and what the credit card is charged.</param>
/// <param name="LastFour">The last four digits of the credit card charged.</param>
/// <param name="Balance">The card's balance now.</param>
/// <param name="BalanceAfter">The card's balance once the CREDIT ran.</param>
/// <param name="CardMasked">The e-purse card's number, masked.</param>
public sealed record TopUpConfirmation(Money Amount, string LastFour, Money Balance, Money BalanceAfter, string CardMasked);

/// <summary>The person's side of a top-up: a purchase prompt that can also ask about a top-up.</summary>
public interface ITopUpPrompt : IPurchasePrompt
{
    /// <summary>Shows what the top-up adds and charges and asks the person to agree. Nothing is written to the card unless this returns true.</summary>
    ValueTask<bool> ConfirmTopUpAsync(TopUpConfirmation confirmation, CancellationToken cancellationToken);
}

/// <summary>What a top-up did.</summary>
/// <param name="TopUpId">The top-up.</param>
/// <param name="ValueUpdateId">The CREDIT's transaction reference, as the card's log keeps it.</param>
/// <param name="Amount">What the card got.</param>
/// <param name="LastFour">The credit card charged.</param>
/// <param name="State">The operator's state of the top-up after the card's answer (credited or captured).</param>
/// <param name="Balance">The card's balance after the CREDIT, as the card tells it.</param>
internal sealed record TopUpResult(Guid TopUpId, Guid ValueUpdateId, Money Amount, string LastFour, string State, Money Balance);

/// <summary>
/// A top-up by credit card (docs/protocol.md, "Top-up"): the authorizer's key from the operator
/// (signed by it), the card data encrypted to that key, the card's greeting with a fresh host
/// challenge, the top-up to the operator, which has the charge authorized and answers with a CREDIT
/// and SIG5; SIG5 checked against what was asked, the person agrees, the card takes the CREDIT, and
/// its answer goes back so that the operator captures the charge. When the person does not agree,
/// a sync follows at once: the card's greeting shows the operator that the CREDIT never ran, and it
/// voids the authorization.
/// </summary>
internal sealed class TopUpFlow(OperatorApi operatorApi, ICardReader reader, ITopUpPrompt prompt)
{
    /// <summary>How often the top-up is sent in all when the authorizer does not answer.</summary>
    public const int AttemptsMax = 4;

    private const string AuthorizerUnavailable = "operator.unavailable:authorizer.unavailable";

    /// <summary>The wait before the first retry; doubled before each next one.</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>When set, held from the greeting to the balance read after the CREDIT: see <see cref="CardHold"/> and <see cref="PurchaseFlow.CardConversation"/>.</summary>
    public SemaphoreSlim? CardConversation { get; init; }

    /// <summary>When set, waits for a card in the reader before the greeting (see <see cref="CardHold"/>): the agent's person puts the card on the reader after asking to pay.</summary>
    public Func<CancellationToken, Task>? CardArrival { get; init; }

    public async Task<TopUpResult> RunAsync(Money amount, CardData cardData, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(cardData);
        if (!amount.IsPositive)
        {
            throw new WalletException(WalletErrors.InvalidRequest, "The amount to top up must be more than zero.");
        }

        using var trace = WalletTrace.Start("topup");
        prompt.Progress("Asking the operator for the credit authorizer's key");
        var encrypted = await EncryptAsync(cardData, cancellationToken).ConfigureAwait(false);

        var card = new WalletCard(reader);
        using var hold = await CardHold.TakeAsync(CardConversation, prompt, cancellationToken, CardArrival).ConfigureAwait(false);
        var hostChallenge = RandomNumberGenerator.GetBytes(8);
        var (greeting, greetingData) = prompt.WhileCardWorks("Reading your card", () =>
        {
            card.Select();
            return card.InitializeUpdate(hostChallenge);
        });

        var topUpId = Guid.NewGuid();
        var request = new TopUpRequest(topUpId, amount, Convert.ToBase64String(hostChallenge), Convert.ToBase64String(greetingData), encrypted);
        prompt.Progress($"Asking the operator to charge {amount} to the credit card");
        var response = await SendAsync(request, cancellationToken).ConfigureAwait(false);
        var lastFour = cardData.Pan[^4..];
        if (response.TopUpId != topUpId || response.Amount != amount || response.LastFour != lastFour)
        {
            throw new WalletException(WalletErrors.TopUpMismatch, "The operator's answer is not about this top-up, amount or credit card. Nothing was written to the card.");
        }

        var verified = await CreditOnCard.VerifyAsync(operatorApi, response.Credit, greeting, new ExpectedCredit(ValueUpdatePurposes.TopUp, topUpId, amount), cancellationToken).ConfigureAwait(false);
        if (!await prompt.ConfirmTopUpAsync(new TopUpConfirmation(amount, lastFour, verified.Update.Balance, verified.BalanceAfter, greeting.CardId.Masked), cancellationToken).ConfigureAwait(false))
        {
            await VoidAsync(cancellationToken).ConfigureAwait(false);
            throw new WalletException(WalletErrors.TopUpNotConfirmed, "You did not agree: nothing was added to the card, and the credit card is not charged.");
        }

        var answer = CreditOnCard.Run(
            card,
            reader,
            prompt,
            verified,
            "Your card takes the value; keep it in the reader",
            $"The card left the reader during the CREDIT: whether it took the {amount} is unknown. Run openpurse sync with the card in the reader: the operator resolves it from the card's log, and never credits or charges twice.");

        // From here on the card holds the value: every failure says so, lest the person top up again
        // thinking that nothing happened. The operator learns it from the card's log at its next session.
        prompt.Progress("Reporting the card's answer to the operator");
        TopUpView view;
        try
        {
            view = await operatorApi.CompleteTopUpAsync(topUpId, new CompleteSettlementRequest(Convert.ToBase64String(answer.ToBytes())), cancellationToken).ConfigureAwait(false);
        }
        catch (WalletException e)
        {
            throw new WalletException(
                e.Code,
                $"{e.Message} Your card took the {amount} (top-up {topUpId}); run openpurse sync with the card in the reader and the operator records it: the credit card ending {lastFour} is charged once.",
                innerException: e);
        }

        // The balance read back for the person; a card that left the reader by now holds what the CREDIT gave it.
        Money balance;
        try
        {
            balance = prompt.WhileCardWorks("Reading your balance", card.Status).BalanceOf(amount.Currency) ?? verified.BalanceAfter;
        }
        catch (WalletException e) when (e.Code == WalletErrors.CardRemoved)
        {
            balance = verified.BalanceAfter;
        }

        return new TopUpResult(topUpId, verified.Update.ValueUpdateId, amount, lastFour, view.State, balance);
    }

    // The authorizer's keys come through the operator, signed by it: the wallet trusts the operator's
    // keys, and so the key it encrypts to. The card data is in memory only as long as encrypting takes.
    private async Task<string> EncryptAsync(CardData cardData, CancellationToken cancellationToken)
    {
        var jws = await operatorApi.AuthorizerKeysAsync(cancellationToken).ConfigureAwait(false);
        var (signed, error) = await operatorApi.VerifySignedAsync<AuthorizerKeys>(jws, MessageTypes.AuthorizerKeys, cancellationToken).ConfigureAwait(false);

        if (signed is null)
        {
            throw new WalletException(WalletErrors.Signature("authorizer_keys", error ?? "signature.malformed"), $"The credit authorizer's keys are not signed by the operator ({error}). Nothing was sent.");
        }

        JsonWebKey? key;
        try
        {
            key = JsonWebKeySet.Parse(signed.Keys.GetRawText()).Keys.FirstOrDefault(k => k.Kty == "EC" && k.Use is null or "enc" && k.Alg is null or Jwe.EcdhEs && !string.IsNullOrEmpty(k.Kid));
        }
        catch (Exception e) when (e is FormatException or InvalidOperationException or JsonException)
        {
            throw new WalletException(WalletErrors.AuthorizerKeysInvalid, "The credit authorizer's keys cannot be read. Nothing was sent.", innerException: e);
        }

        if (key is null)
        {
            throw new WalletException(WalletErrors.AuthorizerKeysInvalid, "The credit authorizer has no key to encrypt card data to. Nothing was sent.");
        }

        var plaintext = JsonSerializer.SerializeToUtf8Bytes(cardData, ProtocolJson.Options);
        try
        {
            return Jwe.Encrypt(plaintext, key);
        }
        catch (ArgumentException e)
        {
            throw new WalletException(WalletErrors.AuthorizerKeysInvalid, "The credit authorizer's key is not a key to encrypt card data to. Nothing was sent.", innerException: e);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext);
        }
    }

    // The same request (the same TopUpId) again while the authorizer does not answer: the operator asks
    // it again under the same idempotency key, so a charge is never made twice.
    private async Task<TopUpResponse> SendAsync(TopUpRequest request, CancellationToken cancellationToken)
    {
        var delay = RetryDelay;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await operatorApi.TopUpAsync(request, cancellationToken).ConfigureAwait(false);
            }
            catch (WalletException e) when (e.Code == AuthorizerUnavailable && attempt < AttemptsMax)
            {
                prompt.Progress("The credit authorizer does not answer yet; asking again");
                await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
                delay *= 2;
            }
            catch (WalletException e)
            {
                throw InPlainWords(e);
            }
        }
    }

    // The person declined at the prompt: the CREDIT never ran, and the next greeting shows the
    // operator so; that greeting comes now rather than at some later session.
    private async Task VoidAsync(CancellationToken cancellationToken)
    {
        prompt.Progress("Telling the operator that the card did not take the value");
        try
        {
            await new CardSyncFlow(operatorApi, reader, prompt).RunAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (WalletException e)
        {
            throw new WalletException(
                e.Code,
                $"You did not agree: nothing was added to the card. The operator could not be told yet ({e.Message}); run openpurse sync with the card in the reader, and the credit card's charge is voided.",
                innerException: e);
        }
    }

    // The operator's refusal in the person's words; the code stays the operator's, for scripts.
    private static WalletException InPlainWords(WalletException e)
    {
        var colon = e.Code.IndexOf(':', StringComparison.Ordinal);
        var code = colon < 0 ? "" : e.Code[(colon + 1)..];
        var words = code switch
        {
            "topup.declined" => "The credit card's bank declined the charge.",
            "topup.pin_incorrect" => "The PIN is not the credit card's PIN.",
            "topup.card_limit" => "The charge is above what the credit card allows.",
            "topup.limit_exceeded" => $"The top-up is above a top-up limit. {e.Message}",
            "topup.unavailable" => "The operator does not take top-ups by credit card right now.",
            "authorizer.unavailable" => "The credit card's authorizer does not answer; try again later.",
            "topup.abandoned" => "The top-up waited too long for the credit card's authorizer and was abandoned; top up again.",
            "card.busy" or "card.sync_required" => "Your card has something unfinished: run openpurse sync with the card in the reader, then top up again.",
            _ when code.StartsWith("card_data.", StringComparison.Ordinal) => $"The credit card's data was refused. {e.Message}",
            _ => null,
        };
        return words is null ? e : new WalletException(e.Code, words + " Nothing was added to the card or charged.", innerException: e);
    }
}
