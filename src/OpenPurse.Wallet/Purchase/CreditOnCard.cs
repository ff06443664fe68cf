using System.Buffers.Text;
using System.Security.Cryptography;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Wallet.Http;
using OpenPurse.Wallet.Readers;

namespace OpenPurse.Wallet.Purchase;

/// <summary>What the wallet expects a CREDIT's value update (SIG5) to say, besides what the card itself told.</summary>
/// <param name="Purposes">The purposes it may have: some of <see cref="ValueUpdatePurposes"/>.</param>
/// <param name="SourceId">The settlement or top-up the value must come from, when the wallet knows it.</param>
/// <param name="Amount">The amount the person asked for, when the wallet knows it.</param>
internal sealed record ExpectedCredit(IReadOnlyList<string> Purposes, Guid? SourceId = null, Money? Amount = null)
{
    /// <summary>A CREDIT of one purpose.</summary>
    public ExpectedCredit(string purpose, Guid? sourceId = null, Money? amount = null)
        : this([purpose], sourceId, amount)
    {
    }
}

/// <summary>A CREDIT whose SIG5 verified and describes it: ready to run once the person agrees.</summary>
internal sealed record VerifiedCredit(ValueUpdate Update, CommandApdu ExternalAuthenticate, CommandApdu Credit)
{
    /// <summary>The card's balance once the CREDIT runs.</summary>
    public Money BalanceAfter => Update.Balance + Update.Amount;
}

/// <summary>
/// A CREDIT from the operator to the card, whatever it is for (the return of a debit in
/// <see cref="CardSyncFlow"/>, a top-up in <see cref="TopUpFlow"/>): SIG5 verified with the
/// operator's keys and checked against the CREDIT it came with, the card and the balance it
/// reported, then EXTERNAL AUTHENTICATE and the CREDIT with the approval SIG5 describes. One piece
/// for both, so that both credits are held to the same checks.
/// </summary>
internal static class CreditOnCard
{
    private const string ValueUpdateName = "value_update";

    /// <summary>Verifies SIG5 and that it describes <paramref name="credit"/> as <paramref name="expected"/> for the card that gave <paramref name="greeting"/>.</summary>
    /// <exception cref="WalletException">It does not: nothing may be written to the card.</exception>
    public static async Task<VerifiedCredit> VerifyAsync(OperatorApi operatorApi, CardCredit credit, CardGreeting greeting, ExpectedCredit expected, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(operatorApi);
        ArgumentNullException.ThrowIfNull(credit);
        ArgumentNullException.ThrowIfNull(greeting);
        ArgumentNullException.ThrowIfNull(expected);
        var (update, error) = await operatorApi.VerifySignedAsync<ValueUpdate>(credit.ValueUpdate, MessageTypes.ValueUpdate, cancellationToken).ConfigureAwait(false);

        if (update is null)
        {
            throw new WalletException(WalletErrors.Signature(ValueUpdateName, error ?? "signature.malformed"), $"The value update (SIG5) is not signed by the operator ({error}). Nothing was written to the card.");
        }

        var externalAuthenticate = Decode(credit.ExternalAuthenticate, PurseInstruction.ExternalAuthenticate, "EXTERNAL AUTHENTICATE");
        var creditCommand = Decode(credit.Credit, PurseInstruction.Credit, "CREDIT");
        var balance = greeting.Status.BalanceOf(update.Amount.Currency) ?? Money.Zero(update.Amount.Currency);
        if (update.ValueUpdateId != credit.ValueUpdateId || !expected.Purposes.Contains(update.Purpose) || (expected.SourceId is { } source && update.SourceId != source)
            || update.CardId != greeting.CardId.Digits || !update.Amount.IsPositive || (expected.Amount is { } amount && update.Amount != amount) || update.Balance != balance
            || update.CreditDigest != Base64Url.EncodeToString(SHA256.HashData(Convert.FromBase64String(credit.Credit)))
            || !Base64Url.IsValid(update.OrderDigest, out var digestLength) || digestLength != Approval.DigestLength)
        {
            throw new WalletException(WalletErrors.ValueUpdateMismatch, "The value update (SIG5) does not describe the CREDIT it came with, for this card, balance and purpose. Nothing was written to the card.");
        }

        return new VerifiedCredit(update, externalAuthenticate, creditCommand);
    }

    /// <summary>
    /// EXTERNAL AUTHENTICATE, then the CREDIT with the approval SIG5 describes, in the session the
    /// card opened with its greeting. Returns the card's answer to the CREDIT (9000 required), for
    /// the operator.
    /// </summary>
    /// <param name="card">The card, in the session its greeting opened.</param>
    /// <param name="reader">Its reader, for the CREDIT itself (whose loss mid-way is told apart).</param>
    /// <param name="prompt">Shows that the card works.</param>
    /// <param name="credit">The verified CREDIT.</param>
    /// <param name="message">What the card does, for the person.</param>
    /// <param name="removed">What to tell the person when the card leaves the reader during the CREDIT.</param>
    public static ResponseApdu Run(WalletCard card, ICardReader reader, IPurchasePrompt prompt, VerifiedCredit credit, string message, string removed)
    {
        ArgumentNullException.ThrowIfNull(card);
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(credit);
        var approval = new Approval(credit.Update.Amount, Base64Url.DecodeFromChars(credit.Update.OrderDigest));
        var answer = prompt.WhileCardWorks(message, () =>
        {
            WalletCard.Require(card.Send(credit.ExternalAuthenticate, "EXTERNAL AUTHENTICATE"), "EXTERNAL AUTHENTICATE");
            try
            {
                return reader.Transmit(CardHostSession.WithApproval(credit.Credit, approval));
            }
            catch (CardRemovedException e)
            {
                throw new WalletException(WalletErrors.CardRemoved, removed, innerException: e);
            }
        });
        WalletCard.Require(answer, "the CREDIT");
        return answer;
    }

    /// <summary>A secured command the operator sent, as base64: refused as malformed unless it is that command.</summary>
    /// <exception cref="WalletException">It is not.</exception>
    internal static CommandApdu Decode(string text, byte instruction, string name)
    {
        byte[] bytes;
        try
        {
            bytes = Convert.FromBase64String(text);
        }
        catch (FormatException e)
        {
            throw new WalletException(WalletErrors.OperatorMalformed, $"The operator's {name} is not base64.", innerException: e);
        }

        return CommandApdu.TryParse(bytes, out var command) && command.Cla == PurseInstruction.ClaSecured && command.Ins == instruction
            ? command
            : throw new WalletException(WalletErrors.OperatorMalformed, $"The operator's {name} is not a secured {name} command.");
    }
}
