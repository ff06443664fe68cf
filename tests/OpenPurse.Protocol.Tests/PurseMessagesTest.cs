using CsCheck;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Purse;

namespace OpenPurse.Protocol.Tests;

public class PurseMessagesTest
{
    private static readonly CardId s_cardId = CardId.FromSerial(400_000_000_000_001);
    private static readonly byte[] s_digest = [.. Enumerable.Range(0, Approval.DigestLength).Select(i => (byte)(0xA0 + i))];
    private static readonly Guid s_transactionRef = Guid.Parse("00112233-4455-6677-8899-aabbccddeeff");

    private static readonly Gen<Money> s_genAmount =
        Gen.Select(Gen.Long[0, Money.MaxMinorUnits], Gen.OneOf(Currency.Eur, Currency.Usd, Currency.Jpy, Currency.Points))
            .Select((minor, currency) => new Money(minor, currency));

    private static readonly Gen<CardId> s_genCardId = Gen.ULong[100_000_000_000_000, 999_999_999_999_999].Select(CardId.FromSerial);
    private static readonly Gen<byte[]> s_genDigest = Gen.Byte.Array[Approval.DigestLength];

    [Fact]
    public void PurseStatus_ToBytes_ThenTryParse_RoundTrips() =>
        Gen.Select(s_genCardId, Gen.UInt, s_genAmount.Array[0, PurseStatus.PursesMax]).Sample((cardId, counter, generated) =>
        {
            var balances = generated.DistinctBy(b => b.Currency).ToArray();
            var status = new PurseStatus(cardId, counter, balances);
            var bytes = status.ToBytes();

            Assert.True(bytes.Length <= PurseStatus.LengthMax);
            Assert.True(PurseStatus.TryParse(bytes, out var parsed));
            Assert.Equal(cardId, parsed.CardId);
            Assert.Equal(counter, parsed.Counter);
            Assert.Equal(balances, parsed.Balances);
        });

    [Fact]
    public void PurseStatus_ToBytes_KnownLayout()
    {
        var status = new PurseStatus(s_cardId, 0x01020304, [new Money(1234, Currency.Eur), new Money(7, Currency.Points)]);

        // card id ‖ counter ‖ n ‖ (EUR = 978 = 03D2, 1234 = 04D2) ‖ (PTS = 0000, 7).
        Assert.Equal(
            "000E35FA931A000A" + "01020304" + "02" + "03D2" + "00000000000004D2" + "0000" + "0000000000000007",
            Convert.ToHexString(status.ToBytes()));
    }

    [Fact]
    public void PurseStatus_BalanceOf_FindsPurseOrNull()
    {
        var status = new PurseStatus(s_cardId, 1, [new Money(1234, Currency.Eur)]);

        Assert.Equal(new Money(1234, Currency.Eur), status.BalanceOf(Currency.Eur));
        Assert.Null(status.BalanceOf(Currency.Usd));
    }

    [Fact]
    public void PurseStatus_TryParse_FivePurses_Refuses()
    {
        var four = new PurseStatus(s_cardId, 1, [new Money(1, Currency.Eur), new Money(1, Currency.Usd), new Money(1, Currency.Jpy), new Money(1, Currency.Points)]).ToBytes();
        var five = new byte[four.Length + 10];
        four.CopyTo(five, 0);
        four.AsSpan(four.Length - 10).CopyTo(five.AsSpan(four.Length));
        five[CardId.Length + 4] = PurseStatus.PursesMax + 1;

        Assert.True(PurseStatus.TryParse(four, out _));
        Assert.False(PurseStatus.TryParse(five, out _));
    }

    [Fact]
    public void PurseStatus_TryParse_TwoPursesOfOneCurrency_Refuses()
    {
        var twice = new PurseStatus(s_cardId, 1, [new Money(1, Currency.Eur), new Money(2, Currency.Eur)]).ToBytes();

        Assert.False(PurseStatus.TryParse(twice, out _));
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(1)]
    public void PurseStatus_TryParse_WrongLength_Refuses(int delta)
    {
        var bytes = new PurseStatus(s_cardId, 1, [new Money(1, Currency.Eur)]).ToBytes();

        Assert.False(PurseStatus.TryParse(Resized(bytes, delta), out _));
    }

    [Fact]
    public void PurseStatus_TryParse_TooShortForHeader_Refuses()
    {
        var bytes = new PurseStatus(s_cardId, 1, []).ToBytes();

        Assert.True(PurseStatus.TryParse(bytes, out _));
        Assert.False(PurseStatus.TryParse(bytes.AsSpan(0, bytes.Length - 1), out _));
        Assert.False(PurseStatus.TryParse([], out _));
    }

    [Fact]
    public void PurseStatus_TryParse_BadCardId_Refuses()
    {
        var bytes = new PurseStatus(s_cardId, 1, []).ToBytes();
        bytes[CardId.Length - 1] ^= 1; // 4000000000000011: wrong check digit.

        Assert.False(PurseStatus.TryParse(bytes, out _));
    }

    [Fact]
    public void PurseStatus_TryParse_BadBalance_Refuses()
    {
        var bytes = new PurseStatus(s_cardId, 1, [new Money(1, Currency.Eur)]).ToBytes();

        Assert.False(PurseStatus.TryParse(WithUnknownCurrency(bytes, CardId.Length + 5), out _));
        Assert.False(PurseStatus.TryParse(WithNegativeAmount(bytes, CardId.Length + 5), out _));
    }

    [Fact]
    public void Approval_ToBytes_KnownLayout()
    {
        var bytes = new Approval(new Money(1234, Currency.Eur), s_digest).ToBytes();

        Assert.Equal(Approval.Length, bytes.Length);
        Assert.Equal("03D2" + "00000000000004D2" + Convert.ToHexString(s_digest), Convert.ToHexString(bytes));
    }

    [Fact]
    public void Approval_ToBytes_ThenTryParse_RoundTrips() =>
        Gen.Select(s_genAmount, s_genDigest).Sample((amount, digest) =>
        {
            Assert.True(Approval.TryParse(new Approval(amount, digest).ToBytes(), out var parsed));
            Assert.Equal(amount, parsed.Amount);
            Assert.Equal(digest, parsed.Digest.ToArray());
        });

    [Theory]
    [InlineData(-1)]
    [InlineData(1)]
    public void Approval_TryParse_WrongLength_Refuses(int delta)
    {
        var bytes = new Approval(new Money(1, Currency.Eur), s_digest).ToBytes();

        Assert.False(Approval.TryParse(Resized(bytes, delta), out _));
    }

    [Fact]
    public void Approval_TryParse_BadAmount_Refuses()
    {
        var bytes = new Approval(new Money(1, Currency.Eur), s_digest).ToBytes();

        Assert.False(Approval.TryParse(WithUnknownCurrency(bytes, 0), out _));
        Assert.False(Approval.TryParse(WithNegativeAmount(bytes, 0), out _));
        Assert.False(Approval.TryParse(WithMinorUnits(bytes, 0, Money.MaxMinorUnits + 1), out _));
        Assert.True(Approval.TryParse(WithMinorUnits(bytes, 0, Money.MaxMinorUnits), out _));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(Approval.DigestLength - 1)]
    [InlineData(Approval.DigestLength + 1)]
    public void ToBytes_DigestOfWrongLength_Throws(int length)
    {
        var digest = new byte[length];
        var amount = new Money(1, Currency.Eur);

        Assert.Throws<ArgumentException>(() => new Approval(amount, digest).ToBytes());
        Assert.Throws<ArgumentException>(() => new ValueCommand(s_transactionRef, digest, amount, 1).ToBytes());
        Assert.Throws<ArgumentException>(() => new CardLogRecord(1, ValueKind.Debit, amount, amount, s_transactionRef, digest).ToBytes());
    }

    [Fact]
    public void ValueCommand_ToBytes_KnownLayout()
    {
        var bytes = new ValueCommand(s_transactionRef, s_digest, new Money(1234, Currency.Eur), 0x0A0B0C0D).ToBytes();

        Assert.Equal(
            "00112233445566778899AABBCCDDEEFF" + Convert.ToHexString(s_digest) + "03D2" + "00000000000004D2" + "0A0B0C0D",
            Convert.ToHexString(bytes));
    }

    [Fact]
    public void ValueCommand_ToBytes_ThenTryParse_RoundTrips() =>
        Gen.Select(Gen.Guid, s_genDigest, s_genAmount, Gen.UInt).Sample((transactionRef, digest, amount, counter) =>
        {
            var command = new ValueCommand(transactionRef, digest, amount, counter);

            Assert.True(ValueCommand.TryParse(command.ToBytes(), out var parsed));
            Assert.Equal(transactionRef, parsed.TransactionRef);
            Assert.Equal(digest, parsed.Digest.ToArray());
            Assert.Equal(amount, parsed.Amount);
            Assert.Equal(counter, parsed.ExpectedCounter);
            Assert.Equal(amount, parsed.ToApproval().Amount);
            Assert.True(parsed.ToApproval().Digest.Span.SequenceEqual(digest));
        });

    [Theory]
    [InlineData(-1)]
    [InlineData(1)]
    public void ValueCommand_TryParse_WrongLength_Refuses(int delta)
    {
        var bytes = new ValueCommand(s_transactionRef, s_digest, new Money(1, Currency.Eur), 1).ToBytes();

        Assert.False(ValueCommand.TryParse(Resized(bytes, delta), out _));
    }

    [Fact]
    public void ValueCommand_TryParse_BadAmount_Refuses()
    {
        const int AmountOffset = 16 + Approval.DigestLength;
        var bytes = new ValueCommand(s_transactionRef, s_digest, new Money(1, Currency.Eur), 1).ToBytes();

        Assert.False(ValueCommand.TryParse(WithUnknownCurrency(bytes, AmountOffset), out _));
        Assert.False(ValueCommand.TryParse(WithNegativeAmount(bytes, AmountOffset), out _));
    }

    [Fact]
    public void CardLogRecord_ToBytes_KnownLayout()
    {
        var record = new CardLogRecord(0x0A0B0C0D, ValueKind.Credit, new Money(1234, Currency.Eur), new Money(5000, Currency.Eur), s_transactionRef, s_digest);

        Assert.Equal(
            "0A0B0C0D" + "02" + "03D2" + "00000000000004D2" + "03D2" + "0000000000001388"
                + "00112233445566778899AABBCCDDEEFF" + Convert.ToHexString(s_digest),
            Convert.ToHexString(record.ToBytes()));
    }

    [Fact]
    public void CardLogRecord_ToBytes_ThenTryParse_RoundTrips() =>
        Gen.Select(Gen.UInt, Gen.OneOf(ValueKind.Debit, ValueKind.Credit), s_genAmount, Gen.Long[0, Money.MaxMinorUnits], Gen.Guid, s_genDigest)
            .Sample((counter, kind, amount, balanceMinor, transactionRef, digest) =>
            {
                var balanceAfter = new Money(balanceMinor, amount.Currency);
                var bytes = new CardLogRecord(counter, kind, amount, balanceAfter, transactionRef, digest).ToBytes();

                Assert.Equal(CardLogRecord.Length, bytes.Length);
                Assert.True(CardLogRecord.TryParse(bytes, out var parsed));
                Assert.Equal(counter, parsed.Counter);
                Assert.Equal(kind, parsed.Kind);
                Assert.Equal(amount, parsed.Amount);
                Assert.Equal(balanceAfter, parsed.BalanceAfter);
                Assert.Equal(transactionRef, parsed.TransactionRef);
                Assert.Equal(digest, parsed.Digest.ToArray());
            });

    [Theory]
    [InlineData(-1)]
    [InlineData(1)]
    public void CardLogRecord_TryParse_WrongLength_Refuses(int delta) =>
        Assert.False(CardLogRecord.TryParse(Resized(LogRecordBytes(), delta), out _));

    [Theory]
    [InlineData(0x00)]
    [InlineData(0x03)]
    [InlineData(0xFF)]
    public void CardLogRecord_TryParse_UnknownKind_Refuses(byte kind)
    {
        var bytes = LogRecordBytes();
        bytes[4] = kind;

        Assert.False(CardLogRecord.TryParse(bytes, out _));
    }

    [Fact]
    public void CardLogRecord_TryParse_BadAmounts_Refuses()
    {
        const int AmountOffset = 5;
        const int BalanceOffset = 5 + 10;
        var bytes = LogRecordBytes();

        Assert.True(CardLogRecord.TryParse(bytes, out _));
        Assert.False(CardLogRecord.TryParse(WithUnknownCurrency(bytes, AmountOffset), out _));
        Assert.False(CardLogRecord.TryParse(WithUnknownCurrency(bytes, BalanceOffset), out _));
        Assert.False(CardLogRecord.TryParse(WithNegativeAmount(bytes, AmountOffset), out _));
        Assert.False(CardLogRecord.TryParse(WithNegativeAmount(bytes, BalanceOffset), out _));
    }

    [Fact]
    public void CardLogRecord_TryParse_BalanceInOtherCurrency_Refuses()
    {
        // The amount is in euro; the balance after it claims to be in dollars.
        var bytes = LogRecordBytes();
        bytes[15] = 0x03;
        bytes[16] = 0x48; // 840 = USD.

        Assert.False(CardLogRecord.TryParse(bytes, out _));
    }

    [Fact]
    public void CardLogRecord_TryParseMany_RoundTripsAndRefusesPartialRecord()
    {
        var first = new CardLogRecord(2, ValueKind.Debit, new Money(100, Currency.Eur), new Money(0, Currency.Eur), s_transactionRef, s_digest);
        var second = new CardLogRecord(1, ValueKind.Credit, new Money(100, Currency.Eur), new Money(100, Currency.Eur), Guid.Empty, s_digest);
        var bytes = first.ToBytes().Concat(second.ToBytes()).ToArray();

        Assert.True(CardLogRecord.TryParseMany(bytes, out var records));
        Assert.Equal(new uint[] { 2, 1 }, records.Select(r => r.Counter));
        Assert.True(CardLogRecord.TryParseMany([], out var none));
        Assert.Empty(none);
        Assert.False(CardLogRecord.TryParseMany(bytes.AsSpan(0, bytes.Length - 1), out _));
    }

    [Theory]
    [InlineData(PurseInstruction.ReadPurse)]
    [InlineData(PurseInstruction.ReadLog)]
    [InlineData(PurseInstruction.GetData)]
    [InlineData(PurseInstruction.ExternalAuthenticate)]
    public void WithApproval_NotDebitOrCredit_Throws(byte ins)
    {
        var secured = new CommandApdu(PurseInstruction.ClaSecured, ins, 0, 0, [1, 2, 3], le: 0);
        var approval = new Approval(new Money(1, Currency.Eur), s_digest);

        Assert.Throws<ArgumentException>(() => CardHostSession.WithApproval(secured, approval));
    }

    [Theory]
    [InlineData(PurseInstruction.Debit)]
    [InlineData(PurseInstruction.Credit)]
    public void WithApproval_DebitOrCredit_PutsApprovalFirst(byte ins)
    {
        byte[] securedData = [.. Enumerable.Range(0, 72).Select(i => (byte)i)];
        var secured = new CommandApdu(PurseInstruction.ClaSecured, ins, 0x01, 0x02, securedData, le: 0);
        var approval = new Approval(new Money(1234, Currency.Eur), s_digest);

        var command = CardHostSession.WithApproval(secured, approval);

        Assert.Equal(42, Approval.Length);
        Assert.Equal(approval.ToBytes(), command.Data[..Approval.Length].ToArray());
        Assert.Equal(securedData, command.Data[Approval.Length..].ToArray());
        Assert.Equal(
            (secured.Cla, secured.Ins, secured.P1, secured.P2, secured.Le),
            (command.Cla, command.Ins, command.P1, command.P2, command.Le));
    }

    private static byte[] LogRecordBytes() =>
        new CardLogRecord(7, ValueKind.Debit, new Money(1234, Currency.Eur), new Money(5000, Currency.Eur), s_transactionRef, s_digest).ToBytes();

    // A copy cut short by one byte, or with a zero byte appended.
    private static byte[] Resized(byte[] bytes, int delta)
    {
        var copy = new byte[bytes.Length + delta];
        bytes.AsSpan(0, Math.Min(bytes.Length, copy.Length)).CopyTo(copy);
        return copy;
    }

    // Copies of an encoding with the 10-byte amount at offset changed.
    private static byte[] WithUnknownCurrency(byte[] bytes, int offset)
    {
        var copy = (byte[])bytes.Clone();
        copy[offset] = 0x00;
        copy[offset + 1] = 0x01; // ISO 4217 assigns no 001, and OpenPurse knows none.
        return copy;
    }

    private static byte[] WithNegativeAmount(byte[] bytes, int offset) => WithMinorUnits(bytes, offset, -1);

    private static byte[] WithMinorUnits(byte[] bytes, int offset, long minorUnits)
    {
        var copy = (byte[])bytes.Clone();
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(copy.AsSpan(offset + 2), minorUnits);
        return copy;
    }
}
