using Microsoft.Extensions.Configuration;
using OpenPurse.Operator;
using OpenPurse.Operator.Security;

// openpurse-operator: one operator node. Configuration: appsettings.json, then environment
// variables (OpenPurse__Operator__DataDirectory, …), then the command line.
var configuration = new ConfigurationBuilder()
    .SetBasePath(AppContext.BaseDirectory)
    .AddJsonFile("appsettings.json", optional: true)
    .AddEnvironmentVariables()
    .AddCommandLine(args)
    .Build();
var options = configuration.GetSection("OpenPurse:Operator").Get<OperatorOptions>()
    ?? new OperatorOptions { DataDirectory = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "openpurse", "operator") };
try
{
    var app = await OperatorHost.BuildAsync(options, args);
    await app.RunAsync();
    return 0;
}
catch (KeyVaultException e)
{
    await Console.Error.WriteLineAsync("openpurse-operator: " + e.Message);
    return 2;
}
