using System.Security.Cryptography;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Channel;
using OpenPurse.Protocol.Purse;

namespace OpenPurse.Card.Tests;

/// <summary>Replays, tampering and the approval check (docs/protocol.md, the properties we promise): each refused, nothing changed.</summary>
public sealed class SecurityTest
{
    [Fact]
    public void Debit_ApprovedAmountDiffersFromOperatorsOrder_RefusedWithApprovalMismatch()
    {
        using var kit = new CardKit();
        kit.Credit(Eur.Of(5_000));
        var before = kit.Image();

        // The operator's encrypted order says 12.00; the person approved 10.00.
        var outcome = kit.Move(ValueKind.Debit, Eur.Of(1_200), order => new Approval(Eur.Of(1_000), order.Digest));

        Assert.Equal(StatusWord.ApprovalMismatch, outcome.Status);
        Assert.Equal(before, kit.Image());
    }

    [Fact]
    public void Debit_ApprovedBillDiffersFromOperatorsOrder_RefusedWithApprovalMismatch()
    {
        using var kit = new CardKit();
        kit.Credit(Eur.Of(5_000));
        var before = kit.Image();

        var outcome = kit.Move(ValueKind.Debit, Eur.Of(1_000), order => new Approval(order.Amount, SHA256.HashData("another bill"u8)));

        Assert.Equal(StatusWord.ApprovalMismatch, outcome.Status);
        Assert.Equal(before, kit.Image());
    }

    [Fact]
    public void Debit_ApprovedCurrencyDiffers_RefusedWithApprovalMismatch()
    {
        using var kit = new CardKit();
        kit.Credit(Eur.Of(5_000));

        var outcome = kit.Move(ValueKind.Debit, Eur.Of(1_000), order => new Approval(new Money(1_000, Currency.Usd), order.Digest));

        Assert.Equal(StatusWord.ApprovalMismatch, outcome.Status);
        Assert.Equal(Eur.Of(5_000), kit.Balance(Currency.Eur));
    }

    [Fact]
    public void Debit_ReplayedInSameSession_FailsMacAndChangesNothing()
    {
        using var kit = new CardKit();
        kit.Credit(Eur.Of(5_000));
        using var session = kit.OpenSession();
        var order = new ValueCommand(Guid.NewGuid(), new byte[32], Eur.Of(100), session.Greeting.Status.Counter);
        var command = CardHostSession.WithApproval(session.Debit(order), order.ToApproval());
        Assert.Equal(StatusWord.Ok, kit.Send(command).Status);
        var after = kit.Image();

        Assert.Equal(StatusWord.SecurityStatusNotSatisfied, kit.Send(command).Status);
        Assert.Equal(after, kit.Image());
        Assert.Equal(Eur.Of(4_900), kit.Balance(Currency.Eur));
    }

    [Fact]
    public void Debit_RecordedThenReplayedInNewSession_FailsMac()
    {
        using var kit = new CardKit();
        kit.Credit(Eur.Of(5_000));
        var recorded = kit.Debit(Eur.Of(100)).Command;
        kit.OpenSession().Dispose();
        var before = kit.Image();

        Assert.Equal(StatusWord.SecurityStatusNotSatisfied, kit.Send(recorded).Status);
        Assert.Equal(before, kit.Image());
    }

    [Fact]
    public void WholeExchange_RecordedAndReplayedWithSameHostChallenge_IsRefusedAtExternalAuthenticate()
    {
        using var kit = new CardKit();
        kit.Credit(Eur.Of(5_000));
        var hostChallenge = RandomNumberGenerator.GetBytes(8);
        kit.Send(CardHostSession.Select());
        Assert.True(CardGreeting.TryParse(kit.Send(CardHostSession.InitializeUpdate(hostChallenge)).Data, out var greeting));
        var (enc, mac) = kit.Issuer.StaticKeys(greeting.CardId);
        using var session = CardHostSession.TryOpen(enc, mac, hostChallenge, greeting, out _)!;
        var externalAuthenticate = session.ExternalAuthenticate();
        Assert.Equal(StatusWord.Ok, kit.Send(externalAuthenticate).Status);
        enc.Dispose();
        mac.Dispose();

        // A fresh INITIALIZE UPDATE with the same host challenge: the card's random challenge moves the keys.
        kit.Send(CardHostSession.Select());
        Assert.Equal(StatusWord.Ok, kit.Send(CardHostSession.InitializeUpdate(hostChallenge)).Status);
        Assert.Equal(StatusWord.SecurityStatusNotSatisfied, kit.Send(externalAuthenticate).Status);
    }

    [Fact]
    public void Debit_OrderForAnOlderCounter_RefusedWithCounterMismatch()
    {
        using var kit = new CardKit();
        kit.Credit(Eur.Of(5_000));
        var before = kit.Image();

        var outcome = kit.Move(ValueKind.Debit, Eur.Of(100), counter: c => c - 1);

        Assert.Equal(StatusWord.CounterMismatch, outcome.Status);
        Assert.Equal(before, kit.Image());
    }

    [Fact]
    public void Debit_AnyByteOfSecuredPartChanged_RefusedAndNothingChanges()
    {
        using var kit = new CardKit();
        kit.Credit(Eur.Of(5_000));
        var before = kit.Image();
        var length = 0;
        for (var i = 0; i == 0 || i < length; i++)
        {
            using var session = kit.OpenSession();
            var order = new ValueCommand(Guid.NewGuid(), new byte[32], Eur.Of(100), session.Greeting.Status.Counter);
            var command = CardHostSession.WithApproval(session.Debit(order), order.ToApproval());
            var secured = command.Data[Approval.Length..].ToArray();
            length = secured.Length;
            secured[i] ^= 0x80;
            var tampered = command.With(command.Cla, [.. order.ToApproval().ToBytes(), .. secured]);

            Assert.Equal(StatusWord.SecurityStatusNotSatisfied, kit.Send(tampered).Status);
        }

        Assert.Equal(before, kit.Image());
    }

    [Fact]
    public void Debit_HeaderChanged_FailsMac()
    {
        using var kit = new CardKit();
        kit.Credit(Eur.Of(5_000));
        using var session = kit.OpenSession();
        var order = new ValueCommand(Guid.NewGuid(), new byte[32], Eur.Of(100), session.Greeting.Status.Counter);
        var command = CardHostSession.WithApproval(session.Debit(order), order.ToApproval());
        // Same secured data sent as a CREDIT: the INS is under the MAC.
        var asCredit = new CommandApdu(command.Cla, PurseInstruction.Credit, command.P1, command.P2, command.Data, command.Le);

        Assert.Equal(StatusWord.SecurityStatusNotSatisfied, kit.Send(asCredit).Status);
        Assert.Equal(Eur.Of(5_000), kit.Balance(Currency.Eur));
    }

    [Fact]
    public void AfterRefusal_SessionIsClosed()
    {
        using var kit = new CardKit();
        kit.Credit(Eur.Of(5_000));
        using var session = kit.OpenSession();
        var bad = session.ReadPurse();
        var tampered = bad.With(bad.Cla, bad.Data.ToArray().Select((b, i) => i == 0 ? (byte)(b ^ 1) : b).ToArray());
        Assert.Equal(StatusWord.SecurityStatusNotSatisfied, kit.Send(tampered).Status);

        // The host's next, correctly chained command is refused too: the card dropped the session.
        Assert.Equal(StatusWord.SecurityStatusNotSatisfied, kit.Send(session.ReadPurse()).Status);
    }

    [Fact]
    public void Greeting_BalanceChangedOnTheWay_FailsStatusMac()
    {
        using var kit = new CardKit();
        kit.Credit(Eur.Of(5_000));
        var hostChallenge = RandomNumberGenerator.GetBytes(8);
        kit.Send(CardHostSession.Select());
        var data = kit.Send(CardHostSession.InitializeUpdate(hostChallenge)).Data.ToArray();
        data[^9] ^= 0x01; // last byte of the EUR balance
        Assert.True(CardGreeting.TryParse(data, out var greeting));
        var (enc, mac) = kit.Issuer.StaticKeys(greeting.CardId);

        Assert.Null(CardHostSession.TryOpen(enc, mac, hostChallenge, greeting, out var error));
        Assert.Equal(CardAuthenticationError.StatusMacInvalid, error);
        enc.Dispose();
        mac.Dispose();
    }

    [Fact]
    public void Greeting_FromACardWithOtherKeys_FailsCardCryptogram()
    {
        using var kit = new CardKit();
        using var otherIssuer = new Issuer();
        var hostChallenge = RandomNumberGenerator.GetBytes(8);
        kit.Send(CardHostSession.Select());
        Assert.True(CardGreeting.TryParse(kit.Send(CardHostSession.InitializeUpdate(hostChallenge)).Data, out var greeting));
        var (enc, mac) = otherIssuer.StaticKeys(greeting.CardId);

        Assert.Null(CardHostSession.TryOpen(enc, mac, hostChallenge, greeting, out var error));
        Assert.Equal(CardAuthenticationError.CardCryptogramInvalid, error);
        enc.Dispose();
        mac.Dispose();
    }

    [Fact]
    public void ExternalAuthenticate_WrongHostCryptogram_Refused()
    {
        using var kit = new CardKit();
        var hostChallenge = RandomNumberGenerator.GetBytes(8);
        kit.Send(CardHostSession.Select());
        Assert.True(CardGreeting.TryParse(kit.Send(CardHostSession.InitializeUpdate(hostChallenge)).Data, out var greeting));
        var (enc, mac) = kit.Issuer.StaticKeys(greeting.CardId);
        using var keys = Scp03.DeriveSessionKeys(enc, mac, hostChallenge, greeting.CardChallenge.Span);
        using var channel = new SecureChannel(keys, SecurityLevel.Full);
        enc.Dispose();
        mac.Dispose();

        // Correct MAC over a wrong cryptogram: the host holds the keys but got the cryptogram wrong.
        Assert.Equal(StatusWord.AuthenticationFailed, kit.Send(channel.ExternalAuthenticate(new byte[8])).Status);
    }

    [Fact]
    public void InitializeUpdate_EveryGreeting_CarriesAHigherSessionCounter_AlsoAcrossPowerLoss()
    {
        using var kit = new CardKit();
        uint Greet()
        {
            kit.Send(CardHostSession.Select());
            Assert.True(CardGreeting.TryParse(kit.Send(CardHostSession.InitializeUpdate(new byte[8])).Data, out var greeting));
            return greeting.SessionCounter;
        }

        var first = Greet();
        var second = Greet();
        kit.PowerCycle();
        var third = Greet();

        Assert.True(first < second && second < third, $"{first}, {second}, {third}");
    }
}
