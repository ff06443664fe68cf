using System.Net;
using OpenPurse.Hosting;
using OpenPurse.Protocol;

namespace OpenPurse.Store;

/// <summary>
/// How a store process runs: one store, or a mall (spec: mall 41) hosting member stores (member store 42).
/// </summary>
public sealed record StoreOptions
{
    /// <summary>Where the order database (<c>store.db</c>) and the member stores' keys (<c>keys/</c>) live.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>
    /// The mall's id, which names the order numbers' namespace and receives completions;
    /// null when this process is a single store that issues its own order numbers.
    /// </summary>
    public string? MallId { get; init; }

    /// <summary>The stores this process serves, each signing its own bills and receipts.</summary>
    public required IReadOnlyList<MemberStoreOptions> Members { get; init; }

    /// <summary>The operator's API: its key set at <c>/.well-known/jwks.json</c>, receipts at <c>/v1/settlements/{id}/receipt</c>.</summary>
    public required Uri OperatorUrl { get; init; }

    /// <summary>How long a bill may be paid after it was issued; the operator refuses it afterwards.</summary>
    public TimeSpan BillLifetime { get; init; } = TimeSpan.FromMinutes(15);

    /// <summary>The addresses to listen on, separated by <c>;</c>; loopback only. Port 0 picks a free port. An https URL needs <see cref="TlsCertificatePath"/>.</summary>
    public string Urls { get; init; } = "http://127.0.0.1:0";

    /// <summary>
    /// Where the operator and wallets reach this store (behind a proxy, its public address); the
    /// operator's completion notices go below it. Default: the first of <see cref="Urls"/>.
    /// </summary>
    public Uri? PublicUrl { get; init; }

    /// <summary>PEM server certificate (the certificate, then its CA's) for https URLs.</summary>
    public string? TlsCertificatePath { get; init; }

    /// <summary>PEM private key of <see cref="TlsCertificatePath"/>, readable by the owner only.</summary>
    public string? TlsKeyPath { get; init; }

    /// <summary>PEM root certificates to trust when calling the operator over https (besides the system's).</summary>
    public string? TrustedRootsPath { get; init; }

    /// <summary>
    /// Orders per second one client address may keep creating (each is a signed bill and a row);
    /// beyond it and <see cref="ClientOrderBurst"/>, 429 request.rate_limited. Behind a reverse
    /// proxy every client has the proxy's address: see docs/operations.md.
    /// </summary>
    public int ClientOrdersPerSecond { get; init; } = 2;

    /// <summary>Orders one client address may create at once after a pause.</summary>
    public int ClientOrderBurst { get; init; } = 20;

    /// <summary>
    /// The store owner's token for the admin API (<c>/v1/admin/*</c>: refunds), sent as a bearer
    /// token; without one the admin API refuses everyone. <c>openpurse-store refund</c> needs none.
    /// </summary>
    public string? AdminToken { get; init; }

    /// <summary>
    /// Where the checkout page's wallet agent listens (<c>openpurse agent</c>, on the buyer's own
    /// machine): written into the page, and the one other origin its content security policy lets
    /// it connect to. http on a loopback address, or https; no path.
    /// </summary>
    public Uri AgentUrl { get; init; } = Pages.DefaultAgentUrl;

    /// <summary>
    /// The client addresses that may scrape <c>/metrics</c> (Prometheus); anyone else is answered
    /// 404. Loopback only by default.
    /// </summary>
    public IReadOnlyList<IPAddress> MetricsClients { get; init; } = [IPAddress.Loopback, IPAddress.IPv6Loopback];
}

/// <summary>One (member) store: who it is and what it sells.</summary>
/// <param name="StoreId">The id the operator knows the store by; lower-case letters, digits and '-'.</param>
/// <param name="Name">The name shown to people.</param>
/// <param name="Catalog">What it sells, all priced in one currency (<c>PTS</c>: it sells for points).</param>
/// <param name="PointsPerUnit">
/// Points its receipts award per whole unit of the currency paid (10: 12.50 EUR earns 120 PTS); 0
/// awards none. A store that sells for points awards none.
/// </param>
public sealed record MemberStoreOptions(string StoreId, string Name, IReadOnlyList<CatalogItem> Catalog, int PointsPerUnit = 0);

/// <summary>A digital good for sale.</summary>
/// <param name="Sku">The store's item code, unique within the store.</param>
/// <param name="Title">The name shown to people and on the bill.</param>
/// <param name="Price">The price of one unit.</param>
/// <param name="Content">The good itself, a text delivered once the payment has completed.</param>
public sealed record CatalogItem(string Sku, string Title, Money Price, string Content);
