using Microsoft.Extensions.Configuration;
using OpenPurse.Operator;
using OpenPurse.Operator.Security;

// openpurse-operator tls init --out <dir> …: the deployment's CA and server certificates, then exit.
if (args is ["tls", ..])
{
    return OpenPurse.Operator.Tls.TlsCommand.Run(args[1..], Console.Out, Console.Error);
}

// openpurse-operator: one operator node. Configuration: appsettings.json, then environment
// variables (OpenPurse__Operator__DataDirectory, …), then the command line.
var configuration = new ConfigurationBuilder()
    .SetBasePath(AppContext.BaseDirectory)
    .AddJsonFile("appsettings.json", optional: true)
    .AddEnvironmentVariables()
    .AddCommandLine(args)
    .Build();
var options = configuration.GetSection("OpenPurse:Operator").Get<OperatorOptions>()
    ?? new OperatorOptions { DataDirectory = "" };
if (string.IsNullOrEmpty(options.DataDirectory))
{
    // The shipped appsettings.json spells out every default but this one, which is per user.
    options = options with { DataDirectory = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "openpurse", "operator") };
}

try
{
    // openpurse-operator vault init: create the configured vault's keys where absent, then exit.
    if (args is ["vault", "init", ..])
    {
        Console.WriteLine(KeyVaults.Initialize(options, OpenPurse.Storage.PrivateFiles.CreateDirectory(options.DataDirectory)));
        return 0;
    }

    // openpurse-operator card issue --out FILE [--load AMOUNT]: a new emulated card, personalized and loaded.
    if (args is ["card", "issue", .. var issueArgs])
    {
        return await StationCommands.IssueCardAsync(options, issueArgs, Console.Out, Console.Error);
    }

    // openpurse-operator reconcile: the ledger's invariants, every difference listed; exit 1 when there is one.
    if (args is ["reconcile", ..])
    {
        var station = await OperatorHost.BuildAsync(options with { CreateVaultIfMissing = false });
        await using (station)
        {
            using var vault = station.Services.GetService(typeof(ISecurityModule)) as IDisposable;
            return await ReconcileCommand.RunAsync(station.Services, Console.Out, CancellationToken.None);
        }
    }

    // openpurse-operator store register FILE: the stores of a registration file (openpurse-store registration).
    if (args is ["store", "register", .. var registerArgs])
    {
        return await StationCommands.RegisterStoresAsync(options, registerArgs, Console.Out, Console.Error);
    }

    var app = await OperatorHost.BuildAsync(options, args);
    await app.RunAsync();
    return 0;
}
catch (Exception e) when (e is KeyVaultException or InvalidOperationException or IOException or Net.Pkcs11Interop.Common.Pkcs11Exception)
{
    // A configuration the node cannot start with (keys, certificates, database): one line, no stack trace.
    await Console.Error.WriteLineAsync("openpurse-operator: " + e.Message);
    return 2;
}
