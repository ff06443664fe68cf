namespace OpenPurse.Protocol.Messages;

// The bodies of the store's (or mall's) HTTP API that the wallet and the store exchange, written and
// read with ProtocolJson.Options. The signed notices it carries (CompletionDelivery, ReceiptDelivery,
// VoidDelivery, StatementDelivery) are beside the operator's messages.

/// <summary>What a buyer wants from one store (ST3, ST5): the body of <c>POST /v1/estimates</c> and <c>POST /v1/orders</c>.</summary>
/// <param name="StoreId">The (member) store asked.</param>
/// <param name="Items">One line per article, 1 to 20 of them.</param>
public sealed record OrderRequest(string StoreId, IReadOnlyList<OrderRequestItem> Items);

/// <summary>One article a buyer wants.</summary>
/// <param name="Sku">The store's article number.</param>
/// <param name="Quantity">How many, 1 to 100.</param>
public sealed record OrderRequestItem(string Sku, int Quantity);

/// <summary>The store's estimate (ST3): priced lines and their total, not yet a bill. Unsigned; TLS only.</summary>
/// <param name="StoreId">The store that priced it.</param>
/// <param name="Lines">One line per article asked for, priced as a bill would price it.</param>
/// <param name="Total">The sum the bill must charge.</param>
public sealed record EstimateResponse(string StoreId, IReadOnlyList<BillItem> Lines, Money Total);

/// <summary>A new order (<c>POST /v1/orders</c>): its number and BILL+SIG1, for the wallet to take to the operator.</summary>
/// <param name="OrderNo">The order's number.</param>
/// <param name="Bill">BILL+SIG1, a compact JWS.</param>
public sealed record OrderCreatedResponse(string OrderNo, string Bill);

/// <summary>Everything for sale here (<c>GET /v1/catalog</c>); one list across the member stores of a mall.</summary>
/// <param name="MallId">The mall, or null for a single store.</param>
/// <param name="Stores">The (member) stores.</param>
/// <param name="Items">What each of them sells.</param>
public sealed record CatalogResponse(string? MallId, IReadOnlyList<CatalogStoreView> Stores, IReadOnlyList<CatalogItemView> Items);

/// <summary>A (member) store of a catalog.</summary>
/// <param name="StoreId">Its id.</param>
/// <param name="Name">The name shown to people.</param>
public sealed record CatalogStoreView(string StoreId, string Name);

/// <summary>One article of a catalog.</summary>
/// <param name="StoreId">The (member) store that sells it.</param>
/// <param name="Sku">The store's article number.</param>
/// <param name="Title">What it is called.</param>
/// <param name="Price">The price of one.</param>
public sealed record CatalogItemView(string StoreId, string Sku, string Title, Money Price);

/// <summary>
/// An order's state (<c>GET /v1/orders/{orderNo}</c>), for anyone who knows its number: no bill,
/// notice or receipt, since the receipt is the key to the goods and the notice carries card details.
/// </summary>
/// <param name="OrderNo">The order's number.</param>
/// <param name="StoreId">The (member) store.</param>
/// <param name="MallId">The mall, or null.</param>
/// <param name="State"><c>billed</c>, <c>paid</c>, or <c>cancelled</c> (the operator voided its settlement: it is never paid and never delivered).</param>
/// <param name="Amount">The sum billed.</param>
/// <param name="CreatedAt">When the order was made.</param>
/// <param name="PaidAt">When it was paid, or null.</param>
public sealed record OrderView(string OrderNo, string StoreId, string? MallId, string State, Money Amount, DateTimeOffset CreatedAt, DateTimeOffset? PaidAt);
