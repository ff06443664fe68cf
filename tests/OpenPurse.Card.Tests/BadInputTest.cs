using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Purse;

namespace OpenPurse.Card.Tests;

/// <summary>Every malformed or misplaced APDU gets the ISO status word it deserves, and changes nothing.</summary>
public sealed class BadInputTest
{
    private static readonly byte[] s_aid = PurseAid.Value.ToArray();

    public static TheoryData<string, string, StatusWord> Unselected => new()
    {
        { "empty", "", StatusWord.WrongLength },
        { "three bytes", "00A404", StatusWord.WrongLength },
        { "Lc says 8, data has 7", "80500000080102030405060700"[..24], StatusWord.WrongLength },
        { "Lc = 0 (extended form)", "80500000000008", StatusWord.WrongLength },
        { "Lc shorter than data (two bytes too many)", "805000000201020304", StatusWord.WrongLength },
        { "unknown class", "90CA000000", StatusWord.ClassNotSupported },
        { "SELECT in proprietary class", "80A40400" + "0A" + Convert.ToHexString(s_aid), StatusWord.ClassNotSupported },
        { "unknown instruction", "8000000000", StatusWord.InstructionNotSupported },
        { "GET DATA before SELECT", "80CA000000", StatusWord.ConditionsNotSatisfied },
        { "SELECT of another application", "00A404000AA0000000041010000000", StatusWord.ApplicationNotFound },
        { "SELECT by file id", "00A40000" + "0A" + Convert.ToHexString(s_aid), StatusWord.IncorrectP1P2 },
    };

    public static TheoryData<string, string, StatusWord> Selected => new()
    {
        { "GET DATA with P1", "80CA010000", StatusWord.IncorrectP1P2 },
        { "INITIALIZE UPDATE with 7-byte challenge", "805000000701020304050607" + "00", StatusWord.WrongLength },
        { "INITIALIZE UPDATE for unknown key version", "8050050008010203040506070800", StatusWord.ReferencedDataNotFound },
        { "INITIALIZE UPDATE with P2", "8050000108010203040506070800", StatusWord.IncorrectP1P2 },
        { "EXTERNAL AUTHENTICATE without INITIALIZE UPDATE", "848233001000000000000000000000000000000000", StatusWord.ConditionsNotSatisfied },
        { "EXTERNAL AUTHENTICATE in clear class", "808233001000000000000000000000000000000000", StatusWord.ClassNotSupported },
        { "DEBIT without session", "8454000032" + new string('0', 100), StatusWord.SecurityStatusNotSatisfied },
        { "DEBIT without secure messaging", "8054000032" + new string('0', 100), StatusWord.ClassNotSupported },
        { "READ PURSE whose Lc disagrees with its data", "845C000008" + "00000000000000000000", StatusWord.WrongLength },
        { "READ PURSE without session, well formed", "845C0000080000000000000000", StatusWord.SecurityStatusNotSatisfied },
        { "READ LOG of zero records", "80B2000000", StatusWord.IncorrectP1P2 },
        { "READ LOG of four records", "80B2000400", StatusWord.IncorrectP1P2 },
        { "READ LOG past the log's capacity", "80B2100100", StatusWord.IncorrectP1P2 },
        { "READ LOG of a record not yet written", "80B2050100", StatusWord.RecordNotFound },
    };

    [Theory]
    [MemberData(nameof(Unselected))]
    public void Unselected_BadCommand_AnswersItsStatusWordAndChangesNothing(string why, string hex, StatusWord expected)
    {
        using var kit = new CardKit();
        kit.Credit(Eur.Of(100));
        kit.Card.Reset();
        var before = kit.Image();

        Assert.True(expected == kit.Send(Convert.FromHexString(hex)).Status, why);
        Assert.Equal(before, kit.Image());
    }

    [Theory]
    [MemberData(nameof(Selected))]
    public void Selected_BadCommand_AnswersItsStatusWordAndChangesNothing(string why, string hex, StatusWord expected)
    {
        using var kit = new CardKit();
        kit.Credit(Eur.Of(100));
        Assert.Equal(StatusWord.Ok, kit.Send(CardHostSession.Select()).Status);
        var before = kit.Image();

        Assert.True(expected == kit.Send(Convert.FromHexString(hex)).Status, why);
        Assert.Equal(before, kit.Image());
    }

    [Fact]
    public void ExternalAuthenticate_SecurityLevelBelowFull_Refused()
    {
        using var kit = new CardKit();
        kit.Send(CardHostSession.Select());
        kit.Send(CardHostSession.InitializeUpdate(new byte[8]));

        Assert.Equal(StatusWord.IncorrectP1P2, kit.Send(Convert.FromHexString("848211001000000000000000000000000000000000")).Status);
    }

    [Fact]
    public void ExternalAuthenticate_WrongLength_Refused()
    {
        using var kit = new CardKit();
        kit.Send(CardHostSession.Select());
        kit.Send(CardHostSession.InitializeUpdate(new byte[8]));

        Assert.Equal(StatusWord.WrongLength, kit.Send(Convert.FromHexString("84823300080000000000000000")).Status);
    }

    [Fact]
    public void Debit_MoreThanTheBalance_RefusedWithInsufficientValue()
    {
        using var kit = new CardKit();
        kit.Credit(Eur.Of(100));
        var before = kit.Image();

        Assert.Equal(StatusWord.InsufficientValue, kit.Debit(Eur.Of(101)).Status);
        Assert.Equal(before, kit.Image());
        Assert.Equal(StatusWord.Ok, kit.Debit(Eur.Of(100)).Status); // the edge itself is allowed
        Assert.Equal(Eur.Of(0), kit.Balance(Currency.Eur));
    }

    [Fact]
    public void Credit_PastTheBalanceLimit_RefusedWithBalanceLimitExceeded()
    {
        using var kit = new CardKit(balanceMax: 10_000);
        kit.Credit(Eur.Of(9_999));
        var before = kit.Image();

        Assert.Equal(StatusWord.BalanceLimitExceeded, kit.Credit(Eur.Of(2)).Status);
        Assert.Equal(before, kit.Image());
        Assert.Equal(StatusWord.Ok, kit.Credit(Eur.Of(1)).Status);
        Assert.Equal(Eur.Of(10_000), kit.Balance(Currency.Eur));
    }

    [Fact]
    public void Credit_HugeAmountOnFullPurse_NeverOverflows()
    {
        using var kit = new CardKit(balanceMax: Money.MaxMinorUnits);
        Assert.Equal(StatusWord.Ok, kit.Credit(Eur.Of(Money.MaxMinorUnits)).Status);

        Assert.Equal(StatusWord.BalanceLimitExceeded, kit.Credit(Eur.Of(Money.MaxMinorUnits)).Status);
        Assert.Equal(Eur.Of(Money.MaxMinorUnits), kit.Balance(Currency.Eur));
    }

    [Fact]
    public void Debit_CurrencyTheCardDoesNotHold_RefusedWithReferencedDataNotFound()
    {
        using var kit = new CardKit();
        kit.Credit(Eur.Of(100));

        Assert.Equal(StatusWord.ReferencedDataNotFound, kit.Debit(new Money(1, Currency.Usd)).Status);
    }

    [Fact]
    public void Credit_FifthCurrency_RefusedWithNotEnoughMemory()
    {
        using var kit = new CardKit();
        foreach (var code in new[] { "EUR", "USD", "GBP", "CHF" })
        {
            Assert.Equal(StatusWord.Ok, kit.Credit(new Money(1, Currency.FromCode(code))).Status);
        }

        var before = kit.Image();

        Assert.Equal(StatusWord.NotEnoughMemory, kit.Credit(new Money(1, Currency.Jpy)).Status);
        Assert.Equal(before, kit.Image());
    }

    [Theory]
    [InlineData("zero amount")]
    [InlineData("short order")]
    [InlineData("unknown currency")]
    [InlineData("short data")]
    public void Debit_MalformedOrderInsideAValidChannel_RefusedWithWrongData(string why)
    {
        using var kit = new CardKit();
        kit.Credit(Eur.Of(100));
        var counter = kit.Status().Counter;
        using var channel = kit.OpenRawChannel();
        var order = new ValueCommand(Guid.NewGuid(), new byte[32], Eur.Of(1), counter).ToBytes();
        var approval = new Approval(Eur.Of(1), new byte[32]).ToBytes();
        switch (why)
        {
            case "zero amount":
                order = new ValueCommand(Guid.NewGuid(), new byte[32], Eur.Of(0), counter).ToBytes();
                approval = new Approval(Eur.Of(0), new byte[32]).ToBytes();
                break;
            case "short order":
                order = order[..^1];
                break;
            case "unknown currency":
                order[48] = 0x00;
                order[49] = 0x01;
                break;
        }

        var secured = channel.Wrap(new CommandApdu(PurseInstruction.ClaProprietary, PurseInstruction.Debit, 0, 0, order, 0));
        var command = why == "short data"
            ? secured.With(secured.Cla, approval.AsSpan(0, 20))
            : secured.With(secured.Cla, [.. approval, .. secured.Data]);
        var before = kit.Image();

        var expected = why == "short data" ? StatusWord.WrongLength : StatusWord.WrongData;
        Assert.Equal(expected, kit.Send(command).Status);
        Assert.Equal(before, kit.Image());
    }
}
