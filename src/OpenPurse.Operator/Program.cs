using OpenPurse.CommandLine;
using OpenPurse.Operator;

// openpurse-operator: `serve` runs a node; the other commands run once on a node's configuration
// and exit. Nothing starts before the command line is understood.
return await CommandLines.InvokeAsync(OperatorCommandLine.Build(), args, Console.Out, Console.Error, cancelOnInterrupt: false);
