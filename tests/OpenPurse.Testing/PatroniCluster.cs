using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Npgsql;

namespace OpenPurse.Testing;

/// <summary>
/// A highly available PostgreSQL cluster in a temporary directory: three members pg1..pg3, each
/// PostgreSQL under Patroni, agreeing through a three-member etcd cluster. Patroni keeps one
/// standby synchronous and strictly so: a commit is acknowledged only once a standby has it.
/// Tests kill, cut off and pause members to see that no acknowledged commit is lost.
/// </summary>
/// <remarks>
/// Each member is a machine of its own whose network is a set of <see cref="Forwarder"/>s: in front
/// of its PostgreSQL port and REST API port (the addresses it tells the others, so replication and
/// the members' calls to each other cross them), and its own to each etcd member (its Patroni
/// reaches etcd only through them). <see cref="Cut"/> pulls that machine's cable. The etcd members
/// stand for machines apart from the database's: their own traffic to each other is never cut.
/// As root, Patroni and therefore PostgreSQL run as the user postgres (PostgreSQL refuses root) in a
/// directory others may pass through (0711) but not list; etcd runs as the test's user.
/// </remarks>
public sealed class PatroniCluster : IDisposable
{
    public const string PatroniProgram = "/usr/bin/patroni";
    public const string EtcdProgram = "/usr/bin/etcd";

    private const string Superuser = "postgres";
    private const int MemberCount = 3;
    private static readonly TimeSpan s_startDeadline = TimeSpan.FromSeconds(90);

    // A log line's time and process ("2026-01-01 10:00:00,123 " or "2026-01-01 10:00:00.123 UTC [42] ").
    private static readonly Regex s_logStamp = new(@"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[.,]\d+ (UTC \[\d+\] )?", RegexOptions.CultureInvariant);

    private readonly string _directory;
    private readonly string _scope;
    private readonly int[] _etcdClientPorts;
    private readonly List<Process> _etcd = [];
    private readonly Lock _reaperLock = new();
    private readonly HashSet<int> _watched = [];
    private Reaper? _reaper;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(2) };
    private readonly PatroniMember[] _members;
    private int _databaseSequence;

    private PatroniCluster(string directory, string scope, int[] etcdClientPorts, PatroniMember[] members)
    {
        _directory = directory;
        _scope = scope;
        _etcdClientPorts = etcdClientPorts;
        _members = members;
    }

    /// <summary>pg1..pg3, in that order.</summary>
    public IReadOnlyList<PatroniMember> Members => _members;

    /// <summary>
    /// Starts etcd, then the three members, and waits until one leads and two stream from it, one
    /// of them synchronously.
    /// </summary>
    public static PatroniCluster Start()
    {
        // Eighteen ports are probed free and then bound by other processes: another test, or a
        // connection's ephemeral port, may take one in between (etcd says "address already in use",
        // Patroni "Address already in use"). Start again on fresh ports, this often.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return StartOnce();
            }
            catch (InvalidOperationException e) when (attempt < StartAttemptsMax && e.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
            {
            }
        }
    }

    private const int StartAttemptsMax = 3;

    private static PatroniCluster StartOnce()
    {
        Components.Require(Components.Patroni, Components.Etcd, Components.PostgreSql);
        var directory = Directory.CreateTempSubdirectory("openpurse-patroni-").FullName;
        PatroniCluster? cluster = null;
        try
        {
            if (Environment.IsPrivilegedProcess)
            {
                File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
            }

            var scope = $"openpurse-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}";
            var clientPorts = Enumerable.Range(0, MemberCount).Select(_ => HaProxy.FreePort()).ToArray();
            var peerPorts = Enumerable.Range(0, MemberCount).Select(_ => HaProxy.FreePort()).ToArray();
            var members = Enumerable.Range(1, MemberCount)
                .Select(i => new PatroniMember($"pg{i}", Path.Combine(directory, $"pg{i}"), HaProxy.FreePort(), HaProxy.FreePort(), clientPorts))
                .ToArray();
            cluster = new PatroniCluster(directory, scope, clientPorts, members);
            cluster.StartEtcd(peerPorts);
            cluster.WaitForEtcd(s_startDeadline);
            foreach (var member in members)
            {
                cluster.WriteConfiguration(member);
                cluster.StartPatroni(member);
            }

            cluster.WaitUntilHealthyAsync(s_startDeadline).GetAwaiter().GetResult();
            return cluster;
        }
        catch
        {
            cluster?.Dispose();
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }

            throw;
        }
    }

    /// <summary>
    /// A connection string for a database on whichever member is primary: all three public
    /// addresses, tried in turn. Short connect and command timeouts so a client notices a dead or
    /// cut-off primary within seconds and tries the next.
    /// </summary>
    public string ConnectionStringFor(string database, bool pooling = true) => new NpgsqlConnectionStringBuilder
    {
        Host = string.Join(',', _members.Select(m => $"127.0.0.1:{m.Port}")),
        TargetSessionAttributes = "primary",
        Username = Superuser,
        Database = database,
        Pooling = pooling,
        Timeout = 3,
        // Application-level keepalives: a kernel one would be answered by the forwarder even when cut.
        KeepAlive = 2,
        CommandTimeout = 10,
        // Which host is primary changes in a failover: look again soon.
        HostRecheckSeconds = 1,
    }.ToString();

    /// <summary>A new, empty database on the primary (and so on every standby); dropped again when disposed.</summary>
    public async Task<PostgresDatabase> CreateDatabaseAsync(CancellationToken ct = default)
    {
        var name = $"test_{Interlocked.Increment(ref _databaseSequence)}_{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}";
        await ExecuteOnPrimaryAsync($"CREATE DATABASE {name}", ct);
        return new PostgresDatabase(name, ConnectionStringFor(name), async () =>
        {
            try
            {
                await ExecuteOnPrimaryAsync($"DROP DATABASE IF EXISTS {name} WITH (FORCE)", CancellationToken.None);
            }
            catch (NpgsqlException)
            {
                // A cluster its test left without a primary goes whole with its fixture; the test's
                // own failure is the one to report, not this one hiding it.
            }
        });
    }

    /// <summary>The member holding the leader key in etcd, waiting up to 30 s while there is none.</summary>
    public async Task<string> LeaderAsync(CancellationToken ct = default)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            if (await ReadKeyAsync("leader", ct) is { } leader)
            {
                return leader;
            }

            if (deadline.Elapsed > TimeSpan.FromSeconds(30))
            {
                throw new TimeoutException($"No leader for 30 s.\n{LogTails()}");
            }

            await Task.Delay(200, ct);
        }
    }

    /// <summary>The member holding the leader key now, or null while none does.</summary>
    public Task<string?> CurrentLeaderAsync(CancellationToken ct = default) => ReadKeyAsync("leader", ct);

    /// <summary>
    /// Waits for a leader other than <paramref name="old"/> that Patroni reports primary and whose
    /// PostgreSQL has left recovery (it takes writes, which in strict synchronous mode still wait
    /// for a standby).
    /// </summary>
    public async Task<string> WaitForNewLeaderAsync(string old, TimeSpan timeout, CancellationToken ct = default)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < timeout)
        {
            if (await ReadKeyAsync("leader", ct) is { } leader && leader != old
                && await StatusAsync(Member(leader), "primary", ct) == HttpStatusCode.OK
                && await IsPrimaryAsync(Member(leader), ct))
            {
                WatchPostmasters();
                return leader;
            }

            await Task.Delay(200, ct);
        }

        throw new TimeoutException($"No new leader in place of {old} within {timeout}.\n{LogTails()}");
    }

    /// <summary>The member Patroni keeps synchronous (its sync key in etcd), or null when none.</summary>
    public async Task<string?> SynchronousStandbyAsync(CancellationToken ct = default) => (await SyncKeyAsync(ct)).Standby;

    // Patroni's sync key: the primary that wrote it and the standby it keeps synchronous.
    private async Task<(string? Leader, string? Standby)> SyncKeyAsync(CancellationToken ct)
    {
        if (await ReadKeyAsync("sync", ct) is not { } sync)
        {
            return (null, null);
        }

        using var document = JsonDocument.Parse(sync);
        string? Text(string name) => document.RootElement.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
        return (Text("leader"), Text("sync_standby"));
    }

    /// <summary>Waits until <paramref name="member"/> is a standby streaming from the leader.</summary>
    public async Task WaitForReplicaAsync(string member, TimeSpan timeout, CancellationToken ct = default)
    {
        var deadline = Stopwatch.StartNew();
        var target = Member(member);
        while (deadline.Elapsed < timeout)
        {
            if (await StatusAsync(target, "replica", ct) == HttpStatusCode.OK && await StreamsAsync(member, ct))
            {
                WatchPostmasters();
                return;
            }

            await Task.Delay(250, ct);
        }

        throw new TimeoutException($"{member} did not rejoin as a streaming standby within {timeout}.\n{LogTails()}");
    }

    /// <summary>The machine dies: its Patroni and its PostgreSQL (postmaster and backends) get SIGKILL.</summary>
    public void Kill(string member)
    {
        var target = Member(member);
        StopPatroni(target);

        KillPostgres(target);
    }

    /// <summary>A killed member comes back: Patroni starts its PostgreSQL as a standby of the leader (rewound if need be).</summary>
    public void Restart(string member)
    {
        var target = Member(member);
        if (target.Patroni is not null)
        {
            throw new InvalidOperationException($"{member} is running.");
        }

        StartPatroni(target);
    }

    /// <summary>
    /// A member that does not come back as a standby is built anew, as <c>patronictl reinit</c>
    /// would: killed, its data directory removed, started again; Patroni then takes a base backup
    /// from the leader. (A killed primary restarted now and then stays "starting up" in its crash
    /// recovery for minutes.)
    /// </summary>
    public void Reinitialize(string member)
    {
        var target = Member(member);
        StopPatroni(target);
        KillPostgres(target);
        Directory.Delete(Path.Combine(target.Directory, "data"), recursive: true);
        StartPatroni(target);
    }

    /// <summary>Pulls the member's cable: its PostgreSQL and REST API are unreachable and it cannot reach etcd.</summary>
    public void Cut(string member)
    {
        foreach (var forwarder in Member(member).Forwarders)
        {
            forwarder.Cut();
        }
    }

    /// <summary>Plugs the cable in again.</summary>
    public void Heal(string member)
    {
        foreach (var forwarder in Member(member).Forwarders)
        {
            forwarder.Heal();
        }
    }

    /// <summary>Stops the member's PostgreSQL processes (SIGSTOP): a standby that falls behind. Its Patroni runs on.</summary>
    public void Pause(string member) => SignalPostgres(Member(member), "STOP");

    public void Resume(string member) => SignalPostgres(Member(member), "CONT");

    public void Dispose()
    {
        lock (_reaperLock)
        {
            _reaper?.Dispose();
            _reaper = null;
        }

        foreach (var member in _members)
        {
            StopPatroni(member);
            KillPostgres(member);
            foreach (var forwarder in member.Forwarders)
            {
                forwarder.Dispose();
            }
        }

        foreach (var etcd in _etcd)
        {
            if (!etcd.HasExited)
            {
                etcd.Kill();
                etcd.WaitForExit(10_000);
            }

            etcd.Dispose();
        }

        _http.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    // Patroni with what it runs beside PostgreSQL (pg_rewind, pg_basebackup, initdb): SIGKILL, as a dying machine.
    private static void StopPatroni(PatroniMember member)
    {
        if (member.Patroni is not { } patroni)
        {
            return;
        }

        if (!patroni.HasExited)
        {
            patroni.Kill(entireProcessTree: true);
            patroni.WaitForExit(10_000);
        }

        patroni.Dispose();
        member.Patroni = null;
    }

    // SIGKILL to the postmaster's process group, then wait until the postmaster is gone: its files are free again.
    private static void KillPostgres(PatroniMember member)
    {
        if (member.PostmasterId() is not { } postmaster)
        {
            return;
        }

        SignalPostgres(member, "KILL");
        var deadline = Stopwatch.StartNew();
        while (IsAlive(postmaster) && deadline.Elapsed < TimeSpan.FromSeconds(10))
        {
            Thread.Sleep(50);
        }
    }

    /// <summary>The tails of the etcd and Patroni logs, for an exception's message.</summary>
    public string LogTails()
    {
        var text = new StringBuilder();
        foreach (var log in Directory.EnumerateFiles(_directory, "*.log", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            // The last 40 different messages: a member waiting logs the same line every few seconds,
            // and a tail of those alone would hide what led there.
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var tail = File.ReadAllLines(log).Reverse().Where(line => seen.Add(s_logStamp.Replace(line, ""))).Take(40).Reverse();
            text.Append(CultureInfo.InvariantCulture, $"--- {Path.GetFileName(log)} ---\n");
            foreach (var line in tail)
            {
                text.Append(line).Append('\n');
            }
        }

        return text.ToString();
    }

    private PatroniMember Member(string name) =>
        _members.FirstOrDefault(m => m.Name == name) ?? throw new ArgumentOutOfRangeException(nameof(name), name, "No such member.");

    private void StartEtcd(int[] peerPorts)
    {
        var initialCluster = string.Join(',', peerPorts.Select((port, i) => $"etcd{i + 1}=http://127.0.0.1:{port}"));
        for (var i = 0; i < MemberCount; i++)
        {
            var data = Path.Combine(_directory, $"etcd{i + 1}");
            Directory.CreateDirectory(data);
            var process = Launch(Path.Combine(_directory, $"etcd{i + 1}.log"), EtcdProgram, null,
            [
                "--name", $"etcd{i + 1}",
                "--data-dir", data,
                "--listen-client-urls", $"http://127.0.0.1:{_etcdClientPorts[i]}",
                "--advertise-client-urls", $"http://127.0.0.1:{_etcdClientPorts[i]}",
                "--listen-peer-urls", $"http://127.0.0.1:{peerPorts[i]}",
                "--initial-advertise-peer-urls", $"http://127.0.0.1:{peerPorts[i]}",
                "--initial-cluster", initialCluster,
                "--initial-cluster-token", _scope,
                "--initial-cluster-state", "new",
            ]);
            _etcd.Add(process);
            Watch(process.Id);
        }
    }

    // Patroni asks etcd its cluster version once, at its start: it must be decided by then (the members have met).
    private void WaitForEtcd(TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var decided = _etcdClientPorts.Count(port =>
            {
                try
                {
                    var version = _http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/version")).GetAwaiter().GetResult();
                    using var document = JsonDocument.Parse(version);
                    return document.RootElement.GetProperty("etcdcluster").GetString() is { } cluster && cluster != "not_decided";
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException or KeyNotFoundException)
                {
                    return false;
                }
            });
            if (decided == MemberCount)
            {
                return;
            }

            if (_etcd.FirstOrDefault(e => e.HasExited) is { } exited)
            {
                throw new InvalidOperationException($"etcd exited with {exited.ExitCode}.\n{LogTails()}");
            }

            if (deadline.Elapsed > timeout)
            {
                throw new InvalidOperationException($"etcd did not come up within {timeout}.\n{LogTails()}");
            }

            Thread.Sleep(100);
        }
    }

    private void WriteConfiguration(PatroniMember member)
    {
        Directory.CreateDirectory(member.Directory);
        var etcdHosts = string.Join(", ", member.EtcdForwarders.Select(f => $"127.0.0.1:{f.Port}"));
        // Trust for 127.0.0.1 only: the cluster listens on loopback alone and lives for one test run.
        var yaml = $"""
            scope: {_scope}
            name: {member.Name}
            restapi:
              listen: 127.0.0.1:{member.ApiListenPort}
              connect_address: 127.0.0.1:{member.ApiPort}
            etcd3:
              hosts: [{etcdHosts}]
              # The hosts are this machine's own way to etcd: never replace them by the members etcd advertises.
              use_proxies: true
            bootstrap:
              dcs:
                ttl: 10
                loop_wait: 2
                retry_timeout: 3
                maximum_lag_on_failover: 1048576
                synchronous_mode: true
                synchronous_mode_strict: true
                postgresql:
                  use_pg_rewind: true
                  use_slots: true
                  parameters:
                    wal_level: replica
                    hot_standby: 'on'
                    wal_log_hints: 'on'
                    max_wal_senders: 10
                    max_replication_slots: 10
                    wal_sender_timeout: 5s
                    wal_receiver_timeout: 5s
                    synchronous_commit: 'on'
                    fsync: 'on'
              initdb:
              - encoding: UTF8
              - locale: C.UTF-8
            postgresql:
              listen: 127.0.0.1:{member.ListenPort}
              connect_address: 127.0.0.1:{member.Port}
              data_dir: {Path.Combine(member.Directory, "data")}
              bin_dir: {PostgresCluster.BinDirectory}
              pgpass: {Path.Combine(member.Directory, "pgpass")}
              authentication:
                superuser:
                  username: {Superuser}
                replication:
                  username: {Superuser}
                rewind:
                  username: {Superuser}
              parameters:
                unix_socket_directories: '{member.Directory}'
              pg_hba:
              - local all all trust
              - host all all 127.0.0.1/32 trust
              - host replication all 127.0.0.1/32 trust
            """;
        File.WriteAllText(member.ConfigurationFile, yaml);
        if (Environment.IsPrivilegedProcess)
        {
            File.SetUnixFileMode(member.Directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            Run("chown", ["-R", $"{Superuser}:{Superuser}", member.Directory]);
        }
    }

    private void StartPatroni(PatroniMember member)
    {
        // As root: setpriv executes Patroni as the user postgres in place, so the process we hold is Patroni itself.
        string program;
        string[] arguments;
        if (Environment.IsPrivilegedProcess)
        {
            program = "setpriv";
            arguments = ["--reuid", Superuser, "--regid", Superuser, "--init-groups", PatroniProgram, member.ConfigurationFile];
        }
        else
        {
            program = PatroniProgram;
            arguments = [member.ConfigurationFile];
        }

        member.Patroni = Launch(Path.Combine(_directory, $"{member.Name}.log"), program, member.Directory, arguments);
        Watch(member.Patroni.Id);
    }

    // The program in a session of its own (a Ctrl-C to the test run is the reaper's business), output appended to the log.
    private static Process Launch(string log, string program, string? home, string[] arguments)
    {
        const string Script = """log=$1; shift; exec "$@" >>"$log" 2>&1 </dev/null""";
        var start = new ProcessStartInfo("setsid", ["sh", "-c", Script, "launch", log, program, .. arguments]);
        if (home is not null)
        {
            start.Environment["HOME"] = home;
        }

        return Process.Start(start) ?? throw new InvalidOperationException($"{program} did not start.");
    }

    /// <summary>
    /// Waits until one member is primary, the others stream from it and Patroni has written which
    /// of them is synchronous (its sync key names the primary and that standby). Until that key is
    /// written after a failover, strict synchronous mode lets no standby take the lead: a kill of
    /// the new primary before it leaves the cluster without a leader until that primary returns.
    /// </summary>
    public async Task WaitUntilHealthyAsync(TimeSpan timeout, CancellationToken ct = default)
    {
        var deadline = Stopwatch.StartNew();
        string state = "nothing yet";
        while (deadline.Elapsed < timeout)
        {
            foreach (var etcd in _etcd.Where(e => e.HasExited))
            {
                throw new InvalidOperationException($"etcd exited with {etcd.ExitCode}.\n{LogTails()}");
            }

            foreach (var member in _members.Where(m => m.Patroni is { HasExited: true }))
            {
                throw new InvalidOperationException($"Patroni of {member.Name} exited with {member.Patroni!.ExitCode}.\n{LogTails()}");
            }

            state = await CheckHealthAsync(ct);
            if (state.Length == 0)
            {
                WatchPostmasters();
                return;
            }

            await Task.Delay(250, ct);
        }

        throw new TimeoutException($"The Patroni cluster was not healthy within {timeout}: {state}.\n{LogTails()}");
    }

    // Empty when one member is primary, two are replicas streaming from it and one of them is synchronous; else what is missing.
    private async Task<string> CheckHealthAsync(CancellationToken ct)
    {
        var primaries = new List<PatroniMember>();
        var replicas = 0;
        foreach (var member in _members)
        {
            if (await StatusAsync(member, "primary", ct) == HttpStatusCode.OK)
            {
                primaries.Add(member);
            }
            else if (await StatusAsync(member, "replica", ct) == HttpStatusCode.OK)
            {
                replicas++;
            }
        }

        if (primaries.Count != 1 || replicas != MemberCount - 1)
        {
            return $"{primaries.Count} primaries, {replicas} replicas";
        }

        try
        {
            await using var connection = new NpgsqlConnection(primaries[0].DirectConnectionString("postgres", listen: true));
            await connection.OpenAsync(ct);
            await using var command = new NpgsqlCommand(
                "SELECT count(*) FILTER (WHERE state = 'streaming'), string_agg(application_name, ',') FILTER (WHERE sync_state = 'sync') FROM pg_stat_replication", connection);
            await using var reader = await command.ExecuteReaderAsync(ct);
            await reader.ReadAsync(ct);
            var streaming = reader.GetInt64(0);
            var sync = reader.IsDBNull(1) ? null : reader.GetString(1);
            // Until Patroni has chosen (its sync key), synchronous_standby_names is '*': any standby counts, none is named.
            var (writer, chosen) = await SyncKeyAsync(ct);
            return streaming == MemberCount - 1 && sync is not null && sync == chosen && writer == primaries[0].Name
                ? ""
                : $"{streaming} streaming, synchronous {sync ?? "none"}, Patroni's choice {chosen ?? "none"} (by {writer ?? "none"})";
        }
        catch (NpgsqlException e)
        {
            return e.Message;
        }
    }

    private async Task<bool> StreamsAsync(string member, CancellationToken ct)
    {
        try
        {
            var leader = Member(await LeaderAsync(ct));
            await using var connection = new NpgsqlConnection(leader.DirectConnectionString("postgres", listen: true));
            await connection.OpenAsync(ct);
            await using var command = new NpgsqlCommand("SELECT count(*) FROM pg_stat_replication WHERE application_name = @name AND state = 'streaming'", connection);
            command.Parameters.AddWithValue("name", member);
            return (long)(await command.ExecuteScalarAsync(ct))! == 1;
        }
        catch (NpgsqlException)
        {
            return false;
        }
    }

    private static async Task<bool> IsPrimaryAsync(PatroniMember member, CancellationToken ct)
    {
        try
        {
            await using var connection = new NpgsqlConnection(member.DirectConnectionString("postgres", listen: true));
            await connection.OpenAsync(ct);
            await using var command = new NpgsqlCommand("SELECT NOT pg_is_in_recovery()", connection);
            return (bool)(await command.ExecuteScalarAsync(ct))!;
        }
        catch (NpgsqlException)
        {
            return false;
        }
    }

    // The member's REST API asked directly, past its cable: what Patroni on that machine believes.
    private async Task<HttpStatusCode?> StatusAsync(PatroniMember member, string endpoint, CancellationToken ct)
    {
        try
        {
            using var response = await _http.GetAsync(new Uri($"http://127.0.0.1:{member.ApiListenPort}/{endpoint}"), ct);
            return response.StatusCode;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            return null;
        }
    }

    // A key of this cluster in etcd (the v3 JSON gateway), from the first etcd member that answers; null when absent.
    private async Task<string?> ReadKeyAsync(string key, CancellationToken ct)
    {
        var body = JsonSerializer.Serialize(new Dictionary<string, string> { ["key"] = Convert.ToBase64String(Encoding.UTF8.GetBytes($"/service/{_scope}/{key}")) });
        foreach (var port in _etcdClientPorts)
        {
            try
            {
                using var content = new StringContent(body, Encoding.UTF8, "application/json");
                using var response = await _http.PostAsync(new Uri($"http://127.0.0.1:{port}/v3/kv/range"), content, ct);
                if (!response.IsSuccessStatusCode)
                {
                    continue;
                }

                using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
                if (!document.RootElement.TryGetProperty("kvs", out var kvs) || kvs.GetArrayLength() == 0)
                {
                    return null;
                }

                return Encoding.UTF8.GetString(Convert.FromBase64String(kvs[0].GetProperty("value").GetString()!));
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
            {
                // That etcd member does not answer: ask the next.
            }
        }

        return null;
    }

    private async Task ExecuteOnPrimaryAsync(string sql, CancellationToken ct)
    {
        await using var connection = new NpgsqlConnection(ConnectionStringFor("postgres", pooling: false));
        await connection.OpenAsync(ct);
        await using var command = new NpgsqlCommand(sql, connection) { CommandTimeout = 60 };
        await command.ExecuteNonQueryAsync(ct);
    }

    // The postmaster and its children (PostgreSQL puts each child in a session of its own, so no process group holds them all).
    private static void SignalPostgres(PatroniMember member, string signal)
    {
        if (member.PostmasterId() is not { } postmaster)
        {
            return;
        }

        var children = Directory.EnumerateDirectories("/proc")
            .Select(Path.GetFileName)
            .Select(name => int.TryParse(name, CultureInfo.InvariantCulture, out var id) ? id : 0)
            .Where(id => id > 0 && ParentOf(id) == postmaster);
        Run("kill", ["-s", signal, .. new[] { postmaster }.Concat(children).Select(id => id.ToString(CultureInfo.InvariantCulture))], check: false);
    }

    // Running, or at least not yet a zombie.
    private static bool IsAlive(int processId)
    {
        try
        {
            return !File.ReadAllText($"/proc/{processId}/stat").Contains(") Z ", StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
    }

    // The fourth field of /proc/PID/stat, after the parenthesized command name; null when the process is gone.
    private static int? ParentOf(int processId)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{processId}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return int.Parse(fields[1], CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return null;
        }
    }

    // Postmasters come and go (failover, rejoin, rewind): each new one joins the watched processes.
    private void WatchPostmasters()
    {
        foreach (var member in _members)
        {
            if (member.PostmasterId() is { } postmaster)
            {
                Watch(postmaster);
            }
        }
    }

    /// <summary>
    /// One reaper for the whole cluster, replaced by a new one whenever a process joins: it must
    /// delete the directory only once every process in it has ended, or a postmaster still
    /// writing leaves files behind. SIGQUIT ends them all: PostgreSQL's immediate shutdown (the
    /// postmaster takes its children along), and the default end of Patroni (Python) and etcd (Go).
    /// A postmaster started after the last replacement is not signalled, but shuts itself down
    /// once it finds its data directory gone.
    /// </summary>
    private void Watch(int processId)
    {
        lock (_reaperLock)
        {
            if (!_watched.Add(processId))
            {
                return;
            }

            // The reaper waits for every process it watches to end: none that already has.
            _watched.RemoveWhere(id => !IsAlive(id));

            var previous = _reaper;
            _reaper = Reaper.Watch([.. _watched], _directory, "QUIT");
            previous?.Dispose();
        }
    }

    private static void Run(string program, string[] arguments, bool check = true)
    {
        var start = new ProcessStartInfo(program, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{program} did not start.");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        process.WaitForExit(30_000);
        if (check && process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{program} {string.Join(' ', arguments)} exited with {process.ExitCode}: {output.Result}{error.Result}");
        }
    }
}

/// <summary>One member of a <see cref="PatroniCluster"/>: a PostgreSQL under Patroni, behind its own cable.</summary>
public sealed class PatroniMember
{
    internal PatroniMember(string name, string directory, int listenPort, int apiListenPort, int[] etcdClientPorts)
    {
        Name = name;
        Directory = directory;
        ListenPort = listenPort;
        ApiListenPort = apiListenPort;
        PostgresForwarder = new Forwarder(listenPort);
        ApiForwarder = new Forwarder(apiListenPort);
        EtcdForwarders = [.. etcdClientPorts.Select(port => new Forwarder(port))];
    }

    /// <summary>pg1, pg2 or pg3: Patroni's name of the member, and its standby's application_name.</summary>
    public string Name { get; }

    /// <summary>The member's public PostgreSQL port (through its cable), which clients and the other members use.</summary>
    public int Port => PostgresForwarder.Port;

    /// <summary>The member's public Patroni REST API port.</summary>
    public int ApiPort => ApiForwarder.Port;

    internal string Directory { get; }

    internal string ConfigurationFile => Path.Combine(Directory, "patroni.yml");

    /// <summary>The port PostgreSQL itself listens on, behind the cable.</summary>
    internal int ListenPort { get; }

    internal int ApiListenPort { get; }

    internal Forwarder PostgresForwarder { get; }

    internal Forwarder ApiForwarder { get; }

    internal IReadOnlyList<Forwarder> EtcdForwarders { get; }

    internal IEnumerable<Forwarder> Forwarders => [PostgresForwarder, ApiForwarder, .. EtcdForwarders];

    internal Process? Patroni { get; set; }

    /// <summary>A connection string to this member alone (primary or standby), through its cable.</summary>
    public string ConnectionStringFor(string database) => DirectConnectionString(database, listen: false);

    internal string DirectConnectionString(string database, bool listen) => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1",
        Port = listen ? ListenPort : Port,
        Username = "postgres",
        Database = database,
        Pooling = false,
        Timeout = 3,
        CommandTimeout = 10,
    }.ToString();

    /// <summary>The running postmaster's process id, from its postmaster.pid; null when none runs. Public for the load generator's processor time.</summary>
    public int? PostmasterId()
    {
        try
        {
            var data = Path.Combine(Directory, "data");
            var first = File.ReadLines(Path.Combine(data, "postmaster.pid")).FirstOrDefault();
            // A killed postmaster leaves its postmaster.pid behind, and its process id may belong by
            // now to another process (another cluster's server, a test's program): only a process
            // started on this data directory (Patroni's "-D", as configured) is this member's.
            return int.TryParse(first, CultureInfo.InvariantCulture, out var id) && File.ReadAllText($"/proc/{id}/cmdline").Split('\0').Contains(data) ? id : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}

/// <summary>
/// One <see cref="PatroniCluster"/> for the tests of a class (an xunit fixture), started when the
/// first of them asks for it. Tests that kill or cut members change it for those after them.
/// </summary>
public sealed class SharedPatroniCluster : IDisposable
{
    private readonly Lazy<PatroniCluster> _cluster = new(PatroniCluster.Start, LazyThreadSafetyMode.ExecutionAndPublication);

    public PatroniCluster Cluster => _cluster.Value;

    public Task<PostgresDatabase> CreateDatabaseAsync(CancellationToken ct = default) => Cluster.CreateDatabaseAsync(ct);

    public void Dispose()
    {
        if (_cluster.IsValueCreated)
        {
            _cluster.Value.Dispose();
        }
    }
}
