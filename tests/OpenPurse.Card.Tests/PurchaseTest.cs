using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Purse;

namespace OpenPurse.Card.Tests;

/// <summary>A whole purchase and a whole credit, APDU by APDU, as the specification's ST11–ST18 and FIG. 24–32.</summary>
public sealed class PurchaseTest
{
    [Fact]
    public void Credit_NewCard_AddsValueAndLogsIt()
    {
        using var kit = new CardKit();

        var outcome = kit.Credit(Eur.Of(5_000));

        Assert.Equal(StatusWord.Ok, outcome.Status);
        Assert.Equal(Eur.Of(5_000), kit.Balance(Currency.Eur));
        Assert.Equal(new CardLogRecord(1, ValueKind.Credit, Eur.Of(5_000), Eur.Of(5_000), outcome.Order.TransactionRef, outcome.Order.Digest).ToBytes(), outcome.Record!.ToBytes());
    }

    [Fact]
    public void Debit_FundedCard_SubtractsWritesLogAndAnswersCompletionNotice()
    {
        using var kit = new CardKit();
        kit.Credit(Eur.Of(5_000));

        var outcome = kit.Debit(Eur.Of(1_250));

        Assert.Equal(StatusWord.Ok, outcome.Status);
        var record = outcome.Record!;
        Assert.Equal((2u, ValueKind.Debit, Eur.Of(1_250), Eur.Of(3_750), outcome.Order.TransactionRef), (record.Counter, record.Kind, record.Amount, record.BalanceAfter, record.TransactionRef));
        Assert.Equal(outcome.Order.Digest.ToArray(), record.Digest.ToArray());
        var status = kit.Status();
        Assert.Equal(2u, status.Counter);
        Assert.Equal(Eur.Of(3_750), status.BalanceOf(Currency.Eur));
    }

    [Fact]
    public void Purchase_TakesFourCardCommands_AndReadsTheBalanceOnTheWay()
    {
        using var kit = new CardKit();
        kit.Credit(Eur.Of(100));
        var before = kit.CommandsSent;

        var outcome = kit.Debit(Eur.Of(40)); // SELECT, INITIALIZE UPDATE, EXTERNAL AUTHENTICATE, DEBIT

        Assert.Equal(StatusWord.Ok, outcome.Status);
        Assert.Equal(4, kit.CommandsSent - before);
        Assert.Equal(Eur.Of(60), outcome.Record!.BalanceAfter);
    }

    [Fact]
    public void ReadPurse_InSession_ReturnsStatusUnderMacAndEncryption()
    {
        using var kit = new CardKit();
        kit.Credit(Eur.Of(999));
        using var session = kit.OpenSession();

        var answer = kit.Send(session.ReadPurse());

        Assert.Equal(StatusWord.Ok, answer.Status);
        Assert.False(PurseStatus.TryParse(answer.Data, out _)); // encrypted on the wire
        Assert.True(session.TryUnwrap(answer, out var plain));
        Assert.True(PurseStatus.TryParse(plain.Data, out var status));
        Assert.Equal(Eur.Of(999), status.BalanceOf(Currency.Eur));
    }

    [Fact]
    public void ReadLog_AfterSeveralMoves_ReturnsNewestFirstInClearAndSecured()
    {
        using var kit = new CardKit();
        kit.Credit(Eur.Of(1_000));
        kit.Debit(Eur.Of(100));
        kit.Debit(Eur.Of(200));

        kit.Send(CardHostSession.Select());
        var clear = kit.Send(CardHostSession.ReadLogClear(0, 3));
        using var session = kit.OpenSession();
        var secured = kit.Send(session.ReadLog(1, 2));

        Assert.True(CardLogRecord.TryParseMany(clear.Data, out var records));
        Assert.Equal([3u, 2u, 1u], records.Select(r => r.Counter));
        Assert.Equal([Eur.Of(700), Eur.Of(900), Eur.Of(1_000)], records.Select(r => r.BalanceAfter));
        Assert.True(session.TryUnwrap(secured, out var plain));
        Assert.True(CardLogRecord.TryParseMany(plain.Data, out var older));
        Assert.Equal([2u, 1u], older.Select(r => r.Counter));
    }

    [Fact]
    public void Log_MoreMovesThanCapacity_KeepsTheNewest()
    {
        using var kit = new CardKit();
        for (var i = 1; i <= CardState.LogCapacity + 2; i++)
        {
            Assert.Equal(StatusWord.Ok, kit.Credit(Eur.Of(i)).Status);
        }

        Assert.Equal(CardState.LogCapacity, kit.Card.State.Log.Count);
        Assert.Equal((uint)CardState.LogCapacity + 2, kit.Card.State.Log[0].Counter);
        Assert.Equal(3u, kit.Card.State.Log[^1].Counter);
    }

    [Fact]
    public void Points_HeldBesideMoney_InTheirOwnPurse()
    {
        using var kit = new CardKit();
        kit.Credit(Eur.Of(500));

        Assert.Equal(StatusWord.Ok, kit.Credit(new Money(120, Currency.Points)).Status);
        Assert.Equal(StatusWord.Ok, kit.Debit(new Money(20, Currency.Points)).Status);

        Assert.Equal(new Money(100, Currency.Points), kit.Balance(Currency.Points));
        Assert.Equal(Eur.Of(500), kit.Balance(Currency.Eur));
    }

    [Fact]
    public void State_SurvivesTheProcess()
    {
        using var kit = new CardKit();
        kit.Credit(Eur.Of(321));

        kit.PowerCycle();

        Assert.Equal(Eur.Of(321), kit.Balance(Currency.Eur));
        Assert.Equal(StatusWord.Ok, kit.Debit(Eur.Of(21)).Status);
        Assert.Equal(Eur.Of(300), kit.Balance(Currency.Eur));
    }

    [Fact]
    public void Create_CardFile_IsReadableByItsOwnerOnly()
    {
        using var kit = new CardKit();
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(kit.Path));
    }
}
