using System.Collections.Concurrent;
using System.Text.Json;
using Dapper;
using OpenPurse.Hosting;
using OpenPurse.Operator.Api;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Storage;

namespace OpenPurse.Operator.Registry;

/// <summary>A registered store: who it is, its mall, where its completion notices go.</summary>
internal sealed record StoreRecord(string StoreId, string Name, string? MallId, string? NotifyUrl);

/// <summary>Stores and their published keys (KSHOP,P of the specification).</summary>
/// <remarks>
/// Every purchase looks its store up three times (the bill's key in round trip 1, the notify
/// address and the receipt's key in round trip 2), so found stores are kept for
/// <see cref="CachedFor"/>. An unknown key id always goes to the registry, so a new key works at
/// once on every node; a store registered again (name, mall, address) is seen at once on the node
/// that registered it and within <see cref="CachedFor"/> on the others. A key an administrator
/// retires (<see cref="RetireKeyAsync"/>) leaves the key sets found from then on: at once on the
/// node that retired it, within <see cref="CachedFor"/> on the others (docs/operations.md,
/// "Rotating keys"). A retired key stays in the registry for the record, and its kid can never
/// be registered again.
/// </remarks>
internal sealed class StoreRegistry(Database database, TimeProvider time)
{
    /// <summary>How long a found store is answered from memory.</summary>
    public static readonly TimeSpan CachedFor = TimeSpan.FromSeconds(5);

    private const int StoreIdLengthMax = 64;

    /// <summary>A registry on the system's clock.</summary>
    public StoreRegistry(Database database)
        : this(database, TimeProvider.System)
    {
    }

    private readonly ConcurrentDictionary<string, FoundStore> _byStore = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, FoundStore> _byKey = new(StringComparer.Ordinal);

    /// <summary>Registers a store as its administrator was asked to: the admin API and <c>store register</c> both come here.</summary>
    public Task<Result<StoreRecord>> RegisterAsync(StoreRegistration registration, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(registration);
        JsonWebKeySet keys;
        try
        {
            keys = JsonWebKeySet.Parse(registration.Jwks.GetRawText());
        }
        catch (FormatException e)
        {
            return Task.FromResult<Result<StoreRecord>>(new Refusal(ProblemCode.StoreInvalid, e.Message));
        }

        return RegisterAsync(new StoreRecord(registration.StoreId, registration.Name, registration.MallId, registration.NotifyUrl), keys, cancellationToken);
    }

    public async Task<Result<StoreRecord>> RegisterAsync(StoreRecord store, JsonWebKeySet keys, CancellationToken cancellationToken)
    {
        if (store.StoreId.Length is 0 or > StoreIdLengthMax || !store.StoreId.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_')
            || (store.MallId is { } mall && (mall.Length is 0 or > StoreIdLengthMax)))
        {
            return new Refusal(ProblemCode.StoreInvalid, "A store id is 1 to 64 letters, digits, '-' or '_'.");
        }

        if (keys.Keys.Count == 0 || keys.Keys.Any(k => !IsP256PublicKey(k)))
        {
            return new Refusal(ProblemCode.StoreInvalid, "A store registers one or more P-256 public keys (ES256).");
        }

        await using var write = await database.BeginWriteAsync(cancellationToken).ConfigureAwait(false);
        var (connection, transaction) = (write.Connection, write.Inner);
        foreach (var key in keys.Keys)
        {
            if (await connection.ExecuteScalarAsync<long>(
                "SELECT COUNT(*) FROM store_keys WHERE kid = @Kid AND retired_at IS NOT NULL", new { key.Kid }, transaction).ConfigureAwait(false) > 0)
            {
                // A retired key is retired for good: whoever holds its private half now cannot bring it back.
                return new Refusal(ProblemCode.StoreKeyRetired, $"Key '{key.Kid}' was retired; register a new key.");
            }
        }

        var now = StoredTime.Format(time.GetUtcNow());
        await connection.ExecuteAsync(
            """
            INSERT INTO stores (store_id, name, mall_id, notify_url, created_at) VALUES (@StoreId, @Name, @MallId, @NotifyUrl, @now)
            ON CONFLICT (store_id) DO UPDATE SET name = excluded.name, mall_id = excluded.mall_id, notify_url = excluded.notify_url
            """,
            new { store.StoreId, store.Name, store.MallId, store.NotifyUrl, now },
            transaction).ConfigureAwait(false);
        foreach (var key in keys.Keys)
        {
            await connection.ExecuteAsync(
                "INSERT INTO store_keys (kid, store_id, jwk, created_at) VALUES (@Kid, @StoreId, @jwk, @now) ON CONFLICT (kid) DO NOTHING",
                new { key.Kid, store.StoreId, jwk = JsonSerializer.Serialize(key), now },
                transaction).ConfigureAwait(false);
            // Read the owner after the insert, not before: the insert waits for a concurrent
            // registration of the same key id, and this read then sees it (READ COMMITTED).
            var owner = await connection.QuerySingleAsync<string>("SELECT store_id FROM store_keys WHERE kid = @Kid", new { key.Kid }, transaction).ConfigureAwait(false);
            if (owner != store.StoreId)
            {
                return new Refusal(ProblemCode.StoreInvalid, $"Key '{key.Kid}' belongs to another store.");
            }
        }

        await write.CommitAsync(cancellationToken).ConfigureAwait(false);
        Forget(store.StoreId);
        return store;
    }

    /// <summary>
    /// The store that owns a key id, and that store's active keys. A retired kid finds its store too,
    /// but not in the key set: <see cref="IsRetired"/> tells the callers' refusal.
    /// </summary>
    public async Task<(StoreRecord Store, JsonWebKeySet Keys)?> FindByKeyAsync(string kid, CancellationToken cancellationToken)
    {
        if (Fresh(_byKey, kid) is { } found)
        {
            return found;
        }

        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        var storeId = await connection.QuerySingleOrDefaultAsync<string>("SELECT store_id FROM store_keys WHERE kid = @kid", new { kid }).ConfigureAwait(false);
        return storeId is null ? null : Keep(await FindAsync(connection, storeId).ConfigureAwait(false));
    }

    public async Task<(StoreRecord Store, JsonWebKeySet Keys)?> FindAsync(string storeId, CancellationToken cancellationToken)
    {
        if (Fresh(_byStore, storeId) is { } found)
        {
            return found;
        }

        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        return Keep(await FindAsync(connection, storeId).ConfigureAwait(false));
    }

    /// <summary>Whether a kid that <see cref="FindByKeyAsync"/> found is retired: its store's key set lacks it.</summary>
    public static bool IsRetired(JsonWebKeySet keys, string kid)
    {
        ArgumentNullException.ThrowIfNull(keys);
        return !keys.Keys.Any(k => k.Kid == kid);
    }

    /// <summary>Whether a kid is a retired key of some store (for a refusal's code; not cached).</summary>
    public async Task<bool> IsRetiredAsync(string? kid, CancellationToken cancellationToken)
    {
        if (kid is null)
        {
            return false;
        }

        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        return await connection.ExecuteScalarAsync<long>(
            "SELECT COUNT(*) FROM store_keys WHERE kid = @kid AND retired_at IS NOT NULL", new { kid }).ConfigureAwait(false) > 0;
    }

    /// <summary>A store's keys, active and retired, oldest first; null when there is no such store.</summary>
    public async Task<StoreKeys?> ListKeysAsync(string storeId, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        var exists = await connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM stores WHERE store_id = @storeId", new { storeId }).ConfigureAwait(false) > 0;
        if (!exists)
        {
            return null;
        }

        var keys = await connection.QueryAsync<StoreKeyView>(
            "SELECT kid AS Kid, created_at AS CreatedAt, retired_at AS RetiredAt FROM store_keys WHERE store_id = @storeId ORDER BY created_at, kid",
            new { storeId }).ConfigureAwait(false);
        return new StoreKeys(storeId, [.. keys]);
    }

    /// <summary>
    /// Retires one of a store's keys: every signature under it is refused from now on (at once on
    /// this node, within <see cref="CachedFor"/> on the others). Retiring a retired key again
    /// changes nothing; the store's last active key is never retired.
    /// </summary>
    public async Task<Result<StoreKeys>> RetireKeyAsync(string storeId, string kid, CancellationToken cancellationToken)
    {
        await using (var write = await database.BeginWriteAsync(cancellationToken).ConfigureAwait(false))
        {
            var (connection, transaction) = (write.Connection, write.Inner);
            // Two administrators retiring a store's last two keys at once: the second waits and sees the first's.
            await database.Dialect.LockAsync(connection, transaction, LockKey(storeId)).ConfigureAwait(false);
            var keys = (await connection.QueryAsync<(string Kid, string? RetiredAt)>(
                "SELECT kid, retired_at FROM store_keys WHERE store_id = @storeId", new { storeId }, transaction).ConfigureAwait(false)).ToList();
            var key = keys.FirstOrDefault(k => k.Kid == kid);
            if (key.Kid is null)
            {
                return new Refusal(ProblemCode.StoreKeyNotFound, $"Store '{storeId}' has no key '{kid}'.");
            }

            if (key.RetiredAt is null)
            {
                if (!keys.Any(k => k.Kid != kid && k.RetiredAt is null))
                {
                    return new Refusal(ProblemCode.StoreKeyLast, $"'{kid}' is the last active key of store '{storeId}'; register its successor first.");
                }

                await connection.ExecuteAsync(
                    "UPDATE store_keys SET retired_at = @now WHERE kid = @kid AND retired_at IS NULL",
                    new { kid, now = StoredTime.Format(time.GetUtcNow()) }, transaction).ConfigureAwait(false);
                await write.CommitAsync(cancellationToken).ConfigureAwait(false);
            }
        }

        Forget(storeId);
        return (await ListKeysAsync(storeId, cancellationToken).ConfigureAwait(false))!;
    }

    /// <summary>Every registered store with its key ids, by store id: what an auditor reads.</summary>
    public async Task<IReadOnlyList<RegisteredStore>> ListAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        var stores = await connection.QueryAsync<StoreRecord>(
            "SELECT store_id AS StoreId, name AS Name, mall_id AS MallId, notify_url AS NotifyUrl FROM stores ORDER BY store_id").ConfigureAwait(false);
        var keys = (await connection.QueryAsync<(string StoreId, string Kid)>("SELECT store_id, kid FROM store_keys ORDER BY created_at, kid").ConfigureAwait(false))
            .ToLookup(k => k.StoreId, k => k.Kid, StringComparer.Ordinal);
        return [.. stores.Select(s => new RegisteredStore(s.StoreId, s.Name, s.MallId, s.NotifyUrl, [.. keys[s.StoreId]]))];
    }

    private static long LockKey(string storeId) =>
        System.Buffers.Binary.BinaryPrimitives.ReadInt64BigEndian(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes($"openpurse-store-keys:{storeId}")));

    private (StoreRecord Store, JsonWebKeySet Keys)? Fresh(ConcurrentDictionary<string, FoundStore> cache, string key) =>
        cache.TryGetValue(key, out var found) && time.GetUtcNow() < found.Until ? (found.Store, found.Keys) : null;

    // Only stores that exist are kept: unknown ids and key ids (anyone can send them) always ask the registry.
    private (StoreRecord Store, JsonWebKeySet Keys)? Keep((StoreRecord Store, JsonWebKeySet Keys)? store)
    {
        if (store is var (record, keys))
        {
            var found = new FoundStore(record, keys, time.GetUtcNow() + CachedFor);
            _byStore[record.StoreId] = found;
            foreach (var key in keys.Keys.Where(k => k.Kid is not null))
            {
                _byKey[key.Kid!] = found;
            }
        }

        return store;
    }

    private void Forget(string storeId)
    {
        if (_byStore.TryRemove(storeId, out var found))
        {
            foreach (var key in found.Keys.Keys.Where(k => k.Kid is not null))
            {
                _byKey.TryRemove(key.Kid!, out _);
            }
        }
    }

    private static async Task<(StoreRecord Store, JsonWebKeySet Keys)?> FindAsync(System.Data.Common.DbConnection connection, string storeId)
    {
        var store = await connection.QuerySingleOrDefaultAsync<StoreRecord>(
            "SELECT store_id AS StoreId, name AS Name, mall_id AS MallId, notify_url AS NotifyUrl FROM stores WHERE store_id = @storeId",
            new { storeId }).ConfigureAwait(false);
        if (store is null)
        {
            return null;
        }

        var jwks = await connection.QueryAsync<string>(
            "SELECT jwk FROM store_keys WHERE store_id = @storeId AND retired_at IS NULL ORDER BY created_at", new { storeId }).ConfigureAwait(false);
        return (store, new JsonWebKeySet(jwks.Select(j => JsonSerializer.Deserialize<JsonWebKey>(j)!)));
    }

    private static bool IsP256PublicKey(JsonWebKey key)
    {
        using var parsed = key.ToECDsa();
        return parsed is not null;
    }
}

/// <summary>A registered store as the admin API lists it: its record and its keys' ids.</summary>
internal sealed record RegisteredStore(string StoreId, string Name, string? MallId, string? NotifyUrl, IReadOnlyList<string> KeyIds);

/// <summary>A store's keys, oldest first, as <c>store keys</c> and the admin API list them.</summary>
internal sealed record StoreKeys(string StoreId, IReadOnlyList<StoreKeyView> Keys);

/// <summary>One of a store's keys as <c>store keys</c> lists it: when it was registered, and retired (null while active).</summary>
internal sealed record StoreKeyView(string Kid, string CreatedAt, string? RetiredAt);

/// <summary>A store as found in the registry (its active keys), and until when it is answered from memory.</summary>
internal sealed record FoundStore(StoreRecord Store, JsonWebKeySet Keys, DateTimeOffset Until);
