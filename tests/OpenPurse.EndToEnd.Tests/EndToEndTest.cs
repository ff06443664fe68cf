using OpenPurse.Demo;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Store;
using OpenPurse.Testing;
using OpenPurse.Wallet.Purchase;

namespace OpenPurse.EndToEnd.Tests;

/// <summary>
/// The purchase flows end to end over real HTTP: the wallet buys, the card pays the bill once, the
/// proofs verify with the right keys, operator and store agree the purchase is complete, and it
/// takes two operator round trips and four card commands (docs/protocol.md, "Counts").
/// </summary>
public abstract class EndToEndTest(RealInfrastructure? realSet) : EndToEndSuite(realSet)
{
    private static readonly byte[] s_paymentCommands =
        [PurseInstruction.Select, PurseInstruction.InitializeUpdate, PurseInstruction.ExternalAuthenticate, PurseInstruction.Debit];

    private static CatalogItem Book => DemoSystem.Members[0].Catalog[1];

    private static CatalogItem Song => DemoSystem.Members[1].Catalog[0];

    [SuiteFact]
    public async Task Purchase_SignedProfileInMall_DebitsBillDeliversBookAndProofsVerify()
    {
        await using var kit = await StartKitAsync();
        var before = kit.Balance();

        var result = await kit.BuyAsync(Book.Sku, "books", SettlementProfile.Signed);

        await AssertPaidAsync(kit, result, before, Book, "books", otherMember: "tunes");
        Assert.StartsWith(DemoSystem.MallId + "-", result.OrderNo, StringComparison.Ordinal);
        Assert.Equal(DemoSystem.MallId, result.Bill.MallId);
        Assert.Equal(DemoSystem.MallId, result.CompletionNotice.MallId);
        // Profile "signed": the balance shown came with SIG2, and it is what the card held.
        Assert.NotNull(Tamper.Read(kit.OperatorTraffic.Single("POST", "^/v1/settlements$").ResponseBody, "settlementInfo"));
        Assert.Equal(before, result.BalanceBefore);
    }

    [SuiteFact]
    public async Task Purchase_LeanProfileInMall_DebitsBillDeliversSongAndProofsVerify()
    {
        await using var kit = await StartKitAsync();
        var before = kit.Balance();

        var result = await kit.BuyAsync(Song.Sku, "tunes", SettlementProfile.Lean);

        await AssertPaidAsync(kit, result, before, Song, "tunes", otherMember: "books");
        Assert.StartsWith(DemoSystem.MallId + "-", result.OrderNo, StringComparison.Ordinal);
        Assert.Equal(DemoSystem.MallId, result.Bill.MallId);
        Assert.Equal(SettlementProfile.Lean, result.Profile);
        // Profile "lean": no SIG2 on the way.
        Assert.Null(System.Text.Json.Nodes.JsonNode.Parse(kit.OperatorTraffic.Single("POST", "^/v1/settlements$").ResponseBody)!["settlementInfo"]);
    }

    [SuiteFact]
    public async Task Purchase_SingleStoreWithoutMall_DebitsBillAndStoreIssuesItsOwnOrderNumber()
    {
        await using var kit = await StartKitAsync(mall: false);
        var before = kit.Balance();

        var result = await kit.BuyAsync(Book.Sku, "books", SettlementProfile.Signed);

        await AssertPaidAsync(kit, result, before, Book, "books", otherMember: null);
        Assert.StartsWith("books-", result.OrderNo, StringComparison.Ordinal);
        Assert.Null(result.Bill.MallId);
        Assert.Null(result.CompletionNotice.MallId);
    }

    [SuiteFact]
    public async Task Purchase_CountsRoundTripsAndCardCommands()
    {
        await using var kit = await StartKitAsync();

        var result = await kit.BuyAsync(Book.Sku, "books");

        // Counted on the wire: every request to the operator but the key sets.
        var operatorRequests = kit.OperatorTraffic.Exchanges
            .Where(e => !(e.Method == "GET" && (e.Path.EndsWith("/jwks", StringComparison.Ordinal) || e.Path.EndsWith("/jwks.json", StringComparison.Ordinal))))
            .ToList();
        Assert.All(operatorRequests, e => Assert.Equal("POST", e.Method));
        Assert.All(operatorRequests, e => Assert.Matches("^/v1/settlements(/[0-9a-f-]{36}/completion)?$", e.Path));
        Assert.True(operatorRequests.Count <= 2, $"A purchase took {operatorRequests.Count} operator round trips: {string.Join(", ", operatorRequests.Select(e => e.Path))}.");

        // Counted at the card: the commands up to and including the DEBIT; only the balance read for display follows.
        var instructions = kit.Reader.Instructions.ToList();
        var debitAt = instructions.IndexOf(PurseInstruction.Debit);
        Assert.True(debitAt >= 0, "The card got no DEBIT.");
        var untilDebit = instructions.Take(debitAt + 1).ToArray();
        Assert.True(untilDebit.Length <= 4, $"A purchase took {untilDebit.Length} card commands: {Convert.ToHexString(untilDebit)}.");
        Assert.Equal(s_paymentCommands, untilDebit);
        Assert.All(instructions.Skip(debitAt + 1), ins => Assert.Equal(PurseInstruction.GetData, ins));

        // The wallet's own count agrees with the wire.
        Assert.Equal(operatorRequests.Count, result.OperatorRoundTrips);
        Assert.Equal(untilDebit.Length, result.CardCommands);
    }

    private static async Task AssertPaidAsync(EndToEndKit kit, PurchaseResult result, Protocol.Money before, CatalogItem item, string storeId, string? otherMember)
    {
        // The card paid the bill, once; the goods came.
        Assert.Equal(item.Price, result.Amount);
        Assert.Equal(before - item.Price, kit.Balance());
        Assert.Equal(before - item.Price, result.BalanceAfter);
        Assert.Equal(item.Content, result.Content);
        Assert.Equal(storeId, result.Bill.StoreId);

        // ACN (SIG3) verifies with the operator's published key and names this purchase.
        var acn = SignedMessage.Verify<CompletionNotice>(result.CompletionNoticeJws, await kit.OperatorKeysAsync(), MessageTypes.CompletionNotice, out var acnError);
        Assert.True(acn is not null, acnError);
        Assert.Equal(result.SettlementId, acn.SettlementId);
        Assert.Equal(result.OrderNo, acn.OrderNo);
        Assert.Equal(storeId, acn.StoreId);
        Assert.Equal(item.Price, acn.Amount);

        // Receipt (SIG4) verifies with the member store's key, and is over this ACN.
        var receipt = SignedMessage.Verify<Receipt>(result.ReceiptJws, kit.MemberKeys.SetFor(storeId), MessageTypes.Receipt, out var receiptError);
        Assert.True(receipt is not null, receiptError);
        Assert.Equal(result.SettlementId, receipt.SettlementId);
        Assert.Equal(result.OrderNo, receipt.OrderNo);
        Assert.Equal(SignedMessage.Digest(result.CompletionNoticeJws), receipt.CompletionDigest);

        // Bill and receipt are signed by the member store's own key, not the mall's other member.
        var bill = Tamper.Read(kit.StoreTraffic.Single("POST", "^/v1/orders$").ResponseBody, "bill");
        Assert.Equal(kit.MemberKeys.For(storeId).KeyId, Jws.PeekKeyId(bill));
        Assert.Equal(kit.MemberKeys.For(storeId).KeyId, Jws.PeekKeyId(result.ReceiptJws));
        if (otherMember is not null)
        {
            Assert.NotEqual(kit.MemberKeys.For(otherMember).KeyId, Jws.PeekKeyId(result.ReceiptJws));
            Assert.Null(SignedMessage.Verify<Receipt>(result.ReceiptJws, kit.MemberKeys.SetFor(otherMember), MessageTypes.Receipt, out _));
        }

        // Operator and store agree.
        Assert.Equal("completed", await kit.SettlementStateAsync(result.SettlementId));
        Assert.Equal("paid", await kit.OrderStateAsync(result.OrderNo));
    }
}

/// <summary>The suite on the embedded defaults.</summary>
public sealed class EndToEndOnEmbeddedTest() : EndToEndTest(realSet: null);

/// <summary>The suite on the real set: PostgreSQL, SoftHSM2, PC/SC, TLS, two nodes behind HAProxy.</summary>
[Collection(SoftHsmInProcess.Name)]
[UsesComponents(Components.PostgreSql, Components.SoftHsm, Components.Pcscd, Components.Vpcd, Components.HaProxy)]
public sealed class EndToEndOnRealSetTest(RealInfrastructure realSet) : EndToEndTest(realSet);
