using System.Diagnostics;
using System.Security.Cryptography;
using Npgsql;

namespace OpenPurse.Testing;

/// <summary>
/// A private PostgreSQL cluster in a temporary directory: its own data directory, a free port on
/// 127.0.0.1, its Unix socket in the same directory, trust authentication for the user postgres.
/// Each test asks it for a fresh database. Disposing stops the cluster and deletes the directory.
/// </summary>
/// <remarks>
/// initdb refuses to run as root: as root the cluster's files belong to the
/// user postgres, the programs run through runuser, and the temporary directory lets others pass
/// through (0711) but not list it. The server keeps its durable defaults (fsync, synchronous_commit
/// on); only initdb skips its final fsync of the files it made, which a crash could only cost the
/// test that was starting.
/// </remarks>
public sealed class PostgresCluster : IDisposable
{
    public const string BinDirectory = "/usr/lib/postgresql/15/bin";

    private const string Superuser = "postgres";
    private const int CommandTimeoutMs = 120_000;

    /// <summary>Another process may take the free port between our probe and the server's bind: try again, this often.</summary>
    private const int StartAttemptsMax = 3;

    private readonly string _directory;
    private readonly string _dataDirectory;
    private readonly bool _asRoot;
    private readonly Reaper _reaper;
    private int _databaseSequence;

    private PostgresCluster(string directory, string dataDirectory, bool asRoot, int port, int? owner)
    {
        _directory = directory;
        _dataDirectory = dataDirectory;
        _asRoot = asRoot;
        Port = port;
        // A cancelled run leaves no cluster behind: SIGQUIT is the postmaster's immediate shutdown.
        _reaper = Reaper.Watch([ProcessId], directory, "QUIT", owner);
    }

    public int Port { get; }

    /// <summary>The server's (postmaster's) process id, from the first line of its postmaster.pid.</summary>
    public int ProcessId => int.Parse(File.ReadLines(Path.Combine(_dataDirectory, "postmaster.pid")).First(), System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>initdb, then pg_ctl start, waiting until the server accepts connections.</summary>
    /// <param name="owner">The process whose end ends the cluster too; this test process unless a test of the reaper says otherwise.</param>
    public static PostgresCluster Start(int? owner = null)
    {
        Components.Require(Components.PostgreSql);
        var asRoot = Environment.IsPrivilegedProcess;
        var directory = Directory.CreateTempSubdirectory("openpurse-postgres-").FullName;
        try
        {
            // The cluster's own directory: data, socket and log, owned by the server's user.
            var home = Directory.CreateDirectory(Path.Combine(directory, "cluster")).FullName;
            if (asRoot)
            {
                File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
                Run("chown", [$"{Superuser}:{Superuser}", home]);
            }

            var data = Path.Combine(home, "data");
            Run(Program("initdb", asRoot), [.. Prefix("initdb", asRoot), "-D", data, "-U", Superuser, "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"]);
            var log = Path.Combine(home, "server.log");
            for (var attempt = 1; ; attempt++)
            {
                var port = HaProxy.FreePort();
                var (exitCode, output) = TryRun(Program("pg_ctl", asRoot),
                    [.. Prefix("pg_ctl", asRoot), "-D", data, "-l", log, "-w", "-t", "60", "-o", $"-c listen_addresses=127.0.0.1 -p {port} -k {home}", "start"]);
                if (exitCode == 0)
                {
                    return new PostgresCluster(directory, data, asRoot, port, owner);
                }

                var serverLog = File.Exists(log) ? File.ReadAllText(log) : "";
                if (attempt == StartAttemptsMax || !serverLog.Contains("could not bind", StringComparison.Ordinal))
                {
                    throw new InvalidOperationException($"pg_ctl start exited with {exitCode}: {output}\n{serverLog}");
                }
            }
        }
        catch
        {
            Directory.Delete(directory, recursive: true);
            throw;
        }
    }

    /// <summary>A connection string for a database of this cluster, as the superuser, over TCP.</summary>
    public string ConnectionStringFor(string database, bool pooling = true) => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1",
        Port = Port,
        Username = Superuser,
        Database = database,
        Pooling = pooling,
    }.ToString();

    /// <summary>A new, empty database that no other test uses; dropped again when disposed.</summary>
    public async Task<PostgresDatabase> CreateDatabaseAsync(CancellationToken cancellationToken = default)
    {
        var name = $"test_{Interlocked.Increment(ref _databaseSequence)}_{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}";
        await ExecuteAsync($"CREATE DATABASE {name}", cancellationToken);
        return new PostgresDatabase(name, ConnectionStringFor(name), () => ExecuteAsync($"DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }

    /// <summary>Runs one statement in the maintenance database (postgres), on a connection of its own.</summary>
    public async Task ExecuteAsync(string sql, CancellationToken cancellationToken = default)
    {
        await using var connection = new NpgsqlConnection(ConnectionStringFor("postgres", pooling: false));
        await connection.OpenAsync(cancellationToken);
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public void Dispose()
    {
        _reaper.Dispose();
        try
        {
            Run(Program("pg_ctl", _asRoot), [.. Prefix("pg_ctl", _asRoot), "-D", _dataDirectory, "-w", "-t", "60", "-m", "fast", "stop"]);
        }
        finally
        {
            // A postmaster whose directory is gone notices and shuts itself down.
            Directory.Delete(_directory, recursive: true);
        }
    }

    // As root: runuser -u postgres -- /usr/lib/postgresql/15/bin/TOOL ...; otherwise the tool itself.
    private static string Program(string tool, bool asRoot) => asRoot ? "runuser" : Path.Combine(BinDirectory, tool);

    private static string[] Prefix(string tool, bool asRoot) => asRoot ? ["-u", Superuser, "--", Path.Combine(BinDirectory, tool)] : [];

    private static void Run(string program, string[] arguments)
    {
        var (exitCode, output) = TryRun(program, arguments);
        if (exitCode != 0)
        {
            throw new InvalidOperationException($"{program} {string.Join(' ', arguments)} exited with {exitCode}: {output}");
        }
    }

    private static (int ExitCode, string Output) TryRun(string program, string[] arguments)
    {
        var start = new ProcessStartInfo(program, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{program} did not start.");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(CommandTimeoutMs))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', arguments)} did not finish within {CommandTimeoutMs} ms.");
        }

        return (process.ExitCode, output.Result + error.Result);
    }
}

/// <summary>One test's database in a <see cref="PostgresCluster"/> or a <see cref="PatroniCluster"/>.</summary>
public sealed class PostgresDatabase : IAsyncDisposable
{
    private readonly Func<Task> _drop;

    /// <param name="drop">Drops the database, ending the sessions still connected to it.</param>
    internal PostgresDatabase(string name, string connectionString, Func<Task> drop)
    {
        _drop = drop;
        Name = name;
        ConnectionString = connectionString;
    }

    public string Name { get; }

    public string ConnectionString { get; }

    /// <summary>Drops the database, ending the sessions the test's connection pools still hold.</summary>
    public async ValueTask DisposeAsync() => await _drop();
}

/// <summary>
/// One <see cref="PostgresCluster"/> for the tests of a class or collection (an xunit fixture),
/// started when the first of them asks for a database: tests that are skipped for want of
/// PostgreSQL start nothing.
/// </summary>
public sealed class SharedPostgresCluster : IDisposable
{
    private readonly Lazy<PostgresCluster> _cluster = new(() => PostgresCluster.Start(), LazyThreadSafetyMode.ExecutionAndPublication);

    public PostgresCluster Cluster => _cluster.Value;

    public Task<PostgresDatabase> CreateDatabaseAsync(CancellationToken cancellationToken = default) => Cluster.CreateDatabaseAsync(cancellationToken);

    public void Dispose()
    {
        if (_cluster.IsValueCreated)
        {
            _cluster.Value.Dispose();
        }
    }
}
