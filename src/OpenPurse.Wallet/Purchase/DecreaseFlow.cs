using System.Buffers.Text;
using System.Security.Cryptography;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Wallet.Http;
using OpenPurse.Wallet.Readers;

namespace OpenPurse.Wallet.Purchase;

/// <summary>What the person is asked to agree to before a transfer's or cash-out's DEBIT runs.</summary>
/// <param name="Purpose"><see cref="ValueDecreasePurposes.Transfer"/> or <see cref="ValueDecreasePurposes.CashOut"/>.</param>
/// <param name="Amount">What the DEBIT takes off the card.</param>
/// <param name="Payee">Where it goes: the payee card or the IBAN, masked as the operator signed it.</param>
/// <param name="AccountHolder">The bank account's holder, for a cash-out.</param>
/// <param name="Balance">The card's balance now.</param>
/// <param name="BalanceAfter">The card's balance once the DEBIT ran.</param>
/// <param name="CardMasked">The paying card's number, masked.</param>
public sealed record DecreaseConfirmation(string Purpose, Money Amount, string Payee, string? AccountHolder, Money Balance, Money BalanceAfter, string CardMasked);

/// <summary>The person's side of a transfer or cash-out.</summary>
public interface IDecreasePrompt : IPurchasePrompt
{
    /// <summary>Shows what leaves the card and where it goes, and asks the person to agree. Nothing is written to the card unless this returns true.</summary>
    bool ConfirmDecrease(DecreaseConfirmation confirmation);
}

/// <summary>What a transfer or cash-out did.</summary>
/// <param name="Id">The transfer or cash-out, also the DEBIT's reference in the card's log.</param>
/// <param name="Purpose">Transfer or cash-out.</param>
/// <param name="Amount">What left the card.</param>
/// <param name="Payee">Where it went, masked.</param>
/// <param name="State">The operator's state after the card's answer (<c>debited</c>).</param>
/// <param name="Balance">The card's balance after the DEBIT, as the card tells it.</param>
internal sealed record DecreaseResult(Guid Id, string Purpose, Money Amount, string Payee, string State, Money Balance);

/// <summary>
/// Value taken off the card at the person's request (docs/protocol.md, "Transfer and cash-out"):
/// the payee checked first (a card number's check digit, an IBAN's length and check digits), the
/// card's greeting with a fresh host challenge, the request to the operator, which answers with a
/// DEBIT and the value decrease information it signs; that checked against what was asked — the
/// purpose, the amount, the card and its balance, the payee, the DEBIT's digest, and the order's
/// digest, which the wallet computes itself from the payee and the amount — before the person is
/// asked; then the DEBIT with the approval built from what the person asked for, never from the
/// operator's answer, and the card's answer back to the operator. A lost answer is resolved by the
/// card's next greeting (<c>openpurse sync</c>).
/// </summary>
internal sealed class DecreaseFlow(OperatorApi operatorApi, ICardReader reader, IDecreasePrompt prompt)
{
    private const string ValueDecreaseName = "value_decrease";

    /// <summary>A transfer of <paramref name="amount"/> to the card numbered <paramref name="payeeCard"/>.</summary>
    public Task<DecreaseResult> TransferAsync(Money amount, string payeeCard, CancellationToken cancellationToken)
    {
        if (!CardId.TryParse(payeeCard?.Replace(" ", "", StringComparison.Ordinal), out var payee))
        {
            throw new WalletException(WalletErrors.PayeeInvalid, "The payee is not a card number: 16 digits whose last is the check digit. Nothing was sent.");
        }

        return RunAsync(ValueDecreasePurposes.Transfer, amount, payee.Digits, payee.Masked, holder: null, (id, challenge, greeting) =>
            new TransferRequest(id, amount, payee.Digits, challenge, greeting), cancellationToken);
    }

    /// <summary>A cash-out of <paramref name="amount"/> to the bank account <paramref name="ibanText"/> of <paramref name="holder"/>.</summary>
    public Task<DecreaseResult> CashOutAsync(Money amount, string ibanText, string holder, CancellationToken cancellationToken)
    {
        var error = Iban.TryNormalize(ibanText, out var iban);
        if (error != IbanError.None)
        {
            throw new WalletException(WalletErrors.IbanInvalid, error switch
            {
                IbanError.UnknownCountry => "The IBAN's country has no IBANs. Nothing was sent.",
                IbanError.WrongLength => "The IBAN does not have its country's length. Nothing was sent.",
                IbanError.CheckDigits => "The IBAN's check digits do not match: a character is mistyped. Nothing was sent.",
                _ => "An IBAN is two letters, two check digits and up to 30 letters or digits. Nothing was sent.",
            });
        }

        var name = holder?.Trim();
        if (string.IsNullOrEmpty(name) || name.Length > 70 || name.Any(char.IsControl))
        {
            throw new WalletException(WalletErrors.InvalidRequest, "The account holder's name is required (up to 70 characters). Nothing was sent.");
        }

        return RunAsync(ValueDecreasePurposes.CashOut, amount, iban, Iban.Mask(iban), name, (id, challenge, greeting) =>
            new CashOutRequest(id, amount, iban, name, challenge, greeting), cancellationToken);
    }

    private async Task<DecreaseResult> RunAsync(string purpose, Money amount, string payee, string payeeShown, string? holder,
        Func<Guid, string, string, object> request, CancellationToken cancellationToken)
    {
        if (!amount.IsPositive)
        {
            throw new WalletException(WalletErrors.InvalidRequest, "The amount must be more than zero. Nothing was sent.");
        }

        using var trace = WalletTrace.Start(purpose);
        var card = new WalletCard(reader);
        var hostChallenge = RandomNumberGenerator.GetBytes(8);
        var (greeting, greetingData) = prompt.WhileCardWorks("Reading your card", () =>
        {
            card.Select();
            return card.InitializeUpdate(hostChallenge);
        });

        if (purpose == ValueDecreasePurposes.Transfer && payee == greeting.CardId.Digits)
        {
            throw new WalletException(WalletErrors.PayeeInvalid, "The payee is this card. Nothing was sent.");
        }

        var balance = greeting.Status.BalanceOf(amount.Currency) ?? Money.Zero(amount.Currency);
        if (balance < amount)
        {
            throw new WalletException(WalletErrors.CardInsufficientValue, $"The card holds {balance}; it cannot give {amount}. Nothing was sent.");
        }

        var id = Guid.NewGuid();
        var asked = request(id, Convert.ToBase64String(hostChallenge), Convert.ToBase64String(greetingData));
        prompt.Progress(purpose == ValueDecreasePurposes.Transfer ? $"Asking the operator to transfer {amount} to card {payeeShown}" : $"Asking the operator to pay {amount} to {payeeShown}");
        var (answeredId, answeredAmount, debit) = asked switch
        {
            TransferRequest transfer => await operatorApi.TransferAsync(transfer, cancellationToken).ConfigureAwait(false) is var t ? (t.TransferId, t.Amount, t.Debit) : default,
            CashOutRequest cashOut => await operatorApi.CashOutAsync(cashOut, cancellationToken).ConfigureAwait(false) is var c ? (c.CashOutId, c.Amount, c.Debit) : default,
            _ => throw new ArgumentException("Not a value decrease request.", nameof(request)),
        };
        if (answeredId != id || answeredAmount != amount || debit is null)
        {
            throw new WalletException(WalletErrors.ValueDecreaseMismatch, "The operator's answer is not about this request or amount. Nothing was written to the card.");
        }

        // The order's digest is the wallet's own, from what the person asked for: a DEBIT made for
        // another payee or amount does not match it, and the card refuses the approval.
        var orderDigest = ValueDecreasePurposes.OrderDigest(purpose, id, amount, payee);
        var (decrease, externalAuthenticate, debitCommand) = await VerifyAsync(debit, greeting, purpose, id, amount, payeeShown, orderDigest, cancellationToken).ConfigureAwait(false);
        if (!prompt.ConfirmDecrease(new DecreaseConfirmation(purpose, amount, decrease.Payee, holder, balance, balance - amount, greeting.CardId.Masked)))
        {
            throw new WalletException(WalletErrors.DecreaseNotConfirmed,
                "You did not agree: nothing was taken off the card. The operator sees at the card's next session that the debit never ran, and nothing is paid.");
        }

        var approval = new Approval(amount, orderDigest);
        var answer = prompt.WhileCardWorks("Your card gives the value; keep it in the reader", () =>
        {
            WalletCard.Require(card.Send(externalAuthenticate, "EXTERNAL AUTHENTICATE"), "EXTERNAL AUTHENTICATE");
            try
            {
                return reader.Transmit(CardHostSession.WithApproval(debitCommand, approval));
            }
            catch (CardRemovedException e)
            {
                throw new WalletException(WalletErrors.CardRemoved,
                    $"The card left the reader during the DEBIT: whether it gave the {amount} is unknown. Run openpurse sync with the card in the reader: the operator resolves it from the card's log, and never pays twice.",
                    innerException: e);
            }
        });
        WalletCard.Require(answer, "the DEBIT");

        prompt.Progress("Reporting the card's answer to the operator");
        var completion = new CompleteSettlementRequest(Convert.ToBase64String(answer.ToBytes()));
        var state = purpose == ValueDecreasePurposes.Transfer
            ? (await operatorApi.CompleteTransferAsync(id, completion, cancellationToken).ConfigureAwait(false)).State
            : (await operatorApi.CompleteCashOutAsync(id, completion, cancellationToken).ConfigureAwait(false)).State;
        // The operator holds the DEBIT as run: a card that leaves the reader now (at the GET DATA that
        // reads the balance back) does not undo it, and reporting an error would have the person give again.
        Money balanceAfter;
        try
        {
            balanceAfter = prompt.WhileCardWorks("Reading your balance", card.Status).BalanceOf(amount.Currency) ?? balance - amount;
        }
        catch (WalletException e) when (e.Code == WalletErrors.CardRemoved)
        {
            balanceAfter = balance - amount;
        }

        return new DecreaseResult(id, purpose, amount, decrease.Payee, state, balanceAfter);
    }

    // The value decrease information verified with the operator's keys and held to what was asked.
    private async Task<(ValueDecrease Decrease, CommandApdu ExternalAuthenticate, CommandApdu Debit)> VerifyAsync(CardDebit debit, CardGreeting greeting, string purpose, Guid id,
        Money amount, string payeeShown, byte[] orderDigest, CancellationToken cancellationToken)
    {
        var (decrease, error) = await operatorApi.VerifySignedAsync<ValueDecrease>(debit.ValueDecrease, MessageTypes.ValueDecrease, cancellationToken).ConfigureAwait(false);

        if (decrease is null)
        {
            throw new WalletException(WalletErrors.Signature(ValueDecreaseName, error ?? "signature.malformed"), $"The value decrease information is not signed by the operator ({error}). Nothing was written to the card.");
        }

        var externalAuthenticate = CreditOnCard.Decode(debit.ExternalAuthenticate, PurseInstruction.ExternalAuthenticate, "EXTERNAL AUTHENTICATE");
        var debitCommand = CreditOnCard.Decode(debit.Debit, PurseInstruction.Debit, "DEBIT");
        var balance = greeting.Status.BalanceOf(amount.Currency) ?? Money.Zero(amount.Currency);
        if (decrease.ValueUpdateId != id || debit.ValueUpdateId != id || decrease.SourceId != id || decrease.Purpose != purpose || decrease.CardId != greeting.CardId.Digits
            || decrease.Amount != amount || decrease.Balance != balance || decrease.Payee != payeeShown
            || decrease.OrderDigest != Base64Url.EncodeToString(orderDigest)
            || decrease.DebitDigest != Base64Url.EncodeToString(SHA256.HashData(Convert.FromBase64String(debit.Debit))))
        {
            throw new WalletException(WalletErrors.ValueDecreaseMismatch,
                "The value decrease information does not describe the DEBIT it came with, for this card, balance, amount and payee. Nothing was written to the card.");
        }

        if (debitCommand.Data.Length + Approval.Length > CommandApdu.DataLengthMax)
        {
            throw new WalletException(WalletErrors.OperatorMalformed, "The operator's DEBIT leaves no room for the approval.");
        }

        return (decrease, externalAuthenticate, debitCommand);
    }
}
