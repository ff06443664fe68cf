using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenPurse.Hosting;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Messages;
using OpenPurse.Wallet.Purchase;

namespace OpenPurse.Wallet.Agent;

/// <summary>
/// The wallet agent (<c>openpurse agent</c>): a loopback web server that owns the card reader, runs
/// whole payments and top-ups for the pages of allowed origins, and asks the person's approval on its
/// own pages. Nothing in its API reaches the card lower than a whole payment or top-up.
/// </summary>
public static class AgentHost
{
    /// <summary>The largest payment request body: a bill of many lines, compact JWS.</summary>
    internal const long PaymentBodyMax = 64 * 1024;

    private const string StylesheetResource = "OpenPurse.Wallet.Agent.agent.css";

    /// <summary>Starts the agent on <see cref="AgentOptions.Urls"/> with the card in <paramref name="reader"/>.</summary>
    /// <exception cref="ArgumentException">The options are invalid: no operator URL, a URL that is not loopback http, an origin that is not one.</exception>
    public static Task<RunningAgent> StartAsync(AgentOptions options, ICardReader reader, CancellationToken cancellationToken = default) =>
        StartAsync(options, reader, configure: null, cancellationToken);

    /// <summary>As <see cref="StartAsync(AgentOptions, ICardReader, CancellationToken)"/>, letting tests adjust services (logging) before the build.</summary>
    internal static async Task<RunningAgent> StartAsync(AgentOptions options, ICardReader reader, Action<WebApplicationBuilder>? configure, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(reader);
        CheckOperatorUrl(options.OperatorUrl);

        if (options.ApprovalLifetime <= TimeSpan.Zero)
        {
            throw new ArgumentException("An approval's lifetime is more than zero.", nameof(options));
        }

        var urls = ServerAddresses.LoopbackOnly(options.Urls, "agent");
        if (urls.Length != 1 || !urls[0].StartsWith("http://", StringComparison.OrdinalIgnoreCase))
        {
            throw new ArgumentException($"The agent listens on one loopback http URL (e.g. {AgentOptions.DefaultUrl}), not '{options.Urls}'.", nameof(options));
        }

        var origins = new AgentOrigins();
        foreach (var origin in options.AllowedOrigins)
        {
            origins.Add(origin);
        }

        var operations = new AgentOperations(options, reader);
        var port = 0;

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ApplicationName = typeof(AgentHost).Assembly.GetName().Name,
            ContentRootPath = AppContext.BaseDirectory,
            Args = [],
        });
        builder.WebHost.UseUrls(urls);
        builder.WebHost.ConfigureKestrel(RequestLimits.Configure);
        builder.Logging.ClearProviders();
        OneLineConsoleFormatter.AddTo(builder.Logging);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        var services = builder.Services;
        services.AddCodedProblemDetails();
        services.ConfigureHttpJsonOptions(json => ProtocolJson.Configure(json.SerializerOptions));
        configure?.Invoke(builder);

        var app = builder.Build();
        try
        {
            app.UseExceptionHandler();
            app.UseStatusCodePages();
            app.UseRequestLimits();
            app.UseRouting();
            // The one guard: Host, then origin, header and CORS for the API, or the pages' headers.
            app.Use((context, next) => AgentGuard.GuardAsync(context, origins, port, next));
            app.UseRoutesOnly();
            MapApi(app, operations, () => port);
            MapPages(app, operations, origins);

            await app.StartAsync(cancellationToken).ConfigureAwait(false);
            var bound = ServerAddresses.Bound(app, "agent");
            port = bound.Port;
            return new RunningAgent(app, operations, origins, new Uri($"http://127.0.0.1:{port}/"));
        }
        catch
        {
            await operations.DisposeAsync().ConfigureAwait(false);
            await app.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    // The API (/v1): every endpoint is anonymous as far as users go; the guard lets only allowed
    // origins' pages with the agent's header reach it (the AgentApi metadata of the group), and each
    // accepts the CORS preflight the guard answers.
    private static void MapApi(WebApplication app, AgentOperations operations, Func<int> port)
    {
        var api = app.MapGroup("/v1").WithMetadata(AgentApi.Instance).AllowAnonymous();

        api.MapGet("/card", async (CancellationToken cancellationToken) =>
            TypedResults.Ok(new CardView(await operations.CardPresentAsync(cancellationToken).ConfigureAwait(false))))
            .WithMetadata(Preflighted("GET")).WithName("GetAgentCard").WithSummary("Whether a card is in the reader.")
            .Refuses(ProblemCode.AgentOriginRefused, ProblemCode.AgentHeaderRequired);

        api.MapPost("/payments", async Task<IResult> (HttpContext context) =>
        {
            var (body, malformed) = await Refusal.ReadJsonAsync<PaymentBody>(context.Request).ConfigureAwait(false);
            if (malformed is not null)
            {
                return malformed.ToResult();
            }

            if (string.IsNullOrEmpty(body!.Bill) || !Enum.IsDefined(body.Profile))
            {
                return Problems.Refuse(ProblemCode.RequestMalformed, "A payment needs the bill (compact JWS) and a profile, signed or lean.");
            }

            var origin = AgentGuard.AllowedOrigin(context);
            AgentOperation? payment;
            try
            {
                payment = await operations.StartPaymentAsync(origin, body.Bill, body.Profile, context.RequestAborted).ConfigureAwait(false);
            }
            catch (WalletException e)
            {
                return BillRefusal(e);
            }

            if (payment is null)
            {
                return TooMany();
            }

            return TypedResults.Created($"/v1/payments/{payment.Id:D}", new PaymentCreated(payment.Id, ApprovalUrl(port(), payment), OperationStates.ReadingCard));
        }).WithMetadata(Preflighted("POST")).WithBodyLimit(PaymentBodyMax).WithName("PostAgentPayment").WithSummary("Pays a signed bill once the person approves it on the agent's page.")
            .Refuses(ProblemCode.AgentOriginRefused, ProblemCode.AgentHeaderRequired, ProblemCode.AgentBillInvalid, ProblemCode.AgentBillExpired, ProblemCode.AgentOperatorUnreachable, ProblemCode.AgentTooMany);

        api.MapGet("/payments/{id:guid}", IResult (Guid id, HttpContext context) =>
        {
            var payment = operations.Find(id);
            if (payment is null || payment.IsTopUp || !string.Equals(payment.Origin, AgentGuard.AllowedOrigin(context), StringComparison.Ordinal))
            {
                return Problems.Refuse(ProblemCode.AgentPaymentUnknown, "This origin has no payment by that id.");
            }

            return TypedResults.Ok(PaymentStatus.Of(payment));
        }).WithMetadata(Preflighted("GET")).WithName("GetAgentPayment").WithSummary("Where a payment stands, and its receipt and goods once paid.")
            .Refuses(ProblemCode.AgentOriginRefused, ProblemCode.AgentHeaderRequired, ProblemCode.AgentPaymentUnknown);

        api.MapPost("/topups", async Task<IResult> (HttpContext context) =>
        {
            var origin = AgentGuard.AllowedOrigin(context);
            if (!string.Equals(origin, operations.OperatorOrigin, StringComparison.Ordinal))
            {
                return Problems.Refuse(ProblemCode.AgentOriginRefused, "Top-ups are taken from the operator's pages only.");
            }

            var (body, malformed) = await Refusal.ReadJsonAsync<TopUpBody>(context.Request).ConfigureAwait(false);
            if (malformed is not null)
            {
                return malformed.ToResult();
            }

            if (!Money.TryParse(body!.Amount, out var amount) || !amount.IsPositive)
            {
                return Problems.Refuse(ProblemCode.RequestMalformed, "The amount is a positive amount such as \"20.00 EUR\".");
            }

            var topUp = operations.StartTopUp(origin, amount);
            if (topUp is null)
            {
                return TooMany();
            }

            return TypedResults.Created($"/v1/topups/{topUp.Id:D}", new TopUpCreated(topUp.Id, ApprovalUrl(port(), topUp), OperationStates.AwaitingCardData));
        }).WithMetadata(Preflighted("POST")).WithName("PostAgentTopUp").WithSummary("Opens a top-up the person approves, with a credit card, on the agent's page.")
            .Refuses(ProblemCode.AgentOriginRefused, ProblemCode.AgentHeaderRequired, ProblemCode.AgentTooMany);

        api.MapGet("/topups/{id:guid}", IResult (Guid id, HttpContext context) =>
        {
            var topUp = operations.Find(id);
            if (topUp is null || !topUp.IsTopUp || !string.Equals(topUp.Origin, AgentGuard.AllowedOrigin(context), StringComparison.Ordinal))
            {
                return Problems.Refuse(ProblemCode.AgentTopUpUnknown, "This origin has no top-up by that id.");
            }

            return TypedResults.Ok(TopUpStatus.Of(topUp));
        }).WithMetadata(Preflighted("GET")).WithName("GetAgentTopUp").WithSummary("Where a top-up stands.")
            .Refuses(ProblemCode.AgentOriginRefused, ProblemCode.AgentHeaderRequired, ProblemCode.AgentTopUpUnknown);
    }

    // The agent's own pages: anonymous, answered to the person's browser on the agent's own origin;
    // the guard gives them headers that keep other origins from framing or reading them, and the
    // approval form is taken only from the agent's own page, with the payment's token.
    private static void MapPages(WebApplication app, AgentOperations operations, AgentOrigins origins)
    {
        var stylesheet = Encoding.UTF8.GetBytes(Pages.Read(typeof(AgentHost).Assembly, StylesheetResource));

        app.MapGet("/", async (CancellationToken cancellationToken) =>
            Html(ApprovalPages.Home(operations.OperatorUrl, origins.All, await operations.CardPresentAsync(cancellationToken).ConfigureAwait(false))))
            .AllowAnonymous().WithName("GetAgentHome").WithSummary("The agent's own page.").Refuses();

        app.MapGet("/agent.css", () => TypedResults.Bytes(stylesheet, "text/css; charset=utf-8"))
            .AllowAnonymous().WithName("GetAgentStylesheet").WithSummary("The stylesheet of the agent's pages.").Refuses();

        app.MapGet("/approve/{id:guid}", async Task<IResult> (Guid id, HttpContext context, CancellationToken cancellationToken) =>
        {
            if (operations.Find(id) is not { } operation)
            {
                return PageRefusal(context, ProblemCode.AgentPaymentUnknown, "There is no payment or top-up by that id (any more).");
            }

            var card = operation.IsTopUp && operation.State == OperationStates.AwaitingCardData
                ? await operations.CardStatusAsync(operation, cancellationToken).ConfigureAwait(false)
                : null;
            return Html(ApprovalPages.Approval(operation, card));
        }).AllowAnonymous().WithName("GetAgentApproval").WithSummary("The approval page of a payment (FIG. 18) or a top-up (FIG. 29).")
            .Refuses(ProblemCode.AgentPaymentUnknown);

        app.MapPost("/approve/{id:guid}", async Task<IResult> (Guid id, HttpContext context) =>
        {
            // The body is read (at most the default 4 KiB) before anything is answered: a refusal
            // with an unread body would leave the connection to be closed under the browser's feet.
            IFormCollection? form = null;
            try
            {
                if (context.Request.HasFormContentType)
                {
                    form = await context.Request.ReadFormAsync(context.RequestAborted).ConfigureAwait(false);
                }
                else
                {
                    await context.Request.Body.CopyToAsync(Stream.Null, context.RequestAborted).ConfigureAwait(false);
                }
            }
            catch (Exception e) when (e is InvalidDataException or IOException && e is not BadHttpRequestException)
            {
                // A multipart body that is not one, a form beyond the reader's limits; the body's size is the handler's (413).
                return PageRefusal(context, ProblemCode.RequestMalformed, "The form cannot be read.");
            }

            if (!AgentGuard.FromOwnPage(context))
            {
                return PageRefusal(context, ProblemCode.AgentApprovalRefused, "An approval is taken only from the agent's own page.");
            }

            if (operations.Find(id) is not { } operation)
            {
                return PageRefusal(context, ProblemCode.AgentPaymentUnknown, "There is no payment or top-up by that id (any more).");
            }

            if (form is null)
            {
                return PageRefusal(context, ProblemCode.AgentApprovalRefused, "An approval is the agent's page's form.");
            }

            if (!operation.TokenMatches(form["token"].Count == 1 ? form["token"][0] : null))
            {
                return PageRefusal(context, ProblemCode.AgentApprovalRefused, "The approval's token is not this payment's.");
            }

            var decision = form["decision"].Count == 1 ? form["decision"][0] : null;
            if (decision is not ("approve" or "decline"))
            {
                return PageRefusal(context, ProblemCode.RequestMalformed, "The decision is approve or decline.");
            }

            var approve = decision == "approve";
            var taken = operation.IsTopUp
                ? approve ? operations.ApproveTopUp(operation, One(form["number"]), One(form["expiry"]), One(form["pin"])) : operations.DeclineTopUp(operation)
                : AgentOperations.Decide(operation, approve);
            if (!taken)
            {
                return PageRefusal(context, ProblemCode.AgentApprovalState, $"This {(operation.IsTopUp ? "top-up" : "payment")} is not waiting for an approval.");
            }

            return new SeeOther($"/approve/{id:D}");
        }).AllowAnonymous().WithName("PostAgentApproval").WithSummary("The person's decision, from the approval page's form.")
            .Refuses(ProblemCode.AgentPaymentUnknown, ProblemCode.AgentApprovalRefused, ProblemCode.AgentApprovalState);
    }

    /// <summary>The operator's URL: absolute http(s).</summary>
    internal static void CheckOperatorUrl(Uri? operatorUrl)
    {
        if (operatorUrl is not { IsAbsoluteUri: true } || (operatorUrl.Scheme != Uri.UriSchemeHttp && operatorUrl.Scheme != Uri.UriSchemeHttps))
        {
            throw new ArgumentException("The agent needs the operator's http(s) URL.", nameof(operatorUrl));
        }
    }

    private static string? One(Microsoft.Extensions.Primitives.StringValues values) => values.Count == 1 ? values[0] : null;

    // A refusal on the agent's pages: the words and the code on a page of its own for the person's
    // browser (which asks for HTML), problem details for anything else; the same status either way.
    private static IResult PageRefusal(HttpContext context, ProblemCode code, string detail)
    {
        if (!Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParseList(context.Request.Headers.Accept, out var accept)
            || !accept.Any(type => type.MediaType.Equals("text/html", StringComparison.OrdinalIgnoreCase)))
        {
            return Problems.Refuse(code, detail);
        }

        return TypedResults.Content(ApprovalPages.Refusal(code.Title, detail, code.Code), "text/html; charset=utf-8", Encoding.UTF8, code.Status);
    }

    private static ProblemHttpResult TooMany() =>
        Problems.Refuse(ProblemCode.AgentTooMany, $"{AgentOperations.OpenMax} payments and top-ups are open; finish or decline one first.");

    private static ContentHttpResult Html(string page) => TypedResults.Content(page, "text/html; charset=utf-8", Encoding.UTF8);

    private static HttpMethodMetadata Preflighted(string method) => new([method], acceptCorsPreflight: true);

    private static string ApprovalUrl(int port, AgentOperation operation) => $"http://127.0.0.1:{port}/approve/{operation.Id:D}";

    // A bill refused before the card was touched: why, in the agent's codes.
    private static ProblemHttpResult BillRefusal(WalletException e)
    {
        var code = e.Code;
        if (code == WalletErrors.BillExpired)
        {
            return Problems.Refuse(ProblemCode.AgentBillExpired, e.Message);
        }

        if (code.StartsWith(WalletErrors.OperatorUnreachable, StringComparison.Ordinal)
            || code.StartsWith(WalletErrors.OperatorUnavailable, StringComparison.Ordinal)
            || code.StartsWith(WalletErrors.KeysUnavailable, StringComparison.Ordinal))
        {
            return Problems.Refuse(ProblemCode.AgentOperatorUnreachable, "The operator cannot be asked for the store's keys; try again later.");
        }

        if (code == WalletErrors.InvalidRequest)
        {
            return Problems.Refuse(ProblemCode.RequestMalformed, e.Message);
        }

        // A bad signature, a bill that does not add up, a store the operator does not know.
        return Problems.Refuse(ProblemCode.AgentBillInvalid, $"{e.Message} ({code})");
    }

    /// <summary>A 303: the browser follows the form's POST with a GET of the page.</summary>
    private sealed class SeeOther(string location) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.StatusCode = StatusCodes.Status303SeeOther;
            httpContext.Response.Headers.Location = location;
            return Task.CompletedTask;
        }
    }
}

/// <summary>A running agent: its address, its allow-list, and its stop.</summary>
public sealed class RunningAgent : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly AgentOperations _operations;
    private readonly AgentOrigins _origins;

    internal RunningAgent(WebApplication app, AgentOperations operations, AgentOrigins origins, Uri address)
    {
        _app = app;
        _operations = operations;
        _origins = origins;
        Address = address;
    }

    /// <summary>Where the agent answers, e.g. <c>http://127.0.0.1:5099/</c>.</summary>
    public Uri Address { get; }

    /// <summary>The origins allowed now.</summary>
    public IReadOnlyCollection<string> AllowedOrigins => _origins.All;

    internal AgentOperations Operations => _operations;

    /// <summary>The application's services: its route table, for the tests that hold it to the documented API.</summary>
    internal IServiceProvider Services => _app.Services;

    /// <summary>The operator payments settle with and top-ups go to.</summary>
    public Uri OperatorUrl => _operations.OperatorUrl;

    /// <summary>
    /// Settles with another operator from now on (payments and top-ups started before keep theirs):
    /// for a host that starts the agent before the operator, whose address it learns only then. Its
    /// origin must be allowed (<see cref="Allow"/>) for its top-up page to use the agent.
    /// </summary>
    /// <exception cref="ArgumentException">Not an absolute http(s) URL.</exception>
    public void UseOperator(Uri operatorUrl)
    {
        AgentHost.CheckOperatorUrl(operatorUrl);
        _operations.OperatorUrl = operatorUrl;
    }

    /// <summary>Allows one more origin (<c>scheme://host[:port]</c>) to use the API.</summary>
    /// <exception cref="ArgumentException">Not an http(s) origin.</exception>
    public void Allow(string origin) => _origins.Add(origin);

    /// <summary>Stops answering, declines what waits for an approval, and lets card work in progress finish.</summary>
    public async ValueTask DisposeAsync()
    {
        await _operations.DisposeAsync().ConfigureAwait(false);
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}
