using System.Diagnostics;
using System.Text.RegularExpressions;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Jose;

namespace OpenPurse.Store.Catalog;

/// <summary>
/// The stores this process serves, checked once at start: ids that are safe as file names and
/// order-number prefixes, one currency per store, prices small enough that no order can overflow.
/// </summary>
internal sealed partial class StoreDirectory
{
    /// <summary>At most as many stores as one published key set can hold keys for.</summary>
    public const int MembersMax = JsonWebKeySet.KeysMax;

    public const int CatalogItemsMax = 1_000;
    public const int OrderItemsMax = 20;
    public const int QuantityMax = 100;
    public const int IdLengthMax = 40;
    public const int SkuLengthMax = 64;
    public const int TitleLengthMax = 200;
    public const int ContentLengthMax = 1 << 20;

    /// <summary>
    /// The highest unit price: <see cref="OrderItemsMax"/> lines of <see cref="QuantityMax"/> units each
    /// still sum to at most <see cref="Money.MaxMinorUnits"/>, so pricing an order never overflows.
    /// </summary>
    public const long PriceMinorMax = Money.MaxMinorUnits / (OrderItemsMax * QuantityMax);

    private readonly Dictionary<string, MemberStore> _byId;

    private StoreDirectory(string? mallId, IReadOnlyList<MemberStore> members)
    {
        MallId = mallId;
        Members = members;
        _byId = members.ToDictionary(m => m.StoreId, StringComparer.Ordinal);
    }

    /// <summary>The mall, which issues the order numbers; null for a single store.</summary>
    public string? MallId { get; }

    public IReadOnlyList<MemberStore> Members { get; }

    public MemberStore? Find(string? storeId) =>
        storeId is not null && _byId.TryGetValue(storeId, out var store) ? store : null;

    /// <summary>Whose namespace a store's order numbers are in: the mall's when there is one (spec: the mall issues order numbers).</summary>
    public string IssuerFor(MemberStore store) => MallId ?? store.StoreId;

    /// <summary>Checks the options and builds the directory.</summary>
    /// <exception cref="ArgumentException">The options name no store, an invalid id, a duplicate, or an invalid catalog item.</exception>
    public static StoreDirectory Create(StoreOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.MallId is not null && !IsValidId(options.MallId))
        {
            throw new ArgumentException($"The mall id '{options.MallId}' is not valid: {IdRule}.", nameof(options));
        }

        if (options.Members is null || options.Members.Count is 0 or > MembersMax)
        {
            throw new ArgumentException($"A store process serves 1 to {MembersMax} stores.", nameof(options));
        }

        var members = new List<MemberStore>(options.Members.Count);
        foreach (var member in options.Members)
        {
            members.Add(MemberStore.Create(member ?? throw new ArgumentException("A member store is null.", nameof(options))));
        }

        var duplicate = members.GroupBy(m => m.StoreId, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new ArgumentException($"Store id '{duplicate.Key}' is given twice.", nameof(options));
        }

        return new StoreDirectory(options.MallId, members);
    }

    public const string IdRule = "1 to 40 lower-case letters, digits and '-', starting and ending with a letter or digit";

    public static bool IsValidId(string? id) => id is { Length: > 0 and <= IdLengthMax } && IdPattern().IsMatch(id);

    [GeneratedRegex("^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$", RegexOptions.CultureInvariant)]
    private static partial Regex IdPattern();

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._-]*$", RegexOptions.CultureInvariant)]
    internal static partial Regex SkuPattern();
}

/// <summary>One (member) store and its catalog, found by sku.</summary>
internal sealed class MemberStore
{
    private readonly Dictionary<string, CatalogItem> _bySku;

    /// <summary>The most points per unit a store may award: far above any loyalty scheme, far below an overflow.</summary>
    public const int PointsPerUnitMax = 1_000;

    private MemberStore(string storeId, string name, Currency currency, IReadOnlyList<CatalogItem> items, int pointsPerUnit)
    {
        StoreId = storeId;
        Name = name;
        Currency = currency;
        PointsPerUnit = pointsPerUnit;
        Items = items;
        _bySku = items.ToDictionary(i => i.Sku, StringComparer.Ordinal);
    }

    public string StoreId { get; }

    public string Name { get; }

    /// <summary>The one currency the store prices in, so an order's total is a plain sum.</summary>
    public Currency Currency { get; }

    public IReadOnlyList<CatalogItem> Items { get; }

    /// <summary>Points a receipt awards per whole unit paid; 0 for none.</summary>
    public int PointsPerUnit { get; }

    /// <summary>The points a purchase of <paramref name="paid"/> earns, or null for none.</summary>
    public Money? PointsFor(Money paid)
    {
        if (PointsPerUnit == 0 || paid.Currency.IsPoints || !paid.IsPositive)
        {
            return null;
        }

        var units = paid.MinorUnits / (long)Math.Pow(10, paid.Currency.MinorDigits);
        var points = checked(units * PointsPerUnit);
        return points > 0 ? new Money(points, Protocol.Currency.Points) : null;
    }

    public CatalogItem? Find(string? sku) => sku is not null && _bySku.TryGetValue(sku, out var item) ? item : null;

    public static MemberStore Create(MemberStoreOptions options)
    {
        if (!StoreDirectory.IsValidId(options.StoreId))
        {
            throw new ArgumentException($"The store id '{options.StoreId}' is not valid: {StoreDirectory.IdRule}.", nameof(options));
        }

        if (string.IsNullOrWhiteSpace(options.Name) || options.Name.Length > StoreDirectory.TitleLengthMax)
        {
            throw new ArgumentException($"Store '{options.StoreId}' needs a name of at most {StoreDirectory.TitleLengthMax} characters.", nameof(options));
        }

        if (options.Catalog is null || options.Catalog.Count is 0 or > StoreDirectory.CatalogItemsMax)
        {
            throw new ArgumentException($"Store '{options.StoreId}' needs 1 to {StoreDirectory.CatalogItemsMax} catalog items.", nameof(options));
        }

        Currency? currency = null;
        var skus = new HashSet<string>(StringComparer.Ordinal);
        foreach (var item in options.Catalog)
        {
            var where = $"Store '{options.StoreId}'";
            if (item is null)
            {
                throw new ArgumentException($"{where} has a null catalog item.", nameof(options));
            }

            if (item.Sku is not { Length: > 0 and <= StoreDirectory.SkuLengthMax } || !StoreDirectory.SkuPattern().IsMatch(item.Sku))
            {
                throw new ArgumentException($"{where} has an item with sku '{item.Sku}': a sku is 1 to {StoreDirectory.SkuLengthMax} letters, digits, '.', '_' and '-'.", nameof(options));
            }

            if (!skus.Add(item.Sku))
            {
                throw new ArgumentException($"{where} lists sku '{item.Sku}' twice.", nameof(options));
            }

            if (string.IsNullOrWhiteSpace(item.Title) || item.Title.Length > StoreDirectory.TitleLengthMax)
            {
                throw new ArgumentException($"{where}: item '{item.Sku}' needs a title of at most {StoreDirectory.TitleLengthMax} characters.", nameof(options));
            }

            if (item.Content is null || item.Content.Length > StoreDirectory.ContentLengthMax)
            {
                throw new ArgumentException($"{where}: item '{item.Sku}' needs content of at most {StoreDirectory.ContentLengthMax} characters.", nameof(options));
            }

            // default(Money) has no currency; reading it throws, so check the price in that order.
            if (item.Price == default || item.Price.MinorUnits is <= 0 or > StoreDirectory.PriceMinorMax)
            {
                throw new ArgumentException($"{where}: item '{item.Sku}' needs a price above zero and at most {StoreDirectory.PriceMinorMax} minor units.", nameof(options));
            }

            currency ??= item.Price.Currency;
            if (!Equals(currency, item.Price.Currency))
            {
                throw new ArgumentException($"{where} prices in {currency} and {item.Price.Currency}; one store prices in one currency.", nameof(options));
            }
        }

        Debug.Assert(currency is not null, "A non-empty catalog has a currency.");
        if (options.PointsPerUnit is < 0 or > PointsPerUnitMax || (options.PointsPerUnit > 0 && currency.IsPoints))
        {
            throw new ArgumentException($"Store '{options.StoreId}' awards 0 to {PointsPerUnitMax} points per unit, and none when it sells for points.", nameof(options));
        }

        return new MemberStore(options.StoreId, options.Name, currency, [.. options.Catalog], options.PointsPerUnit);
    }
}
