using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Protocol.Tests;

/// <summary>A store's statement goes in pages small enough to sign, in one order both sides agree on.</summary>
public class StoreStatementTest
{
    [Fact]
    public void TheLongestPage_SignsWithinTheJwsLimit_AndVerifies()
    {
        // Ids of 64 characters, an order number of such an issuer with the longest sequence, the largest amount.
        var storeId = new string('s', 64);
        var lines = Enumerable.Range(0, StoreStatement.PageLinesMax)
            .Select(i => new StatementLine(Guid.NewGuid(), $"{new string('m', 64)}-{long.MaxValue - i}", new Money(-Money.MaxMinorUnits, Currency.Eur)))
            .ToList();
        using var key = EcdsaSigningKey.Generate();

        var page = SignedMessage.Sign(key, new StoreStatement(storeId, DateTimeOffset.MaxValue, lines, Guid.NewGuid(), More: true), MessageTypes.Statement);

        Assert.True(page.Length <= Jws.CompactLengthMax, $"{page.Length} characters");
        var read = SignedMessage.Verify<StoreStatement>(page, new JsonWebKeySet([key.PublicKey]), MessageTypes.Statement, out var error);
        Assert.True(read is not null, error);
        Assert.Equal(lines, read.Paid);
    }

    [Fact]
    public void Follows_StrictlyAfter_InTheOrderOfTheIdsLowercaseText()
    {
        // A store in any language sorts its ids' text ("D" format, lowercase): digits before letters, left to right.
        var nine = new Guid("00000009-ffff-ffff-ffff-ffffffffffff");
        var ten = new Guid("0000000a-0000-0000-0000-000000000000");
        Assert.True(StoreStatement.Follows(null, nine));
        Assert.True(StoreStatement.Follows(nine, ten));
        Assert.False(StoreStatement.Follows(ten, nine));
        Assert.False(StoreStatement.Follows(ten, ten));
    }
}
