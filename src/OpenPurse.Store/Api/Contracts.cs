using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Store.Api;

// HTTP bodies of the store's API, written and read with ProtocolJson.Options (camelCase, strict).

/// <summary>What a buyer wants from one store (ST3, ST5): the body of an estimate or an order.</summary>
internal sealed record OrderRequest(string StoreId, IReadOnlyList<OrderRequestItem> Items);

/// <summary>One item a buyer wants.</summary>
internal sealed record OrderRequestItem(string Sku, int Quantity);

/// <summary>The store's estimate (ST3): priced lines and their total, not yet a bill.</summary>
internal sealed record EstimateResponse(string StoreId, IReadOnlyList<BillItem> Lines, Money Total);

/// <summary>A new order: its number and BILL+SIG1, for the wallet to take to the operator.</summary>
internal sealed record OrderCreatedResponse(string OrderNo, string Bill);

/// <summary>Everything for sale here; one list across the member stores of a mall.</summary>
internal sealed record CatalogResponse(string? MallId, IReadOnlyList<CatalogStoreView> Stores, IReadOnlyList<CatalogItemView> Items);

internal sealed record CatalogStoreView(string StoreId, string Name);

internal sealed record CatalogItemView(string StoreId, string Sku, string Title, Money Price);

/// <summary>
/// An order's state, for anyone who knows its number: no bill, notice or receipt, since the receipt is
/// the key to the goods and the notice carries card details. <c>State</c> is <c>billed</c>, <c>paid</c>, or
/// <c>cancelled</c> (the operator voided its settlement: it is never paid and never delivered).
/// </summary>
internal sealed record OrderView(string OrderNo, string StoreId, string? MallId, string State, Money Amount, DateTimeOffset CreatedAt, DateTimeOffset? PaidAt);
