using OpenPurse.Protocol;

namespace OpenPurse.Wallet.Http;

/// <summary>The store's catalog: <c>GET /v1/catalog</c>.</summary>
internal sealed record Catalog(IReadOnlyList<CatalogItem> Items);

/// <summary>One thing a (member) store sells.</summary>
internal sealed record CatalogItem(string StoreId, string Sku, string Title, Money Price);

/// <summary>The body of <c>POST /v1/estimates</c> and <c>POST /v1/orders</c>.</summary>
internal sealed record OrderRequest(string StoreId, IReadOnlyList<OrderLine> Items);

/// <summary>One item asked for.</summary>
internal sealed record OrderLine(string Sku, int Quantity);

/// <summary>The answer to <c>POST /v1/orders</c>: the order number and BILL+SIG1.</summary>
internal sealed record OrderCreated(string OrderNo, string Bill);
