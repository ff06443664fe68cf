using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Data.Sqlite;
using OpenPurse.Authorizer.Authorizations;
using OpenPurse.Authorizer.Cards;
using OpenPurse.Storage;

namespace OpenPurse.Authorizer.Tests;

/// <summary>
/// What the authorizer keeps and logs: its files private, and no card number or PIN anywhere,
/// after every test card and refusal has passed through it.
/// </summary>
public sealed class SecretsTest
{
    private static readonly string[] s_pans =
    [
        TestCards.Approves, TestCards.Declines, TestCards.FailsPin, TestCards.ExceedsLimit, TestCards.TimesOut, TestCards.FailsOnce,
        "5105105105105100", "4242424242424241",
    ];

    [Fact]
    public async Task AfterEveryCard_NoFileRowOrLogLineHoldsACardNumberOrPin_AndTheFilesArePrivate()
    {
        var logs = new LogCapture();
        var directory = Directory.CreateTempSubdirectory("openpurse-authorizer-").FullName;
        try
        {
            await using (var authorizer = await TestAuthorizer.StartAsync(TestAuthorizer.OptionsFor(directory), logs: logs))
            {
                foreach (var pan in s_pans)
                {
                    var request = TestAuthorizer.Request(await authorizer.EncryptCardAsync(pan), reference: "secrets-" + pan[^4..]);
                    var key = "secrets-" + Array.IndexOf(s_pans, pan).ToString(System.Globalization.CultureInfo.InvariantCulture);
                    using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(pan == TestCards.TimesOut ? 1 : 30));
                    try
                    {
                        using var first = await authorizer.AuthorizeAsync(request, key, wait.Token);
                    }
                    catch (OperationCanceledException) when (pan == TestCards.TimesOut)
                    {
                        // The time-out card: the caller gives up.
                    }

                    using var retry = await authorizer.AuthorizeAsync(request, key);
                    if (retry.IsSuccessStatusCode && (await TestAuthorizer.ReadAsync<Protocol.Messages.CreditAuthorization>(retry)) is { Status: Protocol.Messages.AuthorizationStatus.Approved } approved)
                    {
                        using var capture = await authorizer.CaptureAsync(approved.Id, "1.00 EUR");
                    }
                }

                using var wrongPin = await authorizer.AuthorizeAsync(TestAuthorizer.Request(await authorizer.EncryptCardAsync(TestCards.Approves, pin: "9999")), "secrets-pin");
                using var expired = await authorizer.AuthorizeAsync(TestAuthorizer.Request(await authorizer.EncryptCardAsync(TestCards.Approves, expiry: "01/20")), "secrets-expired");
            }

            SqliteConnection.ClearAllPools();
            AssertPrivate(directory);
            Assert.Equal(9, await AssertNoCardDataAsync(directory)); // 8 authorizations, and the fail-once card's first attempt
            var lines = logs.Entries.Select(e => e.Message).Concat(TestAuthorizer.SuiteLogs.Entries.Select(e => e.Message)).ToList();
            Assert.Contains(lines, line => line.Contains("card ending 4242", StringComparison.Ordinal));
            Assert.All(lines, AssertNoCardData);
        }
        finally
        {
            TestAuthorizer.DeleteDirectory(directory);
        }
    }

    internal static void AssertNoCardData(string text)
    {
        foreach (var pan in s_pans)
        {
            Assert.DoesNotContain(pan, text, StringComparison.Ordinal);
        }

        foreach (var pin in new[] { TestCards.Pin, "9999" })
        {
            Assert.DoesNotMatch(new Regex($"(?<![0-9A-Za-z]){pin}(?![0-9A-Za-z])"), text);
        }
    }

    /// <summary>No file of the data directory holds a card number, and no row of its database a card number or PIN; the number of rows.</summary>
    internal static async Task<int> AssertNoCardDataAsync(string directory)
    {
        var files = Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories).ToList();
        Assert.Contains(files, f => f.EndsWith(AuthorizationDatabase.FileName, StringComparison.Ordinal));
        foreach (var file in files)
        {
            var bytes = File.ReadAllBytes(file);
            foreach (var pan in s_pans)
            {
                Assert.True(bytes.AsSpan().IndexOf(Encoding.ASCII.GetBytes(pan)) < 0, $"{file} holds a card number");
                Assert.True(bytes.AsSpan().IndexOf(Encoding.Unicode.GetBytes(pan)) < 0, $"{file} holds a card number (UTF-16)");
            }
        }

        var rows = await RowsAsync(Path.Combine(directory, AuthorizationDatabase.FileName));
        Assert.All(rows, AssertNoCardData);
        return rows.Count;
    }

    /// <summary>0700 directories, 0600 files, beneath the data directory and itself.</summary>
    internal static void AssertPrivate(string directory)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        Assert.Equal(PrivateFiles.OwnerOnlyDirectory, File.GetUnixFileMode(directory));
        foreach (var sub in Directory.EnumerateDirectories(directory, "*", SearchOption.AllDirectories))
        {
            Assert.Equal(PrivateFiles.OwnerOnlyDirectory, File.GetUnixFileMode(sub));
        }

        foreach (var file in Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories))
        {
            Assert.True(File.GetUnixFileMode(file) == PrivateFiles.OwnerOnlyFile, $"{file} is {File.GetUnixFileMode(file)}");
        }

        Assert.True(File.Exists(Path.Combine(directory, CardKeys.DirectoryName, CardKeys.EncryptionKeyFile)));
        Assert.True(File.Exists(Path.Combine(directory, CardKeys.DirectoryName, CardKeys.TokenKeyFile)));
    }

    /// <summary>Every row of every table, its values joined as text.</summary>
    private static async Task<List<string>> RowsAsync(string database)
    {
        var rows = new List<string>();
        await using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = database, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
        await connection.OpenAsync();
        var tables = new List<string>();
        await using (var list = connection.CreateCommand())
        {
            list.CommandText = "SELECT name FROM sqlite_master WHERE type = 'table';";
            await using var reader = await list.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                tables.Add(reader.GetString(0));
            }
        }

        foreach (var table in tables)
        {
            await using var select = connection.CreateCommand();
            select.CommandText = $"SELECT * FROM \"{table}\";";
            await using var reader = await select.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                rows.Add(string.Join(" | ", Enumerable.Range(0, reader.FieldCount).Select(i => reader.IsDBNull(i) ? "" : reader.GetValue(i) is byte[] blob ? Convert.ToHexString(blob) : Convert.ToString(reader.GetValue(i), System.Globalization.CultureInfo.InvariantCulture))));
            }
        }

        return rows;
    }
}
