using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace OpenPurse.Testing;

/// <summary>
/// How a deployment's member stores get to the operator, as an operator's administrator does it:
/// <c>openpurse-store registration</c> prints them, each with only its own keys, and each is
/// posted to the operator's <c>/v1/admin/stores</c>, on its admin listener, as printed.
/// </summary>
public static class MallRegistration
{
    /// <param name="storeEnvironment">The store's configuration, as its process gets it.</param>
    /// <param name="operatorUrl">A node's admin listener.</param>
    /// <param name="adminToken">The operator's admin token.</param>
    /// <exception cref="InvalidOperationException">The store's command failed.</exception>
    /// <exception cref="HttpRequestException">The operator refused a registration.</exception>
    public static async Task RegisterAsync(IReadOnlyDictionary<string, string> storeEnvironment, Uri operatorUrl, string adminToken)
    {
        var (exit, output) = await PartyProcess.RunAsync("openpurse-store", ["registration"], storeEnvironment);
        if (exit != 0)
        {
            throw new InvalidOperationException($"openpurse-store registration exited {exit}: {output}");
        }

        using var registrations = JsonDocument.Parse(output.Trim());
        using var http = new HttpClient { BaseAddress = operatorUrl };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", adminToken);
        foreach (var registration in registrations.RootElement.EnumerateArray())
        {
            using var content = new StringContent(registration.GetRawText(), Encoding.UTF8, "application/json");
            using var response = await http.PostAsync(new Uri("v1/admin/stores", UriKind.Relative), content);
            response.EnsureSuccessStatusCode();
        }
    }
}
