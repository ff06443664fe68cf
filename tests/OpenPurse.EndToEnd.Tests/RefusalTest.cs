using System.Net;
using OpenPurse.Demo;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Testing;
using OpenPurse.Wallet.Purchase;

namespace OpenPurse.EndToEnd.Tests;

/// <summary>
/// The operator's refusals of bills (expiry, replay by digest and by order number) and of a card
/// that holds too little (docs/errors.md), each with nothing debited beyond what was paid before.
/// </summary>
public abstract class RefusalTest(RealInfrastructure? realSet) : EndToEndSuite(realSet)
{
    private static readonly Protocol.Money s_book = EndToEndKit.Eur("12.50");

    [SuiteFact]
    public async Task Bill_UsedAfterItExpired_OperatorRefusesBillExpired()
    {
        await using var kit = await StartKitAsync(billLifetime: TimeSpan.FromSeconds(1));
        var before = kit.Balance();
        var order = await kit.OrderAsync("books", "book-002");
        var bill = SignedMessage.Verify<Bill>(order.Bill, kit.MemberKeys.SetFor("books"), MessageTypes.Bill, out _)!;
        Assert.True(bill.ExpiresAt - bill.IssuedAt <= TimeSpan.FromSeconds(1));
        var untilExpired = bill.ExpiresAt - DateTimeOffset.UtcNow + TimeSpan.FromMilliseconds(100);
        if (untilExpired > TimeSpan.Zero)
        {
            await Task.Delay(untilExpired);
        }

        var answer = await kit.StartSettlementAsync(order.Bill);

        Assert.Equal(HttpStatusCode.UnprocessableEntity, answer.Status);
        Assert.Equal("bill.expired", answer.Code);
        Assert.Equal(before, kit.Balance());
        Assert.Equal("billed", await kit.OrderStateAsync(order.OrderNo));
    }

    [SuiteFact]
    public async Task Bill_PresentedTwice_OperatorRefusesBillReplayed()
    {
        await using var kit = await StartKitAsync();
        var before = kit.Balance();
        var paid = await kit.BuyAsync("book-002", "books");
        var bill = Tamper.Read(kit.OperatorTraffic.Single("POST", "^/v1/settlements$").RequestBody!, "bill");

        var answer = await kit.StartSettlementAsync(bill);

        Assert.Equal(HttpStatusCode.Conflict, answer.Status);
        Assert.Equal("bill.replayed", answer.Code);
        Assert.Equal(before - s_book, kit.Balance());
        Assert.Equal("completed", await kit.SettlementStateAsync(paid.SettlementId));
    }

    [SuiteFact]
    public async Task Bill_NewBillReusingAnOrderNumber_OperatorRefusesBillReplayed()
    {
        await using var kit = await StartKitAsync();
        var before = kit.Balance();
        var paid = await kit.BuyAsync("book-002", "books");

        // A new bill, validly signed by the member store, for another article under the paid order's number.
        var reused = await kit.StartSettlementAsync(NewBill(kit, paid.OrderNo));

        Assert.Equal(HttpStatusCode.Conflict, reused.Status);
        Assert.Equal("bill.replayed", reused.Code);
        Assert.Equal(before - s_book, kit.Balance());

        // The same bill with an order number never used passes: the order number alone was refused.
        var fresh = await kit.StartSettlementAsync(NewBill(kit, DemoSystem.MallId + "-999999"));
        Assert.Equal(HttpStatusCode.Created, fresh.Status);
        Assert.Equal(before - s_book, kit.Balance());
    }

    [SuiteFact]
    public async Task Purchase_CardHoldsLessThanBill_RefusedNothingDebited()
    {
        await using var kit = await StartKitAsync(load: "1.00 EUR");
        var before = kit.Balance();
        Assert.Equal(EndToEndKit.Eur("1.00"), before);

        var error = await Assert.ThrowsAsync<WalletException>(() => kit.BuyAsync("book-002", "books"));

        // The wallet sees the greeting's balance and stops before round trip 1.
        Assert.Equal("card.insufficient_value", error.Code);
        Assert.False(error.CardDebited);
        Assert.Equal([PurseInstruction.Select, PurseInstruction.InitializeUpdate], kit.Reader.Instructions);
        Assert.Equal(0, kit.OperatorTraffic.Count("POST", "."));
        Assert.Equal(before, kit.Balance());

        // The operator, asked directly with the card's real greeting, refuses as well.
        var order = await kit.OrderAsync("books", "book-002");
        var answer = await kit.StartSettlementAsync(order.Bill);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, answer.Status);
        Assert.Equal("card.insufficient_funds", answer.Code);
        Assert.Equal(before, kit.Balance());
        Assert.Equal("billed", await kit.OrderStateAsync(order.OrderNo));
    }

    private static string NewBill(EndToEndKit kit, string orderNo)
    {
        var item = DemoSystem.Members[0].Catalog[0];
        var now = DateTimeOffset.UtcNow;
        var bill = new Bill(orderNo, "books", DemoSystem.MallId, item.Price, [new BillItem(item.Sku, item.Title, 1, item.Price)], now, now.AddMinutes(15));
        return SignedMessage.Sign(kit.MemberKeys.For("books"), bill, MessageTypes.Bill);
    }
}

/// <summary>The suite on the embedded defaults.</summary>
public sealed class RefusalOnEmbeddedTest() : RefusalTest(realSet: null);

/// <summary>The suite on the real set: PostgreSQL, SoftHSM2, PC/SC, TLS, two nodes behind HAProxy.</summary>
[Collection(SoftHsmInProcess.Name)]
[UsesComponents(Components.PostgreSql, Components.SoftHsm, Components.Pcscd, Components.Vpcd, Components.HaProxy)]
public sealed class RefusalOnRealSetTest(RealInfrastructure realSet) : RefusalTest(realSet);
