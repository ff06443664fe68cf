using System.Diagnostics;
using OpenPurse.Hosting;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;
using OpenPurse.Store.Catalog;
using OpenPurse.Store.Keys;

namespace OpenPurse.Store.Orders;

/// <summary>Estimates (ST3) and orders with their signed bill (ST5, SIG1).</summary>
internal sealed partial class Checkout(StoreDirectory directory, MemberKeys keys, OrderDatabase database, StoreOptions options, TimeProvider time, StoreMetrics metrics, ILogger<Checkout> log)
{
    /// <summary>Prices a request against the store's catalog.</summary>
    public Result<EstimateResponse> Estimate(OrderRequest request)
    {
        var priced = Price(request, out _);
        return priced.Value is { } estimate ? estimate : priced.Refusal!;
    }

    /// <summary>Prices a request, takes the next order number and signs the bill with the member store's key.</summary>
    public async Task<Result<OrderCreatedResponse>> CreateOrderAsync(OrderRequest request, CancellationToken cancellationToken)
    {
        var priced = Price(request, out var store);
        if (priced.Value is not { } estimate)
        {
            return priced.Refusal!;
        }

        Debug.Assert(store is not null, "A priced order has a store.");
        var key = keys.For(store.StoreId);
        var issuedAt = time.GetUtcNow();
        var expiresAt = issuedAt + options.BillLifetime;
        var order = await database.CreateOrderAsync(
            directory.IssuerFor(store),
            store.StoreId,
            estimate.Total,
            issuedAt,
            orderNo => SignedMessage.Sign(key, new Bill(orderNo, store.StoreId, directory.MallId, estimate.Total, estimate.Lines, issuedAt, expiresAt), MessageTypes.Bill),
            cancellationToken).ConfigureAwait(false);

        // Pair to the signing: what was stored verifies under the store's published key.
        Debug.Assert(SignedMessage.Verify<Bill>(order.Bill, keys.SetFor(store.StoreId), MessageTypes.Bill, out _)?.OrderNo == order.OrderNo, "The bill verifies with the member store's key.");
        LogOrderBilled(log, order.OrderNo, store.StoreId, estimate.Total, key.KeyId);
        metrics.Billed(store.StoreId);
        return new OrderCreatedResponse(order.OrderNo, order.Bill);
    }

    private Result<EstimateResponse> Price(OrderRequest request, out MemberStore? store)
    {
        store = directory.Find(request.StoreId);
        if (store is null)
        {
            return StoreRefusals.UnknownStore(request.StoreId);
        }

        if (request.Items.Count is 0 or > StoreDirectory.OrderItemsMax)
        {
            return StoreRefusals.InvalidItems($"An order has 1 to {StoreDirectory.OrderItemsMax} items; this one has {request.Items.Count}.");
        }

        var lines = new List<BillItem>(request.Items.Count);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var total = Money.Zero(store.Currency);
        foreach (var wanted in request.Items)
        {
            if (wanted?.Sku is null)
            {
                return StoreRefusals.Malformed("An item is null or has no sku.");
            }

            if (wanted.Quantity is < 1 or > StoreDirectory.QuantityMax)
            {
                return StoreRefusals.InvalidQuantity(wanted.Sku, wanted.Quantity);
            }

            if (!seen.Add(wanted.Sku))
            {
                return StoreRefusals.DuplicateItem(wanted.Sku);
            }

            var item = store.Find(wanted.Sku);
            if (item is null)
            {
                return StoreRefusals.UnknownItem(store.StoreId, wanted.Sku);
            }

            // Prices are at most PriceMinorMax, so that ItemsMax lines of QuantityMax units fit in Money;
            // checked all the same, so that a catalog outside those bounds faults instead of billing a wrapped sum.
            var amount = new Money(checked(item.Price.MinorUnits * wanted.Quantity), store.Currency);
            lines.Add(new BillItem(item.Sku, item.Title, wanted.Quantity, amount));
            total += amount;
        }

        Debug.Assert(total.IsPositive && lines.Count == request.Items.Count, "Every line is priced above zero.");
        return new EstimateResponse(store.StoreId, lines, total);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Order {OrderNo} billed by store {StoreId}: {Amount}, signed with key {Kid}")]
    private static partial void LogOrderBilled(ILogger logger, string orderNo, string storeId, Money amount, string kid);
}
