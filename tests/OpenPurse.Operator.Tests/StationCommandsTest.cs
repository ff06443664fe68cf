using System.Text.Json;
using Dapper;
using OpenPurse.Card;
using OpenPurse.CommandLine;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Security;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// <c>card issue</c> and <c>store register</c> on the embedded defaults (SQLite, the software vault)
/// in a temporary directory: what they write, what they print, and that a refusal changes nothing.
/// </summary>
public sealed class StationCommandsTest : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("openpurse-station-").FullName;
    private readonly StringWriter _output = new();
    private readonly StringWriter _error = new();
    private readonly OperatorOptions _options;

    public StationCommandsTest()
    {
        _options = new OperatorOptions { DataDirectory = Path.Combine(_directory, "operator") };
        // The commands open the vault and never make it, as in production after `vault init`.
        KeyVaults.Initialize(_options, Directory.CreateDirectory(_options.DataDirectory).FullName);
    }

    private string CardPath => Path.Combine(_directory, "card.bin");

    [Fact]
    public async Task IssueCardAsync_WithLoad_WritesLoadedCardRegisteredAndMasked()
    {
        var exit = await RunAsync(["card", "issue", "--out", CardPath, "--load", "50.00 EUR"]);

        Assert.Equal(StationCommands.ExitOk, exit);
        using var card = EmulatedCard.Open(CardPath);
        Assert.Equal(new Money(5_000, Currency.Eur), BalanceOf(card));
        var output = _output.ToString();
        Assert.Contains(card.CardId.Masked, output, StringComparison.Ordinal);
        Assert.Contains("50.00 EUR", output, StringComparison.Ordinal);
        Assert.DoesNotContain(card.CardId.Digits, output, StringComparison.Ordinal);
        Assert.Empty(_error.ToString());

        // The registry knows the card, active, with the value the card holds and the load journaled.
        await using var connection = await (await RegistryAsync()).OpenAsync();
        var id = card.CardId.Digits;
        Assert.Equal("active", await connection.ExecuteScalarAsync<string>("SELECT status FROM cards WHERE card_id = @id", new { id }));
        Assert.Equal(5_000, await connection.ExecuteScalarAsync<long>("SELECT balance_minor FROM card_purses WHERE card_id = @id AND currency = 'EUR'", new { id }));
        Assert.Equal(5_000, await connection.ExecuteScalarAsync<long>("SELECT amount_minor FROM journal WHERE account = @account", new { account = "card:" + id }));
    }

    [Fact]
    public async Task IssueCardAsync_WithoutLoad_WritesEmptyCard()
    {
        var exit = await RunAsync(["card", "issue", "--out", CardPath]);

        Assert.Equal(StationCommands.ExitOk, exit);
        using var card = EmulatedCard.Open(CardPath);
        Assert.Null(BalanceOf(card));
        Assert.Equal($"Issued card {card.CardId.Masked} into {CardPath}.", _output.ToString().TrimEnd());
    }

    [Fact]
    public async Task IssueCardAsync_FileExists_FailsAndLeavesFileAndRegistryUntouched()
    {
        byte[] contents = [1, 2, 3];
        await File.WriteAllBytesAsync(CardPath, contents);

        var exit = await RunAsync(["card", "issue", "--out", CardPath, "--load", "50.00 EUR"]);

        Assert.Equal(StationCommands.ExitFailed, exit);
        Assert.Equal(contents, await File.ReadAllBytesAsync(CardPath));
        Assert.Contains("exists", _error.ToString(), StringComparison.Ordinal);
        Assert.Empty(_output.ToString());
        await using var connection = await (await RegistryAsync()).OpenAsync();
        Assert.Equal(0, await connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM cards"));
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("50.00")]
    [InlineData("-5.00 EUR")]
    public async Task IssueCardAsync_LoadNotAnAmount_UsageErrorNoCard(string load)
    {
        var exit = await RunAsync(["card", "issue", "--out", CardPath, "--load", load]);

        Assert.Equal(StationCommands.ExitUsage, exit);
        Assert.Contains(load, _error.ToString(), StringComparison.Ordinal);
        Assert.False(File.Exists(CardPath));
    }

    public static TheoryData<string[]> IssueWithoutOut => [[], ["--load", "50.00 EUR"], ["--out"], ["--file", "card.bin"]];

    [Theory]
    [MemberData(nameof(IssueWithoutOut))]
    public async Task IssueCardAsync_NoOut_UsageError(string[] args)
    {
        var exit = await RunAsync(["card", "issue", .. args]);

        Assert.Equal(StationCommands.ExitUsage, exit);
        Assert.Contains("Usage:", _error.ToString(), StringComparison.Ordinal);
        Assert.False(File.Exists(CardPath));
        Assert.Empty(_output.ToString());
    }

    [Fact]
    public async Task RegisterStoresAsync_TwoStores_OperatorKnowsBothAndTheirKeys()
    {
        using var booksKey = EcdsaSigningKey.Generate();
        using var tunesKey = EcdsaSigningKey.Generate();
        var path = WriteRegistrations(
            Registration("books", booksKey, mallId: "mall", notifyUrl: "https://mall.example/v1/operator/completions"),
            Registration("tunes", tunesKey, mallId: "mall", notifyUrl: "https://mall.example/v1/operator/completions"));

        var exit = await RunAsync(["store", "register", path]);

        Assert.Equal(StationCommands.ExitOk, exit);
        var output = _output.ToString();
        Assert.Contains("'books'", output, StringComparison.Ordinal);
        Assert.Contains("'tunes'", output, StringComparison.Ordinal);
        Assert.Empty(_error.ToString());
        var stores = new StoreRegistry(await RegistryAsync());
        foreach (var (storeId, key) in new[] { ("books", booksKey), ("tunes", tunesKey) })
        {
            var found = await stores.FindByKeyAsync(key.KeyId, CancellationToken.None);
            Assert.NotNull(found);
            Assert.Equal(new StoreRecord(storeId, storeId + " name", "mall", "https://mall.example/v1/operator/completions"), found.Value.Store);
            Assert.Equal(key.KeyId, Assert.Single(found.Value.Keys.Keys).Kid);
        }
    }

    [Fact]
    public async Task StationCommands_WriteTheAuditTrail_AsTheLocalUser()
    {
        using var key = EcdsaSigningKey.Generate();
        Assert.Equal(StationCommands.ExitOk, await RunAsync(["store", "register", WriteRegistrations(Registration("shop", key))]));
        Assert.Equal(StationCommands.ExitOk, await RunAsync(["card", "issue", "--out", CardPath]));

        var rows = await new AuditTrail(await RegistryAsync(), TimeProvider.System).ReadAsync(10, CancellationToken.None);

        using var card = EmulatedCard.Open(CardPath);
        Assert.Equal(
            [(Environment.UserName, "station", "card.issue", card.CardId.Masked, 200L, (string?)null), (Environment.UserName, "station", "store.register", "shop", 200L, null)],
            rows.Select(r => (r.Actor, r.Role!, r.Action, r.Target!, r.Status, r.Code)));
        Assert.All(rows, r => Assert.Null(r.RemoteAddress));
    }

    [Fact]
    public async Task CardFind_Table_ShowsReferenceMaskedStateAndBalance()
    {
        Assert.Equal(StationCommands.ExitOk, await RunAsync(["card", "issue", "--out", CardPath, "--load", "50.00 EUR"]));
        using var card = EmulatedCard.Open(CardPath);
        Fresh();

        var exit = await RunAsync(["card", "find", "--last", card.CardId.Digits[^6..]]);

        Assert.Equal(StationCommands.ExitOk, exit);
        var output = _output.ToString();
        Assert.Contains(card.CardId.Digits, output, StringComparison.Ordinal);
        Assert.Contains(card.CardId.Masked, output, StringComparison.Ordinal);
        Assert.Contains("active", output, StringComparison.Ordinal);
        Assert.Contains("50.00 EUR", output, StringComparison.Ordinal);
        Assert.Empty(_error.ToString());
        var row = (await new AuditTrail(await RegistryAsync(), TimeProvider.System).ReadAsync(1, CancellationToken.None))[0];
        Assert.Equal(("card.find", "last •••• " + card.CardId.Digits[^4..], "station"), (row.Action, row.Target, row.Role));
    }

    [Fact]
    public async Task CardFindBlockUnblock_Json_ForScripts_WithExitCodes_AndReasonsInTheAuditTrail()
    {
        Assert.Equal(StationCommands.ExitOk, await RunAsync(["card", "issue", "--out", CardPath, "--load", "20.00 EUR"]));
        using var card = EmulatedCard.Open(CardPath);
        Fresh();

        Assert.Equal(StationCommands.ExitOk, await RunAsync(["card", "find", "--last", card.CardId.Digits[^4..], "--json"]));
        var found = JsonSerializer.Deserialize<JsonElement>(_output.ToString());
        var listed = Assert.Single(found.GetProperty("cards").EnumerateArray(), c => c.GetProperty("masked").GetString() == card.CardId.Masked);
        var reference = listed.GetProperty("reference").GetString()!;
        Assert.Equal(card.CardId.Digits, reference);
        Assert.Equal(2_000, Assert.Single(listed.GetProperty("balances").EnumerateArray()).GetProperty("minorUnits").GetInt64());

        Fresh();
        Assert.Equal(StationCommands.ExitOk, await RunAsync(["card", "block", reference, "--reason", "holder reported it lost", "--json"]));
        var blocked = JsonSerializer.Deserialize<JsonElement>(_output.ToString());
        Assert.Equal(JsonValueKind.Null, blocked.GetProperty("code").ValueKind);
        Assert.Equal("blocked", blocked.GetProperty("card").GetProperty("state").GetString());

        Fresh();
        Assert.Equal(StationCommands.ExitOk, await RunAsync(["card", "unblock", reference, "--reason", "blocked the wrong card"]));
        Assert.Equal($"Card {card.CardId.Masked} is active.", _output.ToString().Trim());

        Fresh();
        Assert.Equal(StationCommands.ExitFailed, await RunAsync(["card", "unblock", reference, "--reason", "again"]));
        Assert.Contains("card.not_blocked", _error.ToString(), StringComparison.Ordinal);
        Assert.Empty(_output.ToString());

        Fresh();
        Assert.Equal(StationCommands.ExitFailed, await RunAsync(["card", "unblock", reference, "--reason", "again", "--json"]));
        Assert.Equal("card.not_blocked", JsonSerializer.Deserialize<JsonElement>(_output.ToString()).GetProperty("code").GetString());

        Fresh();
        Assert.Equal(StationCommands.ExitOk, await RunAsync(["card", "block", reference, "--reason", "lost after all"]));
        Assert.Equal($"Card {card.CardId.Masked} is blocked.", _output.ToString().Trim());

        await using var connection = await (await RegistryAsync()).OpenAsync();
        Assert.Equal("blocked", await connection.ExecuteScalarAsync<string>("SELECT status FROM cards WHERE card_id = @id", new { id = reference }));
        var rows = await new AuditTrail(await RegistryAsync(), TimeProvider.System).ReadAsync(5, CancellationToken.None);
        Assert.Equal(
            [
                ("card.block", 200L, (string?)null, "lost after all"),
                ("card.unblock", 409L, "card.not_blocked", "again"),
                ("card.unblock", 409L, "card.not_blocked", "again"),
                ("card.unblock", 200L, null, "blocked the wrong card"),
                ("card.block", 200L, null, "holder reported it lost"),
            ],
            rows.Select(r => (r.Action, r.Status, r.Code, r.Reason!)));
        Assert.All(rows, r => Assert.Equal(card.CardId.Masked, r.Target));
    }

    [Theory]
    [InlineData("find", "--last", "123")]
    [InlineData("find", "--last", "123456789")]
    [InlineData("find", "--last", "12a4")]
    [InlineData("block", "9400001234567890")]
    [InlineData("unblock", "not-a-card", "--reason", "why")]
    [InlineData("block", "9400001234567890", "--reason", "   ")]
    public async Task CardCommands_BadUsage_Exit2(params string[] args)
    {
        var exit = await RunAsync(["card", .. args]);

        Assert.Equal(StationCommands.ExitUsage, exit);
        Assert.Empty(_output.ToString());
    }

    [Fact]
    public async Task CardBlock_UnknownCard_Exit1()
    {
        var exit = await RunAsync(["card", "block", CardId.FromSerial(940_000_000_000_001).Digits, "--reason", "lost"]);

        Assert.Equal(StationCommands.ExitFailed, exit);
        Assert.Contains("card.unknown", _error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task RegisterStoresAsync_SameStoreAgain_UpdatesItsName()
    {
        using var key = EcdsaSigningKey.Generate();
        Assert.Equal(StationCommands.ExitOk, await RunAsync(["store", "register", WriteRegistrations(Registration("shop", key))]));

        // Running a registration again is harmless: the same key, a new name.
        var exit = await RunAsync(["store", "register", WriteRegistrations(Registration("shop", key) with { Name = "Renamed" })]);

        Assert.Equal(StationCommands.ExitOk, exit);
        var found = await new StoreRegistry(await RegistryAsync()).FindAsync("shop", CancellationToken.None);
        Assert.Equal("Renamed", found?.Store.Name);
        Assert.Single(found!.Value.Keys.Keys);
    }

    [Theory]
    [InlineData("this is not JSON")]
    [InlineData("""{"storeId":"shop"}""")]
    [InlineData("""[{"storeId":"shop"}]""")]
    public async Task RegisterStoresAsync_NotARegistrationFile_Fails(string contents)
    {
        var path = Path.Combine(_directory, "registration.json");
        await File.WriteAllTextAsync(path, contents);

        var exit = await RunAsync(["store", "register", path]);

        Assert.Equal(StationCommands.ExitFailed, exit);
        Assert.Contains("is not a registration file", _error.ToString(), StringComparison.Ordinal);
        Assert.Empty(_output.ToString());
    }

    [Fact]
    public async Task RegisterStoresAsync_FileMissing_Fails()
    {
        var exit = await RunAsync(["store", "register", Path.Combine(_directory, "missing.json")]);

        Assert.Equal(StationCommands.ExitFailed, exit);
        Assert.Contains("missing.json", _error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task RegisterStoresAsync_InvalidStoreId_RefusedWithCodeAndThoseBeforeStay()
    {
        using var goodKey = EcdsaSigningKey.Generate();
        using var badKey = EcdsaSigningKey.Generate();
        var path = WriteRegistrations(Registration("good", goodKey), Registration("bad id!", badKey));

        var exit = await RunAsync(["store", "register", path]);

        Assert.Equal(StationCommands.ExitFailed, exit);
        var error = _error.ToString();
        Assert.Contains("store.invalid", error, StringComparison.Ordinal);
        Assert.Contains("'bad id!'", error, StringComparison.Ordinal);
        Assert.Contains("'good'", _output.ToString(), StringComparison.Ordinal);
        // Each registration is its own transaction: the one before the refusal stays registered.
        var stores = new StoreRegistry(await RegistryAsync());
        Assert.NotNull(await stores.FindAsync("good", CancellationToken.None));
        Assert.Null(await stores.FindByKeyAsync(badKey.KeyId, CancellationToken.None));
    }

    [Fact]
    public async Task RegisterStoresAsync_NoKeys_RefusedWithCode()
    {
        using var key = EcdsaSigningKey.Generate();
        var path = WriteRegistrations(Registration("shop", key) with { Jwks = JsonSerializer.Deserialize<JsonElement>("""{"keys":[]}""") });

        var exit = await RunAsync(["store", "register", path]);

        Assert.Equal(StationCommands.ExitFailed, exit);
        Assert.Contains("store.invalid", _error.ToString(), StringComparison.Ordinal);
        Assert.Null(await new StoreRegistry(await RegistryAsync()).FindAsync("shop", CancellationToken.None));
    }

    public static TheoryData<string[]> RegisterWrongArgumentCount => [[], ["a.json", "b.json"]];

    [Theory]
    [MemberData(nameof(RegisterWrongArgumentCount))]
    public async Task RegisterStoresAsync_WrongArgumentCount_UsageError(string[] args)
    {
        var exit = await RunAsync(["store", "register", .. args]);

        Assert.Equal(StationCommands.ExitUsage, exit);
        Assert.Contains("Usage:", _error.ToString(), StringComparison.Ordinal);
    }

    // The program's command line, as a person types it, on this test's data directory: for `card
    // issue` and `card find` right after the command's words (so that an option missing its value
    // cannot take it), for `store register`, `card block` and `card unblock` at the end (so that it is
    // not taken for the file or the card's reference).
    private Task<int> RunAsync(string[] args)
    {
        var directory = $"--OpenPurse:Operator:DataDirectory={_options.DataDirectory}";
        string[] line = args[0] == "card" && args[1] is "issue" or "find" ? [.. args[..2], directory, .. args[2..]] : [.. args, directory];
        return CommandLines.InvokeAsync(OperatorCommandLine.Build(), line, _output, _error, cancelOnInterrupt: false);
    }

    // The next command's output and errors alone.
    private void Fresh()
    {
        _output.GetStringBuilder().Clear();
        _error.GetStringBuilder().Clear();
    }

    public void Dispose()
    {
        _output.Dispose();
        _error.Dispose();
        // SQLite's pooled connections may hold the registry open; let go of them first.
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    // The registry the commands wrote to, read on its own (migrated, in case no command opened it).
    private async Task<Database> RegistryAsync()
    {
        var database = Database.Open(_options, _options.DataDirectory);
        await database.MigrateAsync();
        return database;
    }

    private static StoreRegistration Registration(string storeId, EcdsaSigningKey key, string? mallId = null, string? notifyUrl = null) =>
        new(storeId, storeId + " name", mallId, notifyUrl, JsonSerializer.Deserialize<JsonElement>(new JsonWebKeySet([key.PublicKey]).ToJson()));

    // A registration file as `openpurse-store registration` writes it.
    private string WriteRegistrations(params StoreRegistration[] registrations)
    {
        var path = Path.Combine(_directory, $"registration-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, JsonSerializer.Serialize(registrations, ProtocolJson.Options));
        return path;
    }

    // The card's balance in euros as its GET DATA tells it; null when it holds no euro purse.
    private static Money? BalanceOf(EmulatedCard card)
    {
        Assert.True(ResponseApdu.Parse(card.Transmit(CardHostSession.Select().ToBytes())).IsOk);
        var answer = ResponseApdu.Parse(card.Transmit(CardHostSession.GetData().ToBytes()));
        Assert.True(PurseStatus.TryParse(answer.Data, out var status));
        return status.BalanceOf(Currency.Eur);
    }
}
