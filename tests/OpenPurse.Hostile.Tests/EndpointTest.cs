using Xunit.Abstractions;

namespace OpenPurse.Hostile.Tests;

/// <summary>
/// Every endpoint of each server (the credit authorizer's too), fed its hostile probes one after another: no answer is a fault
/// (5xx), every refusal is problem details with a code docs/errors.md documents for that server,
/// with its status, and afterwards the ledger reconciles and nothing moved (no journal line, no
/// purse, card, settlement or order changed), and each status an endpoint answered (to the probes
/// and to the system's purchase) is among that operation's responses in the server's OpenAPI document.
/// </summary>
public sealed class EndpointTest(HostileSystem system, ITestOutputHelper output) : IClassFixture<HostileSystem>
{
    [Fact]
    public Task OperatorEndpoints_HostileInput_RefusedWithDocumentedCodesAndNothingMoves() =>
        ProbeAsync(Party.Operator, EndpointProbes.Operator(system), DocumentedCodes.Operator);

    [Fact]
    public Task StoreEndpoints_HostileInput_RefusedWithDocumentedCodesAndNothingMoves() =>
        ProbeAsync(Party.Store, EndpointProbes.Store(system), DocumentedCodes.Store);

    [Fact]
    public async Task AuthorizerEndpoints_HostileInput_RefusedWithDocumentedCodesAndNothingMoves()
    {
        await ProbeAsync(Party.Authorizer, EndpointProbes.Authorizer(system), DocumentedCodes.Authorizer);

        // The approval every probe aimed at is neither captured nor voided.
        using var read = new HttpRequestMessage(HttpMethod.Get, $"/v1/authorizations/{system.Approved:D}");
        read.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", HostileSystem.AuthorizerApiKey);
        using var answer = await system.Authorizer.SendAsync(read);
        var authorization = System.Text.Json.JsonDocument.Parse(await answer.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("approved", authorization.GetProperty("status").GetString());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, authorization.GetProperty("captured").ValueKind);
        Assert.Equal(System.Text.Json.JsonValueKind.Null, authorization.GetProperty("voidedAt").ValueKind);
    }

    private async Task ProbeAsync(Party party, IReadOnlyDictionary<string, Func<IEnumerable<Probe>>> catalog, DocumentedCodes documented)
    {
        var before = await system.BooksAsync();
        var faults = new List<string>();
        var count = 0;
        foreach (var endpoint in system.Endpoints(party))
        {
            // An endpoint the catalog lacks fails RouteTableTest; here it is one more fault.
            if (!catalog.TryGetValue(endpoint, out var probes))
            {
                faults.Add($"{endpoint}: no probes");
                continue;
            }

            // An admin endpoint is probed on the admin listener, and on the public one, where it must not be found.
            var clients = system.IsAdmin(party, endpoint) ? new[] { system.OperatorAdmin, system.Client(party) } : [system.Client(party)];
            foreach (var probe in probes())
            {
                foreach (var client in clients)
                {
                    count++;
                    if (probe.Fault(await probe.SendAsync(client), documented) is { } fault)
                    {
                        faults.Add($"{endpoint} on {client.BaseAddress}: {probe}: {fault}");
                    }
                }
            }
        }

        // The OpenAPI documents describe every answer an endpoint gave, the purchase's and the
        // probes', but the pages' (which are not API: RouteTableTest).
        var documents = await system.DocumentsAsync(party);
        var pages = system.PagePaths(party);
        foreach (var answer in system.Observed.Where(o => o.Party == party && o.ByAnEndpoint && !pages.Contains(o.Path, StringComparer.OrdinalIgnoreCase)).Distinct())
        {
            if (documents.Single(d => d.Admin == answer.Admin).Document.Fault(answer) is { } fault)
            {
                faults.Add("OpenAPI: " + fault);
            }
        }

        output.WriteLine($"{count} probes, {faults.Count} faults.");
        Assert.True(faults.Count == 0, string.Join(Environment.NewLine, faults));
        (await system.BooksAsync()).AssertUnchangedSince(before);
    }
}
