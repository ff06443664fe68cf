using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using OpenPurse.Hosting;
using OpenPurse.Operator.Issuance;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Security;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Operator;

/// <summary>
/// Key rotation at the station (docs/operations.md, "Rotating keys"): <c>store keys</c>,
/// <c>store key retire</c>, <c>key list</c>, <c>key rotate</c>, <c>key activate</c>,
/// <c>key retire</c> and <c>key rotate-master</c>, each audited like the admin API's actions.
/// Generating keys needs the vault, which only the station opens for it.
/// </summary>
internal static class KeyCommands
{
    /// <summary><c>store keys STORE [--json]</c>: the store's keys with when each was registered and retired.</summary>
    public static Task<int> ListStoreKeysAsync(OperatorOptions options, string storeId, bool json, TextWriter output, TextWriter error) =>
        StationCommands.WithStationAsync(options, async services =>
        {
            var keys = await services.GetRequiredService<StoreRegistry>().ListKeysAsync(storeId, CancellationToken.None).ConfigureAwait(false);
            await StationCommands.AuditAsync(services, "store.keys", storeId, keys is null ? StatusCodes.Status404NotFound : StatusCodes.Status200OK, keys is null ? ProblemCode.StoreNotFound.Code : null).ConfigureAwait(false);
            if (keys is null)
            {
                error.WriteLine($"openpurse-operator: no store '{storeId}' ({ProblemCode.StoreNotFound.Code}).");
                return StationCommands.ExitFailed;
            }

            WriteStoreKeys(keys, json, output);
            return StationCommands.ExitOk;
        });

    /// <summary><c>store key retire STORE KID [--reason …]</c>: every signature under the key is refused from now on.</summary>
    public static async Task<int> RetireStoreKeyAsync(OperatorOptions options, string storeId, string kid, string? reason, bool json, TextWriter output, TextWriter error)
    {
        string? said = null;
        if (reason is not null && !CardRegistry.TryReadReason(reason, out said))
        {
            error.WriteLine($"openpurse-operator: --reason is 1 to {CardRegistry.ReasonLengthMax} characters, without control characters.");
            return StationCommands.ExitUsage;
        }

        return await StationCommands.WithStationAsync(options, async services =>
        {
            var result = await services.GetRequiredService<StoreRegistry>().RetireKeyAsync(storeId, kid, CancellationToken.None).ConfigureAwait(false);
            await StationCommands.AuditAsync(services, "store.key_retire", $"{storeId}/{kid}", result.Refusal?.Problem.Status ?? StatusCodes.Status200OK, result.Refusal?.Code, said).ConfigureAwait(false);
            if (result.Refusal is { } refusal)
            {
                error.WriteLine($"openpurse-operator: key '{kid}' of store '{storeId}' not retired ({refusal.Code}): {refusal.Detail}");
                return StationCommands.ExitFailed;
            }

            if (!json)
            {
                output.WriteLine($"Retired key '{kid}' of store '{storeId}': signatures under it are refused from now on (on the other nodes within {StoreRegistry.CachedFor.TotalSeconds:0} s).");
            }

            WriteStoreKeys(result.Value!, json, output);
            return StationCommands.ExitOk;
        }).ConfigureAwait(false);
    }

    /// <summary><c>key list [--json]</c>: the operator's signing keys and states, and the master key versions.</summary>
    public static Task<int> ListAsync(OperatorOptions options, bool json, TextWriter output) =>
        StationCommands.WithStationAsync(options, async services =>
        {
            var list = await services.GetRequiredService<OperatorKeyRing>().ListAsync(CancellationToken.None).ConfigureAwait(false);
            await StationCommands.AuditAsync(services, "key.list", null, StatusCodes.Status200OK, null).ConfigureAwait(false);
            if (json)
            {
                output.WriteLine(JsonSerializer.Serialize(list, ProtocolJson.Options));
                return StationCommands.ExitOk;
            }

            output.WriteLine("Operator signing keys:");
            foreach (var key in list.OperatorKeys)
            {
                output.WriteLine($"  {key.Kid}  {key.State,-8}  created {StationCommands.Shown(key.CreatedAt)}"
                    + (key.ActivatedAt is { } activated ? $", activated {StationCommands.Shown(activated)}" : "")
                    + (key.RetiredAt is { } retired ? $", retired {StationCommands.Shown(retired)}" : "")
                    + (key.InVault || key.State == OperatorKeyStates.Retired ? "" : "  (not in this vault!)"));
            }

            output.WriteLine($"Card master key versions: {string.Join(", ", list.MasterKeyVersions)} (new cards get {list.MasterKeyVersions[^1]}).");
            return StationCommands.ExitOk;
        });

    /// <summary><c>key rotate</c>: a new signing key in the vault, published as next.</summary>
    public static Task<int> RotateAsync(OperatorOptions options, TextWriter output) =>
        StationCommands.WithStationAsync(options, async services =>
        {
            var key = await services.GetRequiredService<OperatorKeyRing>().RotateAsync(CancellationToken.None).ConfigureAwait(false);
            await StationCommands.AuditAsync(services, "key.rotate", key.Kid, StatusCodes.Status200OK, null).ConfigureAwait(false);
            output.WriteLine($"""
                New operator signing key {key.Kid}: next (published in the JWKS, not signing yet).
                Activate it once every wallet and store had time to fetch the JWKS:
                  openpurse-operator key activate {key.Kid}
                """);
            return StationCommands.ExitOk;
        });

    /// <summary><c>key activate KID</c> and <c>key retire KID</c>.</summary>
    public static Task<int> ChangeAsync(OperatorOptions options, string kid, bool activate, TextWriter output, TextWriter error) =>
        StationCommands.WithStationAsync(options, async services =>
        {
            var ring = services.GetRequiredService<OperatorKeyRing>();
            var result = activate
                ? await ring.ActivateAsync(kid, CancellationToken.None).ConfigureAwait(false)
                : await ring.RetireAsync(kid, CancellationToken.None).ConfigureAwait(false);
            await StationCommands.AuditAsync(services, activate ? "key.activate" : "key.retire", kid, result.Refusal?.Problem.Status ?? StatusCodes.Status200OK, result.Refusal?.Code).ConfigureAwait(false);
            if (result.Refusal is { } refusal)
            {
                error.WriteLine($"openpurse-operator: operator key '{kid}' not {(activate ? "activated" : "retired")} ({refusal.Code}): {refusal.Detail}");
                return StationCommands.ExitFailed;
            }

            output.WriteLine(activate
                ? $"Operator key {kid} is active; the nodes sign with it within {options.OperatorKeyRefresh.TotalSeconds:0.#} s. The key active until now stays published as previous until you retire it."
                : $"Operator key {kid} is retired: no longer published.");
            return StationCommands.ExitOk;
        });

    /// <summary><c>key rotate-master</c>: card master key version N+1; new cards are personalized under it.</summary>
    public static Task<int> RotateMasterAsync(OperatorOptions options, TextWriter output) =>
        StationCommands.WithStationAsync(options, async services =>
        {
            var version = services.GetRequiredService<ISecurityModule>().CreateMasterKey();
            await StationCommands.AuditAsync(services, "key.rotate_master", version.ToString("X2", System.Globalization.CultureInfo.InvariantCulture), StatusCodes.Status200OK, null).ConfigureAwait(false);
            output.WriteLine($"Card master key version {version:X2} created; cards issued from now on are personalized under it. Cards of older versions keep working.");
            return StationCommands.ExitOk;
        });

    private static void WriteStoreKeys(StoreKeys keys, bool json, TextWriter output)
    {
        if (json)
        {
            output.WriteLine(JsonSerializer.Serialize(keys, ProtocolJson.Options));
            return;
        }

        foreach (var key in keys.Keys)
        {
            output.WriteLine($"  {key.Kid}  created {StationCommands.Shown(key.CreatedAt)}{(key.RetiredAt is { } retired ? $", retired {StationCommands.Shown(retired)}" : ", active")}");
        }
    }
}
