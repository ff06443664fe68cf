using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Purse;

namespace OpenPurse.Wallet.Agent;

/// <summary>
/// The agent's own pages, rendered on the server: no script, every value HTML-encoded, one
/// stylesheet of its own. The approval page is where the person, not the shop's page, agrees to a
/// payment (FIG. 18) or types a credit card for a top-up (FIG. 29).
/// </summary>
internal static class ApprovalPages
{
    private static readonly HtmlEncoder s_html = HtmlEncoder.Default;

    /// <summary>The agent's own page: which operator, which origins may use it, whether a card is in the reader.</summary>
    public static string Home(Uri operatorUrl, IEnumerable<string> origins, bool cardPresent)
    {
        var body = new StringBuilder();
        body.Append("<h1>OpenPurse agent</h1>");
        body.Append("<p>This program on your computer holds your e-purse card and pays or tops it up only when you approve it on its own pages.</p>");
        body.Append("<dl>");
        Pair(body, "Operator", operatorUrl.ToString());
        Pair(body, "Card", cardPresent ? "A card is in the reader." : "No card in the reader.");
        body.Append("</dl><h2>Pages that may ask for payments</h2><ul id=\"origins\">");
        foreach (var origin in origins.Order(StringComparer.Ordinal))
        {
            body.Append("<li>").Append(E(origin)).Append("</li>");
        }

        body.Append("</ul>");
        return Layout("OpenPurse agent", body.ToString(), refresh: false);
    }

    /// <summary>A refusal of the agent's page (an approval not taken, a payment unknown): what and why, with the code.</summary>
    public static string Refusal(string title, string detail, string code)
    {
        var body = new StringBuilder();
        body.Append("<h1>").Append(E(title)).Append("</h1>");
        body.Append("<p id=\"state\" class=\"refusal\" role=\"alert\">").Append(E(detail))
            .Append(" <span class=\"code\" data-code=\"").Append(E(code)).Append("\">(").Append(E(code)).Append(")</span></p>");
        return Layout(title + " – OpenPurse agent", body.ToString(), refresh: false);
    }

    /// <summary>The approval page of a payment or top-up in its current state.</summary>
    /// <param name="operation">The payment or top-up.</param>
    /// <param name="card">For a top-up waiting for card data: the card in the reader, if it could be read.</param>
    public static string Approval(AgentOperation operation, PurseStatus? card)
    {
        lock (operation.Gate)
        {
            return operation.IsTopUp ? TopUp(operation, card) : Payment(operation);
        }
    }

    private static string Payment(AgentOperation operation)
    {
        var body = new StringBuilder();
        switch (operation.State)
        {
            case OperationStates.ReadingCard:
                body.Append("<h1>Payment</h1>");
                State(body, "Put your card on the reader; reading it…");
                Progress(body, operation);
                return Layout("Reading your card – OpenPurse agent", body.ToString(), refresh: true);

            case OperationStates.AwaitingApproval:
                Fig18(body, operation);
                return Layout("Approve the payment – OpenPurse agent", body.ToString(), refresh: false);

            case OperationStates.Paying:
                body.Append("<h1>Payment</h1>");
                State(body, "Your card is paying; keep it in the reader.");
                return Layout("Paying – OpenPurse agent", body.ToString(), refresh: true);

            case OperationStates.Completed:
                var result = operation.Result!;
                body.Append("<h1>Paid</h1>");
                State(body, $"Paid {result.Amount}. Your card now holds {result.BalanceAfter}. You can close this window and return to {operation.Origin}.");
                body.Append("<dl>");
                Pair(body, "Order", result.OrderNo);
                Pair(body, "Store", result.Bill.StoreId);
                Pair(body, "Settlement", result.SettlementId.ToString());
                body.Append("</dl>");
                return Layout("Paid – OpenPurse agent", body.ToString(), refresh: false);

            default:
                body.Append("<h1>").Append(operation.State == OperationStates.Declined ? "Payment declined" : "Payment failed").Append("</h1>");
                Refusal(body, operation);
                return Layout("Payment not made – OpenPurse agent", body.ToString(), refresh: false);
        }
    }

    private static void Fig18(StringBuilder body, AgentOperation operation)
    {
        var confirmation = operation.Confirmation!;
        var bill = confirmation.Bill;
        body.Append("<section id=\"fig-18\" aria-labelledby=\"fig-18-title\">");
        body.Append("<h1 id=\"fig-18-title\">Approve this payment?</h1>");
        body.Append("<p class=\"asker\">Asked by <strong id=\"asked-by\">").Append(E(operation.Origin)).Append("</strong></p>");
        body.Append("<dl>");
        Pair(body, "Store", bill.StoreId, "store-id");
        Pair(body, "Order", bill.OrderNo, "order-no");
        body.Append("</dl>");
        body.Append("<table id=\"items\"><caption>What you buy</caption><thead><tr><th scope=\"col\">Article</th><th scope=\"col\">Quantity</th><th scope=\"col\">Amount</th></tr></thead><tbody>");
        foreach (var item in bill.Items)
        {
            body.Append("<tr><td>").Append(E(item.Title)).Append("</td><td>")
                .Append(item.Quantity.ToString(CultureInfo.InvariantCulture)).Append("</td><td>").Append(E(item.Amount.ToString())).Append("</td></tr>");
        }

        body.Append("</tbody></table>");
        body.Append("<dl class=\"sums\">");
        Pair(body, "Amount", bill.Amount.ToString(), "amount");
        Pair(body, "Balance", $"{confirmation.Balance} ({(confirmation.BalanceSignedByOperator ? "confirmed by the operator, signed (SIG2)" : "read from your card")})", "balance");
        Pair(body, "Balance after", confirmation.BalanceAfter.ToString(), "balance-after");
        Pair(body, "Card", confirmation.CardMasked, "card");
        body.Append("</dl>");
        Decision(body, operation, topUp: false);
        body.Append("</section>");
    }

    private static string TopUp(AgentOperation operation, PurseStatus? card)
    {
        var body = new StringBuilder();
        switch (operation.State)
        {
            case OperationStates.AwaitingCardData:
                Fig29(body, operation, card);
                return Layout("Top up your card – OpenPurse agent", body.ToString(), refresh: false);

            case OperationStates.Processing:
                body.Append("<h1>Top-up</h1>");
                State(body, "Your card is being topped up; keep it in the reader.");
                Progress(body, operation);
                return Layout("Topping up – OpenPurse agent", body.ToString(), refresh: true);

            case OperationStates.Completed:
                var result = operation.TopUpResult!;
                body.Append("<h1>Topped up</h1>");
                State(body, $"Added {result.Amount}, charged to the credit card ending {result.LastFour}. Your card now holds {result.Balance}. You can close this window and return to {operation.Origin}.");
                return Layout("Topped up – OpenPurse agent", body.ToString(), refresh: false);

            default:
                body.Append("<h1>").Append(operation.State == OperationStates.Declined ? "Top-up declined" : "Top-up failed").Append("</h1>");
                Refusal(body, operation);
                return Layout("Top-up not made – OpenPurse agent", body.ToString(), refresh: false);
        }
    }

    private static void Fig29(StringBuilder body, AgentOperation operation, PurseStatus? card)
    {
        body.Append("<section id=\"fig-29\" aria-labelledby=\"fig-29-title\">");
        body.Append("<h1 id=\"fig-29-title\">Top up your card</h1>");
        body.Append("<p class=\"asker\">Asked by <strong id=\"asked-by\">").Append(E(operation.Origin)).Append("</strong></p>");
        body.Append("<dl class=\"sums\">");
        Pair(body, "Amount", operation.Amount.ToString(), "amount");
        Pair(body, "Card", card?.CardId.Masked ?? "not read yet", "card");
        Pair(body, "Balance", card is null ? "not read yet" : (card.BalanceOf(operation.Amount.Currency) ?? Money.Zero(operation.Amount.Currency)).ToString(), "balance");
        body.Append("</dl>");
        if (operation.EntryError is { } error)
        {
            body.Append("<p id=\"entry-error\" class=\"refusal\" role=\"alert\">").Append(E(error.Detail))
                .Append(" <span class=\"code\" data-code=\"").Append(E(error.Code)).Append("\">(").Append(E(error.Code)).Append(")</span></p>");
        }

        body.Append("<p>The credit card's data goes, encrypted, only to the operator's credit authorizer; the agent does not keep it.</p>");
        Decision(body, operation, topUp: true);
        body.Append("</section>");
    }

    // The form: the token binds it to this payment or top-up; the buttons post the decision.
    private static void Decision(StringBuilder body, AgentOperation operation, bool topUp)
    {
        body.Append("<form method=\"post\" action=\"/approve/").Append(operation.Id.ToString("D")).Append("\">");
        body.Append("<input type=\"hidden\" name=\"token\" value=\"").Append(E(operation.Token)).Append("\">");
        if (topUp)
        {
            body.Append("<p class=\"field\"><label for=\"number\">Credit card number</label>")
                .Append("<input id=\"number\" name=\"number\" inputmode=\"numeric\" autocomplete=\"cc-number\" maxlength=\"23\" required></p>");
            body.Append("<p class=\"field\"><label for=\"expiry\">Expiry (MM/YY)</label>")
                .Append("<input id=\"expiry\" name=\"expiry\" autocomplete=\"cc-exp\" placeholder=\"MM/YY\" maxlength=\"5\" required></p>");
            body.Append("<p class=\"field\"><label for=\"pin\">PIN</label>")
                .Append("<input id=\"pin\" name=\"pin\" type=\"password\" inputmode=\"numeric\" autocomplete=\"off\" maxlength=\"12\"></p>");
        }

        body.Append("<p class=\"buttons\"><button id=\"approve\" name=\"decision\" value=\"approve\" type=\"submit\">")
            .Append(topUp ? "Top up " + E(operation.Amount.ToString()) : "Pay " + E(operation.Confirmation!.Bill.Amount.ToString()))
            .Append("</button> <button id=\"decline\" name=\"decision\" value=\"decline\" type=\"submit\" formnovalidate>Decline</button></p>");
        body.Append("</form>");
    }

    private static void State(StringBuilder body, string text) =>
        body.Append("<p id=\"state\" role=\"status\">").Append(E(text)).Append("</p>");

    private static void Progress(StringBuilder body, AgentOperation operation)
    {
        if (operation.Progress is { } progress)
        {
            body.Append("<p class=\"progress\">").Append(E(progress)).Append("</p>");
        }
    }

    private static void Refusal(StringBuilder body, AgentOperation operation)
    {
        var error = operation.Error;
        var text = error?.Detail ?? "Nothing was written to the card.";
        body.Append("<p id=\"state\" class=\"refusal\" role=\"alert\">").Append(E(text));
        if (error is not null)
        {
            body.Append(" <span class=\"code\" data-code=\"").Append(E(error.Code)).Append("\">(").Append(E(error.Code)).Append(")</span>");
        }

        body.Append("</p><p>You can close this window and return to ").Append(E(operation.Origin)).Append(".</p>");
    }

    private static void Pair(StringBuilder body, string term, string value, string? id = null)
    {
        body.Append("<dt>").Append(E(term)).Append("</dt><dd");
        if (id is not null)
        {
            body.Append(" id=\"").Append(id).Append('"');
        }

        body.Append('>').Append(E(value)).Append("</dd>");
    }

    private static string Layout(string title, string main, bool refresh)
    {
        var page = new StringBuilder();
        page.Append("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">");
        page.Append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
        if (refresh)
        {
            page.Append("<meta http-equiv=\"refresh\" content=\"1\">");
        }

        page.Append("<title>").Append(E(title)).Append("</title><link rel=\"stylesheet\" href=\"/agent.css\"></head><body>");
        page.Append("<header><p class=\"brand\">OpenPurse agent <span>on this computer</span></p></header>");
        page.Append("<main>").Append(main).Append("</main></body></html>");
        return page.ToString();
    }

    private static string E(string text) => s_html.Encode(text);
}
