using System.Net;
using OpenPurse.Protocol.Purse;
using OpenPurse.Wallet.Tests.Fakes;

namespace OpenPurse.Wallet.Tests;

/// <summary>Payments through a real agent: a shop's page brings the bill, the person approves on the agent's page.</summary>
public sealed class AgentPaymentTest : IAsyncLifetime
{
    private AgentKit _kit = null!;

    public async Task InitializeAsync() => _kit = await AgentKit.StartAsync();

    public async Task DisposeAsync() => await _kit.DisposeAsync();

    [Fact]
    public async Task Payment_ApprovedOnTheAgentsPage_Completes_CardDownByExactlyTheBill()
    {
        var id = await _kit.PayAsync(await _kit.BillAsync(quantity: 2));

        var waiting = await _kit.WaitForAsync("payments", id, "awaiting-approval");
        Assert.Equal(FakeStore.Id, waiting.GetProperty("storeId").GetString());
        Assert.Equal("25.00 EUR", waiting.GetProperty("amount").GetString());
        var (page, html) = await _kit.PageAsync(id);
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Contains("id=\"fig-18\"", html, StringComparison.Ordinal);
        Assert.Contains(AgentKit.StoreOrigin, html, StringComparison.Ordinal);
        Assert.Contains("100.00 EUR", html, StringComparison.Ordinal);
        Assert.Contains("75.00 EUR", html, StringComparison.Ordinal);

        using var decided = await _kit.DecideAsync(id, "approve");
        Assert.Equal(HttpStatusCode.SeeOther, decided.StatusCode);
        Assert.Equal($"/approve/{id:D}", decided.Headers.Location?.ToString());

        var done = await _kit.WaitForAsync("payments", id, "completed");
        Assert.Equal(WalletKit.Eur(7_500), _kit.Wallet.Balance());
        var result = done.GetProperty("result");
        Assert.Equal(FakeStore.Content, result.GetProperty("content").GetString());
        Assert.False(string.IsNullOrEmpty(result.GetProperty("receipt").GetString()));
        Assert.Equal(System.Text.Json.JsonValueKind.Null, done.GetProperty("error").ValueKind);
        Assert.Contains("Paid 25.00 EUR", (await _kit.PageAsync(id)).Html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Payment_AskedBeforeTheCardIsOnTheReader_WaitsForIt_ThenCompletes()
    {
        EmptyUntilPut? slot = null;
        await using var kit = await AgentKit.StartAsync(reader: inner => slot = new EmptyUntilPut(inner));

        var id = await kit.PayAsync(await kit.BillAsync());
        // Several looks at the empty reader, and the payment still waits for the card.
        await slot!.AskedWhileEmpty.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await kit.WaitForAsync("payments", id, "reading-card");

        slot.Put();
        await kit.WaitForAsync("payments", id, "awaiting-approval");
        using var decided = await kit.DecideAsync(id, "approve");
        Assert.Equal(HttpStatusCode.SeeOther, decided.StatusCode);
        await kit.WaitForAsync("payments", id, "completed");
        Assert.Equal(WalletKit.Eur(10_000 - 1_250), kit.Wallet.Balance());
    }

    /// <summary>A reader with no card on it until <see cref="Put"/>: every command until then finds none.</summary>
    private sealed class EmptyUntilPut(OpenPurse.Protocol.Apdu.ICardReader inner) : OpenPurse.Protocol.Apdu.ICardReader
    {
        private int _present;
        private int _asked;

        public TaskCompletionSource AskedWhileEmpty { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public string Name => inner.Name;

        public void Put() => Volatile.Write(ref _present, 1);

        public OpenPurse.Protocol.Apdu.ResponseApdu Transmit(OpenPurse.Protocol.Apdu.CommandApdu command)
        {
            if (Volatile.Read(ref _present) == 0)
            {
                if (Interlocked.Increment(ref _asked) >= 3)
                {
                    AskedWhileEmpty.TrySetResult();
                }

                throw new OpenPurse.Protocol.Apdu.CardRemovedException("No card on the reader.");
            }

            return inner.Transmit(command);
        }
    }

    [Fact]
    public async Task ApprovalPage_EncodesWhatTheStoreWrote_AndHasNoScript()
    {
        _kit.Wallet.Store.EditBill = bill => bill with { Items = [.. bill.Items.Select(i => i with { Title = "<script>alert(1)</script>\"><img src=x>" })] };
        var id = await _kit.PayAsync(await _kit.BillAsync());
        await _kit.WaitForAsync("payments", id, "awaiting-approval");

        var html = (await _kit.PageAsync(id)).Html;

        Assert.Contains("&lt;script&gt;", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<script", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("<img", html, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("<html lang=\"en\">", html, StringComparison.Ordinal);
        Assert.Contains("<label", (await _kit.PageAsync(await OpenTopUpAsync())).Html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Payment_Declined_WritesNothing()
    {
        var id = await _kit.PayAsync(await _kit.BillAsync());
        await _kit.WaitForAsync("payments", id, "awaiting-approval");

        using var decided = await _kit.DecideAsync(id, "decline");
        Assert.Equal(HttpStatusCode.SeeOther, decided.StatusCode);

        var done = await _kit.WaitForAsync("payments", id, "declined");
        Assert.Equal("purchase.declined", done.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(WalletKit.Eur(10_000), _kit.Wallet.Balance());
        Assert.DoesNotContain(PurseInstruction.Debit, _kit.Wallet.Reader.Instructions);
    }

    private async Task<Guid> OpenTopUpAsync()
    {
        var (status, body) = await _kit.SendAsync(AgentKit.Api(HttpMethod.Post, "/v1/topups", AgentKit.OperatorOrigin, new { amount = "20.00 EUR" }));
        Assert.Equal(HttpStatusCode.Created, status);
        return body.GetProperty("topUpId").GetGuid();
    }

    [Fact]
    public async Task Payment_ApprovalLapses_Declined_NothingWritten()
    {
        await using var kit = await AgentKit.StartAsync(approvalLifetime: TimeSpan.FromMilliseconds(200));
        var id = await kit.PayAsync(await kit.BillAsync());

        await kit.WaitForAsync("payments", id, "declined");

        Assert.Equal(WalletKit.Eur(10_000), kit.Wallet.Balance());
        Assert.DoesNotContain(PurseInstruction.Debit, kit.Wallet.Reader.Instructions);
        using var late = await kit.DecideAsync(id, "approve", token: "x");
        Assert.Equal(HttpStatusCode.Forbidden, late.StatusCode);
    }
}
