using System.Security.Cryptography;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Channel;
using OpenPurse.Protocol.Purse;

namespace OpenPurse.Card.Tests;

/// <summary>
/// The issuer's side for tests: a master key, per-card keys diversified from it, and the host half
/// of a card session (what the operator's security module and the wallet do together).
/// </summary>
internal sealed class Issuer : IDisposable
{
    public const long BalanceMaxMinor = 1_000_000; // 10 000.00 EUR

    private readonly AesCmac _master = new(RandomNumberGenerator.GetBytes(16));

    public CardPersonalization Personalize(CardId cardId, long balanceMax = BalanceMaxMinor) =>
        new(cardId, 0x01, Diversify(CardKeyUsage.Encryption, cardId), Diversify(CardKeyUsage.Mac, cardId), balanceMax);

    public (AesCmac Enc, AesCmac Mac) StaticKeys(CardId cardId) =>
        (new AesCmac(Diversify(CardKeyUsage.Encryption, cardId)), new AesCmac(Diversify(CardKeyUsage.Mac, cardId)));

    public void Dispose() => _master.Dispose();

    private byte[] Diversify(CardKeyUsage usage, CardId cardId)
    {
        var key = new byte[16];
        KeyDiversification.An10922Aes128(_master, KeyDiversification.CardKeyInput(usage, cardId), key);
        return key;
    }
}

/// <summary>A card in a private temporary directory, with a host to talk to it.</summary>
internal sealed class CardKit : IDisposable
{
    public static readonly CardId TestCardId = CardId.FromSerial(940_000_000_000_001);

    private readonly string _directory = System.IO.Directory.CreateTempSubdirectory("openpurse-card-").FullName;

    public CardKit(long balanceMax = Issuer.BalanceMaxMinor)
    {
        Path = System.IO.Path.Combine(_directory, "card.bin");
        Card = EmulatedCard.Create(Path, Issuer.Personalize(TestCardId, balanceMax));
    }

    public Issuer Issuer { get; } = new();

    public string Path { get; }

    public EmulatedCard Card { get; private set; }

    public string Directory => _directory;

    /// <summary>How many APDUs went to the card.</summary>
    public int CommandsSent { get; private set; }

    public ResponseApdu Send(CommandApdu command) => Send(command.ToBytes());

    public ResponseApdu Send(byte[] command)
    {
        CommandsSent++;
        return ResponseApdu.Parse(Card.Transmit(command));
    }

    /// <summary>Power loss: the process holding the card is gone; the file stays.</summary>
    /// <param name="open">How to open the file again (e.g. behind a stream that tears writes).</param>
    /// <param name="fileWhileOff">Bytes to put in the file while the power is off.</param>
    public void PowerCycle(Func<string, EmulatedCard>? open = null, byte[]? fileWhileOff = null)
    {
        Card.Dispose();
        if (fileWhileOff is not null)
        {
            File.WriteAllBytes(Path, fileWhileOff);
        }

        Card = (open ?? EmulatedCard.Open)(Path);
    }

    /// <summary>The memory file's bytes, read while the card is off (a card holds its file exclusively).</summary>
    public byte[] ReadFileWhileOff()
    {
        Card.Dispose();
        var bytes = File.ReadAllBytes(Path);
        Card = EmulatedCard.Open(Path);
        return bytes;
    }

    /// <summary>SELECT, INITIALIZE UPDATE, check the greeting, EXTERNAL AUTHENTICATE.</summary>
    public CardHostSession OpenSession()
    {
        Assert.Equal(StatusWord.Ok, Send(CardHostSession.Select()).Status);
        var hostChallenge = RandomNumberGenerator.GetBytes(Scp03.ChallengeLength);
        var answer = Send(CardHostSession.InitializeUpdate(hostChallenge));
        Assert.Equal(StatusWord.Ok, answer.Status);
        Assert.True(CardGreeting.TryParse(answer.Data, out var greeting));
        var (enc, mac) = Issuer.StaticKeys(greeting.CardId);
        using (enc)
        using (mac)
        {
            var session = CardHostSession.TryOpen(enc, mac, hostChallenge, greeting, out var error);
            Assert.True(session is not null, $"Greeting refused: {error}");
            Assert.Equal(StatusWord.Ok, Send(session.ExternalAuthenticate()).Status);
            return session;
        }
    }

    /// <summary>A session whose channel the test drives itself, to send what no honest host would build.</summary>
    public SecureChannel OpenRawChannel()
    {
        Assert.Equal(StatusWord.Ok, Send(CardHostSession.Select()).Status);
        var hostChallenge = RandomNumberGenerator.GetBytes(Scp03.ChallengeLength);
        Assert.True(CardGreeting.TryParse(Send(CardHostSession.InitializeUpdate(hostChallenge)).Data, out var greeting));
        var (enc, mac) = Issuer.StaticKeys(greeting.CardId);
        using (enc)
        using (mac)
        using (var keys = Scp03.DeriveSessionKeys(enc, mac, hostChallenge, greeting.CardChallenge.Span))
        using (var sessionMac = new AesCmac(keys.Mac))
        {
            var cryptogram = new byte[Scp03.CryptogramLength];
            Scp03.HostCryptogram(sessionMac, hostChallenge, greeting.CardChallenge.Span, cryptogram);
            var channel = new SecureChannel(keys, SecurityLevel.Full);
            Assert.Equal(StatusWord.Ok, Send(channel.ExternalAuthenticate(cryptogram)).Status);
            return channel;
        }
    }

    public PurseStatus Status()
    {
        Assert.Equal(StatusWord.Ok, Send(CardHostSession.Select()).Status);
        var answer = Send(CardHostSession.GetData());
        Assert.Equal(StatusWord.Ok, answer.Status);
        Assert.True(PurseStatus.TryParse(answer.Data, out var status));
        return status;
    }

    public Money Balance(Currency currency) => Status().BalanceOf(currency) ?? Money.Zero(currency);

    /// <summary>One whole debit or credit; the approval defaults to exactly what the operator ordered.</summary>
    public Outcome Move(ValueKind kind, Money amount, Func<ValueCommand, Approval>? approve = null, Func<uint, uint>? counter = null, Guid? transactionRef = null)
    {
        using var session = OpenSession();
        var digest = transactionRef is { } fixedRef ? fixedRef.ToByteArray().Concat(fixedRef.ToByteArray()).ToArray() : RandomNumberGenerator.GetBytes(32);
        var order = new ValueCommand(transactionRef ?? Guid.NewGuid(), digest, amount, (counter ?? (c => c))(session.Greeting.Status.Counter));
        var secured = kind == ValueKind.Debit ? session.Debit(order) : session.Credit(order);
        var command = CardHostSession.WithApproval(secured, (approve ?? (o => o.ToApproval()))(order));
        var answer = Send(command);
        CardLogRecord? record = null;
        if (answer.IsOk)
        {
            Assert.True(session.TryUnwrap(answer, out var plain), "The card's answer must carry a valid R-MAC.");
            Assert.True(CardLogRecord.TryParse(plain.Data, out record));
        }

        return new Outcome(answer.Status, order, record, command);
    }

    public Outcome Debit(Money amount) => Move(ValueKind.Debit, amount);

    public Outcome Credit(Money amount) => Move(ValueKind.Credit, amount);

    /// <summary>
    /// The card's value-bearing memory (keys, balances, counter, log) as bytes: equal before and after
    /// means no value moved. The session counter, which every INITIALIZE UPDATE advances, is left out.
    /// </summary>
    public byte[] Image() => (Card.State with { SessionCounter = 0 }).ToBytes();

    /// <summary>Bytes one commit of the card's memory writes.</summary>
    public static int SlotLength => new CardMemory(new MemoryStream(), CardState.ImageLength).SlotLength;

    public void Dispose()
    {
        Card.Dispose();
        Issuer.Dispose();
        System.IO.Directory.Delete(_directory, recursive: true);
    }

    public sealed record Outcome(StatusWord Status, ValueCommand Order, CardLogRecord? Record, CommandApdu Command);
}

internal static class Eur
{
    public static Money Of(long cents) => new(cents, Currency.Eur);
}
