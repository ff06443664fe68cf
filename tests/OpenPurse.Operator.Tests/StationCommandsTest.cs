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
    // issue` right after the command's words (so that an option missing its value cannot take it),
    // for `store register` after the file (so that it is not taken for the file).
    private Task<int> RunAsync(string[] args)
    {
        var directory = $"--OpenPurse:Operator:DataDirectory={_options.DataDirectory}";
        string[] line = args[0] == "card" ? [.. args[..2], directory, .. args[2..]] : [.. args, directory];
        return CommandLines.InvokeAsync(OperatorCommandLine.Build(), line, _output, _error, cancelOnInterrupt: false);
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
