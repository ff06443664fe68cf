using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Wallet.Tests.Fakes;

/// <summary>
/// A store as the store API contract describes it: catalog, estimate, order with BILL+SIG1, receipt
/// (SIG4) for an ACN, and a download against the receipt. Hooks let a test make it misbehave.
/// </summary>
internal sealed class FakeStore : FakeParty
{
    public const string Id = "store-a";
    public const string Sku = "ebook-1";
    public const string Content = "Chapter 1. It was a bright cold day in April.";

    private static readonly JsonSerializerOptions s_wire = new(ProtocolJson.Options) { UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip };

    private readonly Lock _lock = new();
    private readonly Dictionary<string, Bill> _orders = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _receipts = new(StringComparer.Ordinal);
    private int _orderCount;

    public FakeStore(Func<JsonWebKeySet> operatorKeys) => OperatorKeys = operatorKeys;

    public EcdsaSigningKey Key { get; } = EcdsaSigningKey.Generate("store-a-1");

    public Money Price { get; init; } = new(1250, Currency.Eur);

    public Func<JsonWebKeySet> OperatorKeys { get; }

    /// <summary>Changes the bill before it is signed.</summary>
    public Func<Bill, Bill>? EditBill { get; set; }

    /// <summary>Changes the compact BILL+SIG1 after signing.</summary>
    public Func<string, string>? TamperBill { get; set; }

    /// <summary>Changes the compact receipt after signing.</summary>
    public Func<string, string>? TamperReceipt { get; set; }

    public JsonWebKeySet KeySet => new([Key.PublicKey]);

    /// <summary>The store's side of ST19–ST20: checks the ACN (SIG3) and signs its receipt (SIG4).</summary>
    public string IssueReceipt(string acnJws)
    {
        var acn = SignedMessage.Verify<CompletionNotice>(acnJws, OperatorKeys(), MessageTypes.CompletionNotice, out var error)
            ?? throw new InvalidOperationException("The store refuses the ACN: " + error);
        var receipt = SignedMessage.Sign(Key, new Receipt(acn.SettlementId, acn.OrderNo, acn.StoreId, acn.Amount, SignedMessage.Digest(acnJws), DateTimeOffset.UtcNow), MessageTypes.Receipt);
        lock (_lock)
        {
            _receipts[acn.OrderNo] = receipt;
        }

        return TamperReceipt is null ? receipt : TamperReceipt(receipt);
    }

    protected override void Dispose(bool disposing)
    {
        Key.Dispose();
        base.Dispose(disposing);
    }

    protected override async Task<HttpResponseMessage> HandleAsync(HttpMethod method, string[] path, HttpRequestMessage request)
    {
        switch (method.Method, path)
        {
            case ("GET", ["v1", "catalog"]):
                return Json(new { mallId = (string?)null, stores = new[] { new { storeId = Id, name = "A bookshop" } }, items = new[] { new { storeId = Id, sku = Sku, title = "A novel", price = Price, description = "unshown member" } } }, options: s_wire);

            case ("POST", ["v1", "estimates"]):
                {
                    var asked = await ReadAsync<WireOrder>(request, s_wire);
                    return Estimate(asked) is { } estimate ? Json(estimate, options: s_wire) : Problem(HttpStatusCode.NotFound, "item.unknown", "No such item.");
                }

            case ("POST", ["v1", "orders"]):
                {
                    var asked = await ReadAsync<WireOrder>(request, s_wire);
                    if (Estimate(asked) is not { } estimate)
                    {
                        return Problem(HttpStatusCode.NotFound, "item.unknown", "No such item.");
                    }

                    var orderNo = "A-" + Interlocked.Increment(ref _orderCount).ToString("D4", CultureInfo.InvariantCulture);
                    var now = DateTimeOffset.UtcNow;
                    var bill = new Bill(orderNo, Id, null, estimate.Total, [.. estimate.Lines.Select(l => new BillItem(l.Sku, l.Title, l.Quantity, l.Amount))], now, now.AddMinutes(10));
                    bill = EditBill is null ? bill : EditBill(bill);
                    lock (_lock)
                    {
                        _orders[orderNo] = bill;
                    }

                    var compact = SignedMessage.Sign(Key, bill, MessageTypes.Bill);
                    return Json(new { orderNo, bill = TamperBill is null ? compact : TamperBill(compact) }, HttpStatusCode.Created, s_wire);
                }

            case ("POST", ["v1", "orders", var orderNo, "completion"]):
                {
                    var delivery = await ReadAsync<CompletionDelivery>(request);
                    lock (_lock)
                    {
                        if (!_orders.ContainsKey(orderNo))
                        {
                            return NotFound();
                        }
                    }

                    return Json(new ReceiptDelivery(IssueReceipt(delivery.CompletionNotice)));
                }

            case ("GET", ["v1", "orders", var orderNo, "download"]):
                {
                    var given = request.Headers.TryGetValues("X-OpenPurse-Receipt", out var values) ? values.Single() : null;
                    lock (_lock)
                    {
                        return given is not null && _receipts.TryGetValue(orderNo, out var issued) && given == issued
                            ? Text(Content)
                            : Problem(HttpStatusCode.PaymentRequired, "receipt.required", "Pay first.");
                    }
                }

            default:
                return NotFound();
        }
    }

    private WireEstimate? Estimate(WireOrder asked)
    {
        if (asked.StoreId != Id || asked.Items.Count != 1 || asked.Items[0].Sku != Sku)
        {
            return null;
        }

        var quantity = asked.Items[0].Quantity;
        var amount = new Money(Price.MinorUnits * quantity, Price.Currency);
        return new WireEstimate(Id, [new WireLine(Sku, "A novel", quantity, amount)], amount);
    }

    private sealed record WireOrder(string StoreId, List<WireItem> Items);

    private sealed record WireItem(string Sku, int Quantity);

    private sealed record WireEstimate(string StoreId, List<WireLine> Lines, Money Total);

    private sealed record WireLine(string Sku, string Title, int Quantity, Money Amount);
}
