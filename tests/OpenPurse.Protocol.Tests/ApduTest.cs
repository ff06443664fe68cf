using CsCheck;
using OpenPurse.Protocol.Apdu;

namespace OpenPurse.Protocol.Tests;

public class ApduTest
{
    [Fact]
    public void TryParse_Case1_HeaderOnly()
    {
        Assert.True(CommandApdu.TryParse(Convert.FromHexString("80CA0102"), out var command));

        Assert.Equal("80CA0102", Header(command));
        Assert.True(command.Data.IsEmpty);
        Assert.Null(command.Le);
    }

    [Theory]
    [InlineData("80CA000000", 0)] // Le 00 means up to 256 bytes.
    [InlineData("80CA000010", 0x10)]
    [InlineData("80CA0000FF", 0xFF)]
    public void TryParse_Case2_LeOnly(string hex, int le)
    {
        Assert.True(CommandApdu.TryParse(Convert.FromHexString(hex), out var command));

        Assert.True(command.Data.IsEmpty);
        Assert.Equal(le, command.Le);
    }

    [Fact]
    public void TryParse_Case3_DataNoLe()
    {
        Assert.True(CommandApdu.TryParse(Convert.FromHexString("00A4040003A1B2C3"), out var command));

        Assert.Equal(Convert.FromHexString("A1B2C3"), command.Data.ToArray());
        Assert.Null(command.Le);
    }

    [Fact]
    public void TryParse_Case4_DataAndLe()
    {
        Assert.True(CommandApdu.TryParse(Convert.FromHexString("00A4040003A1B2C300"), out var command));

        Assert.Equal("00A40400", Header(command));
        Assert.Equal(Convert.FromHexString("A1B2C3"), command.Data.ToArray());
        Assert.Equal(0, command.Le);
    }

    [Fact]
    public void TryParse_MaximalCase4_Accepts()
    {
        var bytes = new byte[4 + 1 + CommandApdu.DataLengthMax + 1];
        bytes[4] = CommandApdu.DataLengthMax;
        bytes[^1] = 0x42;

        Assert.True(CommandApdu.TryParse(bytes, out var command));
        Assert.Equal(CommandApdu.DataLengthMax, command.Data.Length);
        Assert.Equal(0x42, command.Le);
    }

    [Theory]
    [InlineData("")]
    [InlineData("80")]
    [InlineData("80CA00")] // One byte short of a header.
    [InlineData("80CA00000000")] // Lc = 0: the extended form, which a short APDU never uses.
    [InlineData("80CA0000000001AB")] // Extended Lc 00 00 01 with one data byte.
    [InlineData("80CA000003AABB")] // Lc says 3, 2 data bytes.
    [InlineData("80CA000002AABBCCDD")] // Lc says 2, then 2 data bytes, Le and one more.
    [InlineData("80CA000001AABBCC")] // Lc says 1, then 3 bytes: Lc + data + 2 extra.
    [InlineData("80CA0000FFAABB")] // Lc 255 with nearly no data.
    public void TryParse_Malformed_Refuses(string hex)
    {
        Assert.False(CommandApdu.TryParse(Convert.FromHexString(hex), out var command));
        Assert.Null(command);
    }

    [Fact]
    public void ToBytes_Case4_EncodesLcAndLe() =>
        Assert.Equal(
            Convert.FromHexString("00A4040003A1B2C300"),
            new CommandApdu(0x00, 0xA4, 0x04, 0x00, Convert.FromHexString("A1B2C3"), le: 0).ToBytes());

    [Fact]
    public void ToBytes_ThenTryParse_RoundTrips() =>
        Gen.Select(Gen.Byte, Gen.Byte, Gen.Byte, Gen.Byte, Gen.Byte.Array[0, CommandApdu.DataLengthMax], Gen.Int[-1, 255])
            .Sample((cla, ins, p1, p2, data, leOrNone) =>
            {
                int? le = leOrNone < 0 ? null : leOrNone;
                var bytes = new CommandApdu(cla, ins, p1, p2, data, le).ToBytes();

                Assert.True(CommandApdu.TryParse(bytes, out var parsed));
                Assert.Equal((cla, ins, p1, p2), (parsed.Cla, parsed.Ins, parsed.P1, parsed.P2));
                Assert.Equal(data, parsed.Data.ToArray());
                Assert.Equal(le, parsed.Le);
                Assert.Equal(bytes, parsed.ToBytes());
            });

    [Fact]
    public void Constructor_DataAtLimit_Accepts() =>
        Assert.Equal(CommandApdu.DataLengthMax, new CommandApdu(0x80, 0x54, 0, 0, new byte[CommandApdu.DataLengthMax]).Data.Length);

    [Fact]
    public void Constructor_DataOnePastLimit_Throws() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new CommandApdu(0x80, 0x54, 0, 0, new byte[CommandApdu.DataLengthMax + 1]));

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(255)]
    public void Constructor_LeInRange_Accepts(int le) =>
        Assert.Equal(le, new CommandApdu(0x80, 0xCA, 0, 0, le: le).Le);

    [Theory]
    [InlineData(-1)]
    [InlineData(256)]
    public void Constructor_LeOutOfRange_Throws(int le) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new CommandApdu(0x80, 0xCA, 0, 0, le: le));

    [Fact]
    public void Constructor_Data_IsCopied()
    {
        var data = new byte[] { 1, 2, 3 };
        var command = new CommandApdu(0x80, 0x54, 0, 0, data);

        data[0] = 0xFF;

        Assert.Equal(1, command.Data[0]);
    }

    [Fact]
    public void Parse_OneByte_ThrowsFormatException() =>
        Assert.Throws<FormatException>(() => ResponseApdu.Parse([0x90]));

    [Fact]
    public void Parse_Empty_ThrowsFormatException() =>
        Assert.Throws<FormatException>(() => ResponseApdu.Parse([]));

    [Fact]
    public void Parse_StatusOnly_Accepts()
    {
        var response = ResponseApdu.Parse([0x90, 0x00]);

        Assert.True(response.Data.IsEmpty);
        Assert.Equal(StatusWord.Ok, response.Status);
        Assert.True(response.IsOk);
    }

    [Fact]
    public void Parse_MaximalResponse_Accepts()
    {
        var bytes = new byte[ResponseApdu.DataLengthMax + 2];
        bytes[0] = 0x11;
        bytes[^2] = 0x94;
        bytes[^1] = 0x01;

        var response = ResponseApdu.Parse(bytes);

        Assert.Equal(258, bytes.Length);
        Assert.Equal(ResponseApdu.DataLengthMax, response.Data.Length);
        Assert.Equal(0x11, response.Data[0]);
        Assert.Equal(StatusWord.InsufficientValue, response.Status);
        Assert.False(response.IsOk);
    }

    [Fact]
    public void Parse_OnePastMaximalResponse_ThrowsFormatException() =>
        Assert.Throws<FormatException>(() => ResponseApdu.Parse(new byte[ResponseApdu.DataLengthMax + 3]));

    [Fact]
    public void Constructor_DataOnePastLimit_ThrowsForResponse() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new ResponseApdu(new byte[ResponseApdu.DataLengthMax + 1], StatusWord.Ok));

    [Fact]
    public void ToBytes_ThenParse_RoundTripsResponse() =>
        Gen.Select(Gen.Byte.Array[0, ResponseApdu.DataLengthMax], Gen.UShort).Sample((data, status) =>
        {
            var bytes = new ResponseApdu(data, (StatusWord)status).ToBytes();
            var parsed = ResponseApdu.Parse(bytes);

            Assert.Equal(data, parsed.Data.ToArray());
            Assert.Equal((StatusWord)status, parsed.Status);
            Assert.Equal(bytes, parsed.ToBytes());
        });

    [Theory]
    [InlineData(StatusWord.ApprovalMismatch, 0x94, 0x03)]
    [InlineData(StatusWord.Ok, 0x90, 0x00)]
    [InlineData(StatusWord.WrongData, 0x6A, 0x80)]
    [InlineData(StatusWord.SecurityStatusNotSatisfied, 0x69, 0x82)]
    public void ToBytes_StatusWord_IsSw1ThenSw2(StatusWord status, byte sw1, byte sw2) =>
        Assert.Equal(new byte[] { 0xAB, sw1, sw2 }, new ResponseApdu([0xAB], status).ToBytes());

    private static string Header(CommandApdu command) => Convert.ToHexString([command.Cla, command.Ins, command.P1, command.P2]);
}
