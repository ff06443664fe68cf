using System.Diagnostics;
using System.Globalization;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Purse;
using OpenPurse.Wallet.Purchase;

namespace OpenPurse.Wallet.Readers;

/// <summary>
/// What the wallet itself says to the card (docs/card.md): SELECT, INITIALIZE UPDATE, GET DATA and
/// READ LOG in clear, and the operator's secured commands passed through. Every answer other than
/// 9000 becomes a <see cref="WalletException"/> that says what the card meant.
/// </summary>
internal sealed class WalletCard(ICardReader reader)
{
    /// <summary>The most log records the wallet asks for: the card keeps 16 (docs/card.md).</summary>
    public const int HistoryRecordsMax = 16;

    /// <summary>The most records one READ LOG returns.</summary>
    private const int ReadLogCountMax = 3;

    public string ReaderName => reader.Name;

    /// <summary>SELECT the OpenPurse application.</summary>
    public void Select()
    {
        var answer = Send(CardHostSession.Select(), "SELECT");
        Require(answer, "SELECT");
    }

    /// <summary>INITIALIZE UPDATE: returns the greeting and its raw bytes, for the operator.</summary>
    public (CardGreeting Greeting, byte[] Data) InitializeUpdate(ReadOnlySpan<byte> hostChallenge)
    {
        var answer = Send(CardHostSession.InitializeUpdate(hostChallenge), "INITIALIZE UPDATE");
        Require(answer, "INITIALIZE UPDATE");
        var data = answer.Data.ToArray();
        if (!CardGreeting.TryParse(data, out var greeting))
        {
            throw new WalletException(WalletErrors.CardMalformed, "The card's answer to INITIALIZE UPDATE is not an OpenPurse greeting.");
        }

        return (greeting, data);
    }

    /// <summary>GET DATA: card number, counter and balances in clear.</summary>
    public PurseStatus Status()
    {
        var answer = Send(CardHostSession.GetData(), "GET DATA");
        Require(answer, "GET DATA");
        if (!PurseStatus.TryParse(answer.Data, out var status))
        {
            throw new WalletException(WalletErrors.CardMalformed, "The card's answer to GET DATA is not a purse status.");
        }

        return status;
    }

    /// <summary>READ LOG in clear until the card has no more records: newest first.</summary>
    public IReadOnlyList<CardLogRecord> History()
    {
        var records = new List<CardLogRecord>(HistoryRecordsMax);
        while (records.Count < HistoryRecordsMax)
        {
            var count = (byte)Math.Min(ReadLogCountMax, HistoryRecordsMax - records.Count);
            var answer = Send(CardHostSession.ReadLogClear((byte)records.Count, count), "READ LOG");
            if (answer.Status is StatusWord.RecordNotFound or StatusWord.IncorrectP1P2)
            {
                break; // No record at that position: the log ends here.
            }

            Require(answer, "READ LOG");
            if (!CardLogRecord.TryParseMany(answer.Data, out var batch) || batch.Count is 0 || batch.Count > count)
            {
                throw new WalletException(WalletErrors.CardMalformed, "The card's answer to READ LOG is not a run of log records.");
            }

            records.AddRange(batch);
            if (batch.Count < count)
            {
                break;
            }
        }

        return records;
    }

    /// <summary>Sends a command the wallet did not build (the operator's), turning a lost card into an error.</summary>
    /// <remarks>
    /// No command sent here moves value (the DEBIT goes through the purchase flow, which says that
    /// its outcome is unknown), so the error can tell the person what a lost card means for their money.
    /// </remarks>
    public ResponseApdu Send(CommandApdu command, string name)
    {
        Debug.Assert(command.Ins is not (PurseInstruction.Debit or PurseInstruction.Credit), "Value moves only through the purchase flow.");
        try
        {
            return reader.Transmit(command);
        }
        catch (CardRemovedException e)
        {
            var meaning = command.Ins is PurseInstruction.Select or PurseInstruction.InitializeUpdate or PurseInstruction.ExternalAuthenticate
                ? "before it was asked to pay: nothing was paid. Put it back and try again"
                : "a command that only reads";
            throw new WalletException(WalletErrors.CardRemoved, $"The card left {reader.Name} during {name}, {meaning}.", innerException: e);
        }
    }

    /// <summary>Turns any answer but 9000 into the error that names it.</summary>
    public static void Require(ResponseApdu answer, string command, bool cardDebited = false, Guid? settlementId = null)
    {
        if (!answer.IsOk)
        {
            throw Refusal(answer.Status, command, cardDebited, settlementId);
        }
    }

    public static WalletException Refusal(StatusWord status, string command, bool cardDebited = false, Guid? settlementId = null) =>
        new(WalletErrors.With(WalletErrors.CardRefused, Hex(status)), $"The card refused {command} ({Hex(status)}): {Meaning(status)}.", cardDebited, settlementId);

    public static string Hex(StatusWord status) => ((ushort)status).ToString("X4", CultureInfo.InvariantCulture);

    /// <summary>What a status word means to the person (docs/card.md, "Status words").</summary>
    public static string Meaning(StatusWord status) => status switch
    {
        StatusWord.ApprovalMismatch => "the operator asked the card for something other than what you approved, so the card paid nothing",
        StatusWord.InsufficientValue => "the card holds less than the bill",
        StatusWord.CounterMismatch => "the operator's command was made for another transaction on this card (stale or replayed)",
        StatusWord.BalanceLimitExceeded => "the card would hold more than its limit",
        StatusWord.AuthenticationFailed => "the operator's authentication does not match this card; the card stays as it was",
        StatusWord.SecurityStatusNotSatisfied => "the secure channel failed (a changed, replayed or foreign command); the card stays as it was",
        StatusWord.ConditionsNotSatisfied => "the command came out of order",
        StatusWord.MemoryFailure => "the card could not write its memory and kept its previous state",
        StatusWord.ApplicationNotFound => "this card has no OpenPurse application",
        StatusWord.WrongData => "the command's data is malformed",
        StatusWord.WrongLength => "the command has the wrong length",
        StatusWord.ReferencedDataNotFound => "the key version or purse is not on this card",
        StatusWord.NotEnoughMemory => "the card has no free purse for this currency",
        _ => "an answer the wallet does not know",
    };
}
