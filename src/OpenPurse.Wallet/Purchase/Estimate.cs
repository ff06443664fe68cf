using OpenPurse.Protocol;

namespace OpenPurse.Wallet.Purchase;

/// <summary>The store's estimate (ST3): what the items would cost, before any order exists. Unsigned; TLS only.</summary>
/// <param name="StoreId">The store that priced it.</param>
/// <param name="Lines">One line per item asked for.</param>
/// <param name="Total">The sum the bill must charge.</param>
public sealed record Estimate(string StoreId, IReadOnlyList<EstimateLine> Lines, Money Total);

/// <summary>One line of an estimate.</summary>
/// <param name="Sku">The store's article number.</param>
/// <param name="Title">What it is called.</param>
/// <param name="Quantity">How many.</param>
/// <param name="Amount">The line's price, all units together.</param>
public sealed record EstimateLine(string Sku, string Title, int Quantity, Money Amount);
