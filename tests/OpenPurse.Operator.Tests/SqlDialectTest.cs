using Npgsql;
using OpenPurse.Operator.Registry;

namespace OpenPurse.Operator.Tests;

/// <summary>What the dialects spell differently, checked without a server.</summary>
public sealed class SqlDialectTest
{
    [Fact]
    public void Translate_Tokens_SpelledPerEngine()
    {
        const string Sql = "CREATE TABLE t (a {int64} NOT NULL, b {blob} NULL)";

        Assert.Equal("CREATE TABLE t (a INTEGER NOT NULL, b BLOB NULL)", SqlDialect.Sqlite.Translate(Sql));
        Assert.Equal("CREATE TABLE t (a BIGINT NOT NULL, b BYTEA NULL)", SqlDialect.PostgreSql.Translate(Sql));
    }

    [Fact]
    public void Translate_UnknownToken_Throws()
    {
        var error = Assert.Throws<InvalidOperationException>(() => SqlDialect.PostgreSql.Translate("SELECT {greatest}(a, b)"));

        Assert.Contains("{greatest}", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Translate_EveryMigration_LeavesNoTokenOnEitherEngine()
    {
        foreach (var dialect in new[] { SqlDialect.Sqlite, SqlDialect.PostgreSql })
        {
            var migrations = Database.Migrations(dialect).ToArray();
            Assert.NotEmpty(migrations);
            Assert.All(migrations, migration => Assert.DoesNotContain('{', dialect.Translate(migration.Sql)));
        }
    }

    [Fact]
    public void Migrations_EngineParts_OnlyOnTheirEngine_AfterTheSharedPart()
    {
        var sqlite = Database.Migrations(SqlDialect.Sqlite).Single(m => m.Name == "0003_admin_audit").Sql;
        var postgresql = Database.Migrations(SqlDialect.PostgreSql).Single(m => m.Name == "0003_admin_audit").Sql;

        Assert.Contains("RAISE(ABORT", sqlite, StringComparison.Ordinal);
        Assert.DoesNotContain("plpgsql", sqlite, StringComparison.Ordinal);
        Assert.Contains("plpgsql", postgresql, StringComparison.Ordinal);
        Assert.DoesNotContain("RAISE(ABORT", postgresql, StringComparison.Ordinal);
        Assert.True(sqlite.IndexOf("CREATE TABLE admin_audit", StringComparison.Ordinal) < sqlite.IndexOf("CREATE TRIGGER", StringComparison.Ordinal));
    }

    [Fact]
    public void Configure_PostgreSqlConnectionStringAsksForAsynchronousCommit_SynchronousCommitComesLast()
    {
        var configured = new NpgsqlConnectionStringBuilder(SqlDialect.PostgreSql.Configure("Host=db;Database=openpurse;Options=-c synchronous_commit=off"));

        Assert.EndsWith("-c synchronous_commit=on", configured.Options, StringComparison.Ordinal);
        Assert.StartsWith("-c synchronous_commit=off", configured.Options, StringComparison.Ordinal);
        Assert.Equal("openpurse-operator", configured.ApplicationName);
    }

    [Fact]
    public void Configure_SeveralHosts_OnlyThePrimaryIsAsked()
    {
        var configured = new NpgsqlConnectionStringBuilder(SqlDialect.PostgreSql.Configure("Host=db1:5432,db2:5432,db3:5432;Database=openpurse"));
        var single = new NpgsqlConnectionStringBuilder(SqlDialect.PostgreSql.Configure("Host=db1;Database=openpurse"));

        Assert.Equal("primary", configured.TargetSessionAttributes);
        Assert.Equal("read-write", new NpgsqlConnectionStringBuilder(SqlDialect.PostgreSql.Configure("Host=db1,db2;Target Session Attributes=read-write")).TargetSessionAttributes);
        Assert.Null(single.TargetSessionAttributes);
    }

    [Theory]
    [InlineData("any")]
    [InlineData("standby")]
    [InlineData("prefer-standby")]
    public void Configure_SeveralHostsThatMayBeStandbys_Refused(string attributes)
    {
        var error = Assert.Throws<InvalidOperationException>(() => SqlDialect.PostgreSql.Configure($"Host=db1,db2;Target Session Attributes={attributes}"));

        Assert.Contains("Target Session Attributes=primary", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_PostgreSqlWithoutConnectionString_Throws()
    {
        var options = new OperatorOptions { DataDirectory = "unused", DatabaseProvider = "postgresql" };

        var error = Assert.Throws<InvalidOperationException>(() => Database.Open(options, "unused"));

        Assert.Contains("ConnectionString", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_UnknownProvider_Throws()
    {
        var options = new OperatorOptions { DataDirectory = "unused", DatabaseProvider = "mysql" };

        Assert.Throws<InvalidOperationException>(() => Database.Open(options, "unused"));
    }
}
