using System.Net;
using System.Text.Json;
using Microsoft.Playwright;
using OpenPurse.Testing;
using static Microsoft.Playwright.Assertions;

namespace OpenPurse.Browser.Tests;

/// <summary>
/// Pages that try what a hostile or compromised store page would, in a real browser: use the agent
/// from an origin it does not serve, approve a payment by themselves, change the amount after the
/// person approved, reach the card below the level of a whole payment, and two tabs paying at
/// once. Each attempt fails where the browser and the agent make it fail, and the card pays
/// exactly what the person approved, once.
/// </summary>
public sealed class HostilePageTest
{
    private const string AgentHeaders = "{ 'Content-Type': 'application/json', 'X-OpenPurse-Agent': '1' }";

    // A page's own script, run in the page (its origin): the agent's API as a page script calls it.
    private const string CallAgent = $$"""
        async ([url, method, body]) => {
            try {
                const init = { method, headers: {{AgentHeaders}} };
                if (body !== null) init.body = body;
                const response = await fetch(url, init);
                return { status: response.status, body: await response.text() };
            } catch (e) {
                return { status: 0, body: 'refused: ' + e.message };
            }
        }
        """;

    [IntegrationFact(Components.Chromium)]
    public async Task AnOriginNotAllowed_CannotUseTheAgent()
    {
        await using var kit = await BrowserKit.StartAsync();
        await using var site = await HostileSite.StartAsync();
        var page = await kit.Browser.NewPageAsync();
        await page.GotoAsync(site.Serve("/", Html("A page the agent does not serve")).ToString());

        // The page's script: the preflight is refused, so the browser never sends the request.
        var card = await CallAsync(page, new Uri(kit.AgentUrl, "v1/card"), "GET");
        var order = await kit.OrderAsync("books", "book-002");
        var payment = await CallAsync(page, new Uri(kit.AgentUrl, "v1/payments"), "POST", JsonSerializer.Serialize(new { bill = order.Bill, profile = "signed" }));
        Assert.Equal(0, card.Status);
        Assert.Equal(0, payment.Status);

        // A "simple" request (no preflight) reaches the agent, which answers 403 and nothing else.
        var simple = await page.RunAndWaitForResponseAsync(
            () => page.EvaluateAsync("([url, body]) => fetch(url, { method: 'POST', mode: 'no-cors', headers: { 'Content-Type': 'text/plain' }, body }).catch(() => null)",
                new object[] { new Uri(kit.AgentUrl, "v1/payments").ToString(), JsonSerializer.Serialize(new { bill = order.Bill, profile = "signed" }) }),
            r => r.Url.StartsWith(kit.AgentUrl.ToString(), StringComparison.Ordinal));
        Assert.Equal(403, simple.Status);

        // What the agent answered, seen from outside the browser: 403 with the stable code, no CORS headers.
        using var agent = kit.AgentClient(site.Origin);
        using var answer = await agent.GetAsync("v1/card");
        Assert.Equal(HttpStatusCode.Forbidden, answer.StatusCode);
        Assert.Contains("agent.origin_refused", await answer.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.False(answer.Headers.Contains("Access-Control-Allow-Origin"));
        using var preflight = await agent.SendAsync(Preflight(kit.AgentUrl, "v1/payments", site.Origin));
        Assert.Equal(HttpStatusCode.Forbidden, preflight.StatusCode);
        Assert.False(preflight.Headers.Contains("Access-Control-Allow-Origin"));

        Assert.Equal(BrowserKit.Eur("50.00"), kit.Balance());
    }

    [IntegrationFact(Components.Chromium)]
    public async Task AnAllowedPage_CannotApproveAPaymentByItself()
    {
        await using var kit = await BrowserKit.StartAsync();
        await using var site = await HostileSite.StartAsync();
        kit.System.Agent!.Allow(site.Origin);
        var page = await kit.Browser.NewPageAsync();
        await page.GotoAsync(site.Serve("/", Html("An allowed page that wants to approve by itself")).ToString());

        var order = await kit.OrderAsync("books", "book-002");
        var created = await CallAsync(page, new Uri(kit.AgentUrl, "v1/payments"), "POST", JsonSerializer.Serialize(new { bill = order.Bill, profile = "signed" }));
        Assert.Equal(201, created.Status);
        using var payment = JsonDocument.Parse(created.Body);
        var paymentId = payment.RootElement.GetProperty("paymentId").GetString()!;
        var approvalUrl = payment.RootElement.GetProperty("approvalUrl").GetString()!;
        Assert.StartsWith(kit.AgentUrl.ToString(), approvalUrl, StringComparison.Ordinal);
        var status = new Uri(kit.AgentUrl, $"v1/payments/{paymentId}");
        await WaitForStateAsync(page, status, "awaiting-approval");

        // 1. POST the approval form from the page's script, without a token and with a guessed one.
        //    The browser sends them (a form POST needs no preflight), but the page cannot even read
        //    the answer; the agent refuses them (not from its own page, and no token it gave).
        foreach (var form in new[] { "decision=approve", $"decision=approve&token={new string('A', 43)}" })
        {
            var sent = await page.RunAndWaitForRequestAsync(
                () => page.EvaluateAsync("([url, body]) => fetch(url, { method: 'POST', mode: 'no-cors', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body }).catch(() => null)",
                    new object[] { approvalUrl, form }),
                r => r.Url == approvalUrl && r.Method == "POST");
            Assert.Equal(form, sent.PostData);
            using var refused = await ApproveAsync(approvalUrl, site.Origin, form);
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
            Assert.Contains("agent.approval_refused", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        await WaitForStateAsync(page, status, "awaiting-approval");

        // 2. Read the approval page for its token: a cross-origin read the browser refuses.
        var read = await page.EvaluateAsync<string>("url => fetch(url).then(r => r.text()).catch(e => 'refused')", approvalUrl);
        Assert.Equal("refused", read);
        var opaque = await page.EvaluateAsync<string>("url => fetch(url, { mode: 'no-cors' }).then(r => r.type + ':' + r.status).catch(e => 'refused')", approvalUrl);
        Assert.NotEqual("basic:200", opaque);
        Assert.NotEqual("cors:200", opaque);

        // 3. Frame it, to have the person click there: the browser does not show it in the frame.
        var framing = site.Serve("/frame", $"""
            <!doctype html><html lang="en"><title>framing</title><main><h1>Framing</h1>
            <iframe id="agent" title="agent" src="{approvalUrl}"></iframe></main></html>
            """);
        var framed = await page.RunAndWaitForResponseAsync(() => page.GotoAsync(framing.ToString()), r => r.Url == approvalUrl);
        Assert.Equal("DENY", framed.Headers.GetValueOrDefault("x-frame-options"));
        Assert.Contains("frame-ancestors 'none'", framed.Headers.GetValueOrDefault("content-security-policy"), StringComparison.Ordinal);
        foreach (var frame in page.Frames.Where(f => f != page.MainFrame))
        {
            Assert.Equal(0, await frame.Locator("#approve").CountAsync());
        }

        // 4. Submit a form of its own to the approval URL, as a top-level navigation: refused too.
        var forging = site.Serve("/forge", $"""
            <!doctype html><html lang="en"><title>forge</title><main><h1>Forge</h1>
            <form method="post" action="{approvalUrl}"><input type="hidden" name="token" value="{new string('A', 43)}">
            <button name="decision" value="approve" id="forge">Approve</button></form></main></html>
            """);
        await page.GotoAsync(forging.ToString());
        var forged = await page.RunAndWaitForResponseAsync(() => page.Locator("#forge").ClickAsync(), r => r.Url == approvalUrl);
        Assert.Equal(403, forged.Status);

        // The payment still waits for the person, who still sees it in the agent's window, and declines.
        await page.GotoAsync(site.Url.ToString());
        await WaitForStateAsync(page, status, "awaiting-approval");
        var person = await kit.Browser.NewPageAsync();
        await person.GotoAsync(approvalUrl);
        await Expect(person.Locator("#fig-18")).ToContainTextAsync("12.50 EUR");
        await person.Locator("#decline").ClickAsync();
        await WaitForStateAsync(page, status, "declined");
        Assert.Equal(BrowserKit.Eur("50.00"), kit.Balance());
    }

    [IntegrationFact(Components.Chromium)]
    public async Task APageThatChangesTheAmountAfterApproval_IsRefused_AndTheCardPaysTheApprovedAmountOnce()
    {
        await using var kit = await BrowserKit.StartAsync();
        var page = await kit.OpenStoreAsync();

        // The store's page, compromised: its script orders, has the person approve 12.50 EUR...
        var order = await kit.OrderAsync("books", "book-002");
        var created = await CallAsync(page, new Uri(kit.AgentUrl, "v1/payments"), "POST", JsonSerializer.Serialize(new { bill = order.Bill, profile = "signed" }));
        Assert.Equal(201, created.Status);
        using var payment = JsonDocument.Parse(created.Body);
        var status = new Uri(kit.AgentUrl, $"v1/payments/{payment.RootElement.GetProperty("paymentId").GetString()}");
        var person = await kit.Browser.NewPageAsync();
        await person.GotoAsync(payment.RootElement.GetProperty("approvalUrl").GetString()!);
        await Expect(person.Locator("#fig-18")).ToContainTextAsync("12.50 EUR");
        await person.Locator("#approve").ClickAsync();
        await WaitForStateAsync(page, status, "completed");

        // ...then pays again with the same bill made cheaper: its signature no longer holds.
        var tampered = Tamper(order.Bill, "\"minorUnits\":1250", "\"minorUnits\":125");
        var again = await CallAsync(page, new Uri(kit.AgentUrl, "v1/payments"), "POST", JsonSerializer.Serialize(new { bill = tampered, profile = "signed" }));
        Assert.Equal(422, again.Status);
        Assert.Contains("agent.bill_invalid", again.Body, StringComparison.Ordinal);

        // The card paid exactly the approved amount, once; the store has the order paid.
        Assert.Equal(BrowserKit.Eur("37.50"), kit.Balance());
        using var store = kit.System.StoreClient();
        Assert.Contains("\"paid\"", await store.GetStringAsync($"v1/orders/{order.OrderNo}"), StringComparison.Ordinal);
    }

    [IntegrationFact(Components.Chromium)]
    public async Task APageThatReachesForTheCard_FindsNoSuchEndpoint()
    {
        await using var kit = await BrowserKit.StartAsync();
        var page = await kit.OpenStoreAsync();
        string[] paths =
        [
            "v1/apdu", "v1/card/apdu", "v1/card/transmit", "v1/card/select", "v1/card/00A4040007",
            "v1/reader", "v1/reader/transmit", "v1/raw", "v1/card/raw", "v1/commands",
        ];
        const string apdu = """{"apdu":"00A404000700000000000000"}""";

        // From the store's own page (an allowed origin): nothing there answers the page
        // (the browser gets no readable answer, or a 404).
        foreach (var path in paths)
        {
            foreach (var (method, body) in new[] { ("GET", (string?)null), ("POST", apdu) })
            {
                var answer = await CallAsync(page, new Uri(kit.AgentUrl, path), method, body);
                Assert.True(answer.Status is 0 or 404, $"{method} /{path} answered the page {answer.Status}: {answer.Body}");
            }
        }

        // As the agent answers them, with the allowed origin and the agent's header, and outside /v1 too: 404.
        using var agent = kit.AgentClient(kit.StoreOrigin);
        foreach (var path in paths.Concat(paths.Select(p => p[3..])).Append("apdu"))
        {
            using var get = await agent.GetAsync(path);
            Assert.Equal(HttpStatusCode.NotFound, get.StatusCode);
            using var post = await agent.PostAsync(path, new StringContent(apdu, System.Text.Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.NotFound, post.StatusCode);
        }

        Assert.Equal(BrowserKit.Eur("50.00"), kit.Balance());
    }

    [IntegrationFact(Components.Chromium)]
    public async Task TwoTabsPayingAtOnce_EachCompleteTheirOwnOrderOnce()
    {
        await using var kit = await BrowserKit.StartAsync();
        var first = await kit.OpenStoreAsync();
        var second = await kit.OpenStoreAsync();

        // Both tabs up to their approval window; the one card serves one payment at a time.
        var (firstOrder, firstApproval) = await UpToApprovalAsync(kit, first, "book-001");
        var (secondOrder, secondApproval) = await UpToApprovalAsync(kit, second, "book-002");
        Assert.NotEqual(firstOrder, secondOrder);

        // The person approves each window's bill as it shows it: the second one only once the
        // card is free of the first payment's conversation (its DEBIT answered). The first tab
        // completes without waiting for the second window's answer.
        await Expect(firstApproval.Locator("#fig-18")).ToContainTextAsync("4.99 EUR");
        await Expect(firstApproval.Locator("#fig-18")).Not.ToContainTextAsync("12.50");
        await firstApproval.Locator("#approve").ClickAsync();
        await Expect(first.Locator("#fig-20")).ToBeVisibleAsync();
        await Expect(secondApproval.Locator("#fig-18")).ToContainTextAsync("12.50 EUR");
        await Expect(secondApproval.Locator("#fig-18")).Not.ToContainTextAsync("4.99");
        await Expect(secondApproval.Locator("#fig-18")).Not.ToContainTextAsync(firstOrder);
        await secondApproval.Locator("#approve").ClickAsync();

        // Each tab completes its own order, and each window speaks of its own payment only.
        foreach (var (tab, approval, orderNo, price, other) in new[] { (first, firstApproval, firstOrder, "4.99", "12.50"), (second, secondApproval, secondOrder, "12.50", "4.99") })
        {
            await Expect(tab.Locator("#fig-20")).ToBeVisibleAsync();
            await Expect(tab.Locator("#receipt-order")).ToHaveTextAsync(orderNo);
            await Expect(tab.Locator("#receipt-amount")).ToContainTextAsync($"{price} EUR");
            await Expect(approval.Locator("#state")).ToContainTextAsync($"Paid {price} EUR");
            Assert.DoesNotContain($"{other} EUR", await approval.Locator("body").InnerTextAsync(), StringComparison.Ordinal);
        }

        // Each order paid once: 4.99 and 12.50, nothing more.
        Assert.Equal(BrowserKit.Eur("32.51"), kit.Balance());
        using var store = kit.System.StoreClient();
        foreach (var orderNo in new[] { firstOrder, secondOrder })
        {
            Assert.Contains("\"paid\"", await store.GetStringAsync($"v1/orders/{orderNo}"), StringComparison.Ordinal);
        }
    }

    // A tab from the article to the opened approval window (FIG. 12–16), in the profile signed.
    private static async Task<(string OrderNo, IPage Approval)> UpToApprovalAsync(BrowserKit kit, IPage page, string sku)
    {
        await page.Locator($"li[data-sku='{sku}'][data-store='books'] button.choose").ClickAsync();
        await page.Locator("#agree-estimate").ClickAsync();
        await page.Locator("input[name=method][value=signed]").CheckAsync();
        await page.Locator("#request-bill").ClickAsync();
        await Expect(page.Locator("#fig-15")).ToBeVisibleAsync();
        var orderNo = (await page.Locator("#bill-order").InnerTextAsync()).Trim();
        Assert.NotEmpty(orderNo);
        await page.Locator("#pay").ClickAsync();
        var approval = await kit.Browser.Context.RunAndWaitForPageAsync(() => page.Locator("#open-approval").ClickAsync());
        return (orderNo, approval);
    }

    private sealed record Answer(int Status, string Body);

    private static async Task<Answer> CallAsync(IPage page, Uri url, string method, string? body = null)
    {
        var answer = await page.EvaluateAsync<JsonElement>(CallAgent, new object?[] { url.ToString(), method, body });
        return new Answer(answer.GetProperty("status").GetInt32(), answer.GetProperty("body").GetString() ?? "");
    }

    // The page polls as the real pages do, until the payment is in the state wanted.
    private static async Task WaitForStateAsync(IPage page, Uri status, string state)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        string last = "";
        while (DateTime.UtcNow < deadline)
        {
            var answer = await CallAsync(page, status, "GET");
            last = answer.Body;
            if (answer.Status == 200 && JsonDocument.Parse(answer.Body).RootElement.GetProperty("state").GetString() == state)
            {
                return;
            }

            await Task.Delay(100);
        }

        Assert.Fail($"The payment did not reach {state}; last seen: {last}");
    }

    // The bill's payload with one text replaced, under the bill's own header and signature.
    private static string Tamper(string bill, string from, string to)
    {
        var parts = bill.Split('.');
        var payload = System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(Pad(parts[1].Replace('-', '+').Replace('_', '/'))));
        Assert.Contains(from, payload, StringComparison.Ordinal);
        var changed = Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(payload.Replace(from, to, StringComparison.Ordinal)))
            .TrimEnd('=').Replace('+', '-').Replace('/', '_');
        return $"{parts[0]}.{changed}.{parts[2]}";

        static string Pad(string text) => text + new string('=', (4 - (text.Length % 4)) % 4);
    }

    // The approval form as a page of another origin would send it.
    private static async Task<HttpResponseMessage> ApproveAsync(string approvalUrl, string origin, string form)
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, approvalUrl)
        {
            Content = new StringContent(form, System.Text.Encoding.UTF8, "application/x-www-form-urlencoded"),
        };
        request.Headers.Add("Origin", origin);
        return await http.SendAsync(request);
    }

    private static HttpRequestMessage Preflight(Uri agent, string path, string origin)
    {
        var request = new HttpRequestMessage(HttpMethod.Options, new Uri(agent, path));
        request.Headers.Add("Origin", origin);
        request.Headers.Add("Access-Control-Request-Method", "POST");
        request.Headers.Add("Access-Control-Request-Headers", "content-type,x-openpurse-agent");
        return request;
    }

    private static string Html(string title) =>
        $"""<!doctype html><html lang="en"><title>{title}</title><main><h1>{title}</h1></main></html>""";
}
