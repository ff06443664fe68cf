using Microsoft.Extensions.DependencyInjection;
using OpenPurse.Card;
using OpenPurse.Demo;
using OpenPurse.Operator.Security;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Store.Keys;
using OpenPurse.Testing;
using OpenPurse.Wallet.Readers;

namespace OpenPurse.EndToEnd.Tests;

/// <summary>What a deployment for one test holds: a mall of both demo members or one store, the card's first load, the bills' lifetime, and how long a settlement waits for its card.</summary>
internal sealed record DeploymentOptions(bool Mall, Money Load, TimeSpan BillLifetime, TimeSpan? SettlementTimeout = null);

/// <summary>
/// A running system the end-to-end suite buys from: the embedded defaults
/// (<see cref="EmbeddedDeployment"/>) or the real set (<see cref="RealDeployment"/>). Either way the
/// servers are real (Kestrel on 127.0.0.1) and the card is an issued <see cref="EmulatedCard"/>.
/// </summary>
internal interface IDeployment : IAsyncDisposable
{
    EmulatedCard Card { get; }

    /// <summary>The store's signing keys, one per member.</summary>
    MemberKeys MemberKeys { get; }

    /// <summary>The operator's security module (its key vault), for tests that forge what only the operator could make.</summary>
    ISecurityModule Security { get; }

    /// <summary>A connection to the card as the wallet reaches it; the caller disposes it.</summary>
    ICardReader OpenCardReader();

    /// <summary>A client to the operator (or its balancer), through <paramref name="through"/> when given.</summary>
    HttpClient OperatorClient(DelegatingHandler? through = null);

    /// <summary>A client to the store, through <paramref name="through"/> when given.</summary>
    HttpClient StoreClient(DelegatingHandler? through = null);

    /// <summary>The operator's reconcile of its books, as <c>openpurse-operator reconcile</c> runs it.</summary>
    Task<Operator.Registry.LedgerReport> ReconcileAsync();
}

/// <summary>
/// The base of each end-to-end suite: declared once, run once per deployment by a concrete class
/// for the embedded defaults and one for the real set, which passes the infrastructure it shares.
/// </summary>
public abstract class EndToEndSuite(RealInfrastructure? realSet)
{
    private protected async Task<EndToEndKit> StartKitAsync(bool mall = true, string load = "50.00 EUR", TimeSpan? billLifetime = null, TimeSpan? settlementTimeout = null)
    {
        var options = new DeploymentOptions(mall, Money.Parse(load), billLifetime ?? TimeSpan.FromMinutes(15), settlementTimeout);
        IDeployment deployment = realSet is null
            ? await EmbeddedDeployment.StartAsync(options)
            : await RealDeployment.StartAsync(realSet, options);
        return await EndToEndKit.OpenAsync(deployment);
    }
}

/// <summary>The embedded defaults: the demo's operator (SQLite, software vault) and store in process, the card in an in-process reader.</summary>
internal sealed class EmbeddedDeployment : IDeployment
{
    private readonly string _directory;
    private readonly DemoSystem _system;

    private EmbeddedDeployment(string directory, DemoSystem system, EmulatedCard card)
    {
        _directory = directory;
        _system = system;
        Card = card;
    }

    public EmulatedCard Card { get; }

    public MemberKeys MemberKeys => _system.StoreServices.GetRequiredService<MemberKeys>();

    public ISecurityModule Security => _system.OperatorServices.GetRequiredService<ISecurityModule>();

    public static async Task<EmbeddedDeployment> StartAsync(DeploymentOptions options)
    {
        var directory = Directory.CreateTempSubdirectory("openpurse-e2e-").FullName;
        DemoSystem? system = null;
        try
        {
            system = await DemoSystem.StartAsync(directory, mall: options.Mall, billLifetime: options.BillLifetime, settlementTimeout: options.SettlementTimeout);
            var card = await system.IssueCardAsync(Path.Combine(directory, "card.bin"), options.Load);
            return new EmbeddedDeployment(directory, system, card);
        }
        catch
        {
            if (system is not null)
            {
                await system.DisposeAsync();
            }

            Directory.Delete(directory, recursive: true);
            throw;
        }
    }

    public ICardReader OpenCardReader() => new InProcessReader(Card);

    public HttpClient OperatorClient(DelegatingHandler? through = null) => _system.OperatorClient(Through(through));

    public HttpClient StoreClient(DelegatingHandler? through = null) => _system.StoreClient(Through(through));

    public Task<Operator.Registry.LedgerReport> ReconcileAsync() =>
        _system.OperatorServices.GetRequiredService<Operator.Registry.Ledger>().ReconcileAsync(CancellationToken.None);

    public async ValueTask DisposeAsync()
    {
        Card.Dispose();
        await _system.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    private HttpMessageHandler Through(DelegatingHandler? through)
    {
        if (through is null)
        {
            return _system.CreateHandler();
        }

        through.InnerHandler = _system.CreateHandler();
        return through;
    }
}
