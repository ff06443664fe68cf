using System.Text.Json;
using Dapper;
using OpenPurse.Card;
using OpenPurse.CommandLine;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Security;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Purse;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// A card's life from the station's command line, on the embedded defaults (SQLite, the software
/// vault) in a temporary directory: a batch issued, a card registered, found by its holder,
/// replaced, the holder erased; as tables and lines for a person and as JSON for scripts.
/// </summary>
public sealed class CardLifeCommandsTest : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("openpurse-cardlife-").FullName;
    private readonly StringWriter _output = new();
    private readonly StringWriter _error = new();
    private readonly OperatorOptions _options;

    public CardLifeCommandsTest()
    {
        _options = new OperatorOptions { DataDirectory = Path.Combine(_directory, "operator") };
        KeyVaults.Initialize(_options, Directory.CreateDirectory(_options.DataDirectory).FullName);
    }

    [Fact]
    public async Task IssueBatch_Json_OwnerOnlyFilesInAnOwnerOnlyDirectory_LoadedAndAuditedEach()
    {
        var batch = Path.Combine(_directory, "batch");

        var exit = await RunAsync(["card", "issue", "--count", "3", "--out", batch, "--load", "5.00 EUR", "--json"]);

        Assert.Equal(StationCommands.ExitOk, exit);
        Assert.Empty(_error.ToString());
        var outcome = JsonSerializer.Deserialize<JsonElement>(_output.ToString());
        Assert.Equal(3, outcome.GetProperty("asked").GetInt32());
        Assert.Equal(JsonValueKind.Null, outcome.GetProperty("failure").ValueKind);
        var issued = outcome.GetProperty("issued").EnumerateArray().ToList();
        Assert.Equal(3, issued.Count);
        Assert.Equal(3, issued.Select(c => c.GetProperty("reference").GetString()).Distinct().Count());
        foreach (var card in issued)
        {
            var file = card.GetProperty("file").GetString()!;
            Assert.Equal(batch, Path.GetDirectoryName(file));
            Assert.EndsWith(card.GetProperty("reference").GetString()![^4..] + ".card", file, StringComparison.Ordinal);
            using var opened = EmulatedCard.Open(file);
            Assert.Equal(new Money(500, Currency.Eur), BalanceOf(opened));
            if (!OperatingSystem.IsWindows())
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
            }
        }

        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(batch));
        }

        Assert.Equal(3, Directory.GetFiles(batch).Length);
        await using var connection = await (await RegistryAsync()).OpenAsync();
        Assert.Equal(3, await connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM admin_audit WHERE action = 'card.issue' AND status = 200"));
        Assert.Equal(0, await connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM admin_audit WHERE target LIKE '%' || @digits || '%'", new { digits = issued[0].GetProperty("reference").GetString() }));
    }

    [Fact]
    public async Task IssueBatch_Plain_ALinePerCard_NotIntoANonEmptyDirectory_CountOutOfRangeIsUsage()
    {
        var batch = Path.Combine(_directory, "batch");

        Assert.Equal(StationCommands.ExitOk, await RunAsync(["card", "issue", "--count", "2", "--out", batch]));

        var lines = _output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Count(l => l.StartsWith("Issued card •••• ", StringComparison.Ordinal)));
        Assert.Contains("Issued 2 cards into", _output.ToString(), StringComparison.Ordinal);

        Fresh();
        Assert.Equal(StationCommands.ExitFailed, await RunAsync(["card", "issue", "--count", "2", "--out", batch]));
        Assert.Contains("not empty", _error.ToString(), StringComparison.Ordinal);
        Assert.Equal(2, Directory.GetFiles(batch).Length);

        foreach (var count in new[] { "0", "1001", "-1" })
        {
            Fresh();
            Assert.Equal(StationCommands.ExitUsage, await RunAsync(["card", "issue", "--count", count, "--out", Path.Combine(_directory, "other")]));
        }

        Assert.False(Directory.Exists(Path.Combine(_directory, "other")));
    }

    [Fact]
    public async Task Register_FindByHolder_Replace_Erase_AsAPersonAndAsAScript()
    {
        var oldPath = Path.Combine(_directory, "old.card");
        Assert.Equal(StationCommands.ExitOk, await RunAsync(["card", "issue", "--out", oldPath, "--load", "50.00 EUR"]));
        string reference;
        using (var old = EmulatedCard.Open(oldPath))
        {
            reference = old.CardId.Digits;
        }

        Fresh();
        Assert.True(await RunAsync(["card", "register", reference, "--name", "Ada Lovelace", "--contact", "ada@example.org"]) == StationCommands.ExitOk, _error.ToString());
        Assert.Contains("is registered to holder", _output.ToString(), StringComparison.Ordinal);

        // Refused before anything is written: a name with a line break, a contact that is neither kind.
        Fresh();
        Assert.Equal(StationCommands.ExitUsage, await RunAsync(["card", "register", reference, "--name", "Ada\nLovelace", "--contact", "ada@example.org"]));
        Assert.Contains("card.holder_invalid", _error.ToString(), StringComparison.Ordinal);
        Fresh();
        Assert.Equal(StationCommands.ExitUsage, await RunAsync(["card", "register", reference, "--name", "Ada", "--contact", "020 7946 0000"]));
        Fresh();
        Assert.Equal(StationCommands.ExitUsage, await RunAsync(["card", "find", "--holder", "ab"]));

        Fresh();
        Assert.Equal(StationCommands.ExitOk, await RunAsync(["card", "find", "--holder", "LOVELACE"]));
        var table = _output.ToString();
        Assert.Contains("Ada Lovelace, ada@example.org", table, StringComparison.Ordinal);
        Assert.Contains("50.00 EUR", table, StringComparison.Ordinal);

        Fresh();
        Assert.Equal(StationCommands.ExitOk, await RunAsync(["card", "find", "--holder", "ada@example.org", "--json"]));
        var found = Assert.Single(JsonSerializer.Deserialize<JsonElement>(_output.ToString()).GetProperty("cards").EnumerateArray());
        Assert.Equal(reference, found.GetProperty("reference").GetString());
        var holderId = found.GetProperty("holder").GetProperty("holderId").GetString()!;

        var newPath = Path.Combine(_directory, "new.card");
        Fresh();
        Assert.Equal(StationCommands.ExitOk, await RunAsync(["card", "replace", reference, "--out", newPath, "--reason", "lost on the train", "--json"]));
        var replaced = JsonSerializer.Deserialize<JsonElement>(_output.ToString());
        Assert.Equal(JsonValueKind.Null, replaced.GetProperty("code").ValueKind);
        var carried = Assert.Single(replaced.GetProperty("carried").EnumerateArray());
        Assert.Equal((5_000L, "EUR"), (carried.GetProperty("minorUnits").GetInt64(), carried.GetProperty("currency").GetString()));
        Assert.Equal(holderId, replaced.GetProperty("holderId").GetString());
        using (var fresh = EmulatedCard.Open(newPath))
        {
            // The value is on its way: the new card takes it at its first sync, not here.
            Assert.Null(BalanceOf(fresh));
        }

        Fresh();
        Assert.Equal(StationCommands.ExitFailed, await RunAsync(["card", "replace", reference, "--out", Path.Combine(_directory, "again.card"), "--reason", "lost again"]));
        Assert.Contains("card.replaced", _error.ToString(), StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_directory, "again.card")));
        Fresh();
        Assert.Equal(StationCommands.ExitFailed, await RunAsync(["card", "unblock", reference, "--reason", "found it"]));
        Assert.Contains("card.replaced", _error.ToString(), StringComparison.Ordinal);

        Fresh();
        Assert.Equal(StationCommands.ExitOk, await RunAsync(["card", "find", "--holder", "Lovelace"]));
        Assert.Contains("by •••• ", _output.ToString(), StringComparison.Ordinal);
        Assert.Contains("replaces •••• ", _output.ToString(), StringComparison.Ordinal);

        Fresh();
        Assert.Equal(StationCommands.ExitOk, await RunAsync(["card", "holder", "erase", holderId]));
        Fresh();
        Assert.Equal(StationCommands.ExitOk, await RunAsync(["card", "find", "--holder", "Lovelace"]));
        Assert.Contains("No card is registered to such a holder.", _output.ToString(), StringComparison.Ordinal);
        Fresh();
        Assert.Equal(StationCommands.ExitFailed, await RunAsync(["card", "holder", "erase", Guid.NewGuid().ToString(), "--json"]));
        Assert.Equal("card.holder_unknown", JsonSerializer.Deserialize<JsonElement>(_output.ToString()).GetProperty("code").GetString());
        Fresh();
        Assert.Equal(StationCommands.ExitUsage, await RunAsync(["card", "holder", "erase", "../etc/passwd"]));

        // The books: the old card's value owed to the new one, pending its sync.
        Fresh();
        Assert.Equal(StationCommands.ExitOk, await RunAsync(["reconcile"]));

        // Every step audited with the card masked and the holder by id; no name, contact or number.
        await using var connection = await (await RegistryAsync()).OpenAsync();
        var rows = (await connection.QueryAsync<(string Action, string? Target, string? Reason)>("SELECT action, target, reason FROM admin_audit")).ToList();
        Assert.Contains(rows, r => r.Action == "card.replace" && r.Reason == "lost on the train");
        Assert.Contains(rows, r => r.Action == "card.block");
        Assert.Contains(rows, r => r.Action == "holder.erase" && r.Target == "holder " + holderId);
        Assert.DoesNotContain(rows, r => $"{r.Target} {r.Reason}".Contains("Lovelace", StringComparison.Ordinal) || $"{r.Target} {r.Reason}".Contains("ada@", StringComparison.Ordinal)
            || $"{r.Target}".Contains(reference, StringComparison.Ordinal));
    }

    public void Dispose()
    {
        _output.Dispose();
        _error.Dispose();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    // The program's command line on this test's data directory: right after the command's words for
    // `card issue` and `card find` (an option missing its value cannot take it), at the end for the
    // commands that take a card's reference or a holder's id (it is not taken for them).
    private Task<int> RunAsync(string[] args)
    {
        var directory = $"--OpenPurse:Operator:DataDirectory={_options.DataDirectory}";
        string[] line = args[0] == "card" && args[1] is "issue" or "find" ? [.. args[..2], directory, .. args[2..]] : [.. args, directory];
        return CommandLines.InvokeAsync(OperatorCommandLine.Build(), line, _output, _error, cancelOnInterrupt: false);
    }

    private void Fresh()
    {
        _output.GetStringBuilder().Clear();
        _error.GetStringBuilder().Clear();
    }

    private async Task<Database> RegistryAsync()
    {
        var database = Database.Open(_options, _options.DataDirectory);
        await database.MigrateAsync();
        return database;
    }

    private static Money? BalanceOf(EmulatedCard card)
    {
        Assert.True(ResponseApdu.Parse(card.Transmit(CardHostSession.Select().ToBytes())).IsOk);
        var answer = ResponseApdu.Parse(card.Transmit(CardHostSession.GetData().ToBytes()));
        Assert.True(PurseStatus.TryParse(answer.Data, out var status));
        return status.BalanceOf(Currency.Eur);
    }
}
