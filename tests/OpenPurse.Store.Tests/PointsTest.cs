using Microsoft.Extensions.Configuration;
using OpenPurse.Protocol;
using OpenPurse.Store.Catalog;

namespace OpenPurse.Store.Tests;

/// <summary>What a store's receipts award in points, and which stores may award them.</summary>
public sealed class PointsTest
{
    private static readonly CatalogItem s_book = new("book", "Book", Money.Parse("12.50 EUR"), "text");

    [Theory]
    [InlineData("12.50 EUR", 10, "120 PTS")]
    [InlineData("0.99 EUR", 10, null)]
    [InlineData("1.00 EUR", 1, "1 PTS")]
    [InlineData("1500 JPY", 2, "3000 PTS")]
    [InlineData("12.50 EUR", 0, null)]
    public void PointsFor_WholeUnitsPaidTimesTheRate(string paid, int perUnit, string? awarded)
    {
        var currency = Money.Parse(paid).Currency;
        var store = MemberStore.Create(new MemberStoreOptions("s", "S", [s_book with { Price = new Money(100, currency) }], perUnit));

        Assert.Equal(awarded is null ? null : Money.Parse(awarded), store.PointsFor(Money.Parse(paid)));
    }

    [Theory]
    [InlineData("150 PTS", 1)]
    [InlineData("12.50 EUR", -1)]
    [InlineData("12.50 EUR", MemberStore.PointsPerUnitMax + 1)]
    public void AStoreThatSellsForPointsOrAwardsOutsideTheRange_IsRefused(string price, int perUnit)
    {
        var refusal = Assert.Throws<ArgumentException>(() => MemberStore.Create(new MemberStoreOptions("s", "S", [s_book with { Price = Money.Parse(price) }], perUnit)));

        Assert.Contains("points per unit", refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AStoreThatSellsForPoints_AwardsNone()
    {
        var store = MemberStore.Create(new MemberStoreOptions("s", "S", [s_book with { Price = Money.Parse("150 PTS") }]));

        Assert.Null(store.PointsFor(Money.Parse("150 PTS")));
    }

    [Theory]
    [InlineData(null, 0)]
    [InlineData("10", 10)]
    public void Configuration_ReadsPointsPerUnit(string? setting, int expected)
    {
        Assert.Equal(expected, StoreConfiguration.Read(Configuration(setting)).Members[0].PointsPerUnit);
    }

    [Theory]
    [InlineData("ten")]
    [InlineData("-1")]
    [InlineData("1.5")]
    public void Configuration_PointsPerUnitNotAWholeNumber_IsRefused(string setting)
    {
        var refusal = Assert.Throws<FormatException>(() => StoreConfiguration.Read(Configuration(setting)));

        Assert.Contains("PointsPerUnit", refusal.Message, StringComparison.Ordinal);
    }

    private static IConfigurationSection Configuration(string? pointsPerUnit) => new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
    {
        ["Store:OperatorUrl"] = "http://127.0.0.1:5080",
        ["Store:Members:0:StoreId"] = "s",
        ["Store:Members:0:Name"] = "S",
        ["Store:Members:0:PointsPerUnit"] = pointsPerUnit,
        ["Store:Members:0:Catalog:0:Sku"] = "k",
        ["Store:Members:0:Catalog:0:Title"] = "K",
        ["Store:Members:0:Catalog:0:Price"] = "4.99 EUR",
        ["Store:Members:0:Catalog:0:Content"] = "c",
    }).Build().GetSection(StoreConfiguration.SectionName);
}
