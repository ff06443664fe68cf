using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;

namespace OpenPurse.CommandLine;

/// <summary>
/// How every OpenPurse program reads its command line. <c>--help</c>/<c>-h</c> and <c>--version</c>
/// print and exit 0, as every Unix tool does: they did what was asked. A missing command, an
/// unknown command or option, or a value that does not parse prints what is wrong and the
/// command's usage on stderr and exits 2, before the program starts, listens or writes anything.
/// </summary>
/// <remarks>
/// Exit codes everywhere: 0 ok, 1 the operation failed, 2 bad usage or configuration, 3 reconcile
/// found disputed settlements waiting, 130 cancelled. Each command lists its own in its help.
/// </remarks>
internal static class CommandLines
{
    public const int ExitOk = 0;
    public const int ExitFailed = 1;
    public const int ExitUsage = 2;
    public const int ExitCancelled = 130;

    private const string NoCommand = "Say which command to run.";

    private static readonly ConditionalWeakTable<Command, string[]> s_exitCodes = [];

    // No response files: "@name" is an argument like any other, never a file the parser reads.
    private static readonly ParserConfiguration s_parser = new() { ResponseFileTokenReplacer = null };

    /// <summary>The exit codes the command's help lists, one line each ("0 ok", "1 …").</summary>
    public static TCommand WithExitCodes<TCommand>(this TCommand command, params string[] codes)
        where TCommand : Command
    {
        ArgumentNullException.ThrowIfNull(command);
        s_exitCodes.AddOrUpdate(command, codes);
        return command;
    }

    /// <summary>
    /// Lets the command take configuration overrides in the form
    /// <c>--Section:Key=value</c> or <c>--Section:Key value</c> (an option name with a ':'), read by
    /// <see cref="ConfigurationOverrides"/>; any other unknown token is still bad usage.
    /// </summary>
    public static TCommand WithConfigurationOverrides<TCommand>(this TCommand command)
        where TCommand : Command
    {
        ArgumentNullException.ThrowIfNull(command);
        command.TreatUnmatchedTokensAsErrors = false;
        return command;
    }

    /// <summary>The configuration overrides given to a command made with <see cref="WithConfigurationOverrides"/>, for AddCommandLine.</summary>
    public static string[] ConfigurationOverrides(this ParseResult parse)
    {
        ArgumentNullException.ThrowIfNull(parse);
        return [.. parse.UnmatchedTokens];
    }

    /// <summary>Parses <paramref name="args"/> and runs the command they name, or says why not.</summary>
    /// <param name="root">The program's commands.</param>
    /// <param name="args">The command line.</param>
    /// <param name="output">Where help, version and the commands' output go.</param>
    /// <param name="error">Where bad usage is told.</param>
    /// <param name="cancelOnInterrupt">
    /// True: Ctrl-C (SIGINT) or SIGTERM cancels the token the command gets. False for the servers,
    /// whose host stops them gracefully on those signals itself.
    /// </param>
    /// <param name="cancellationToken">Cancels the command.</param>
    /// <returns>The command's exit code, 0 for help and version, <see cref="ExitUsage"/> for bad usage.</returns>
    public static async Task<int> InvokeAsync(RootCommand root, IReadOnlyList<string> args, TextWriter output, TextWriter error, bool cancelOnInterrupt = true, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(root);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        var help = root.Options.OfType<HelpOption>().Single();
        var helpAction = new HelpAction();
        help.Action = new HelpWithExitCodes(helpAction);

        var parse = root.Parse(args, s_parser);
        var invocation = new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false };
        if (!cancelOnInterrupt)
        {
            invocation.ProcessTerminationTimeout = null;
        }

        if (parse.Action is { ClearsParseErrors: true })
        {
            // --help or --version: whatever else the line holds, they answer and nothing runs.
            return await parse.InvokeAsync(invocation, cancellationToken).ConfigureAwait(false);
        }

        var problems = parse.Errors.Select(e => Explain(e.Message)).Distinct(StringComparer.Ordinal).ToList();
        if (problems.Count > 1)
        {
            // "Say which command" goes without saying beside what was said instead.
            problems.Remove(NoCommand);
        }

        // The parser takes an unknown option for a command's argument (a file name, say): it is a misspelling.
        problems.AddRange(parse.CommandResult.Children.OfType<ArgumentResult>()
            .SelectMany(argument => argument.Tokens)
            .Where(token => token.Value.Length > 1 && token.Value[0] == '-')
            .Select(token => $"'{token.Value}' is not an option here."));
        if (!parse.CommandResult.Command.TreatUnmatchedTokensAsErrors)
        {
            problems.AddRange(OverrideProblems(parse));
        }

        if (problems.Count == 0)
        {
            return await parse.InvokeAsync(invocation, cancellationToken).ConfigureAwait(false);
        }

        foreach (var problem in problems)
        {
            await error.WriteLineAsync($"{root.Name}: {problem}").ConfigureAwait(false);
        }

        await error.WriteLineAsync().ConfigureAwait(false);
        // The usage of the command that was meant, with its exit codes, as --help shows it, on stderr.
        var usage = root.Parse([.. CommandPath(parse.CommandResult.Command), "--help"], s_parser);
        await usage.InvokeAsync(new InvocationConfiguration { Output = error, Error = error }, cancellationToken).ConfigureAwait(false);
        return ExitUsage;
    }

    /// <summary>A parse error in the person's words: what the option takes, never a .NET type name.</summary>
    internal static string Explain(string message)
    {
        var parse = Regex.Match(message, @"^Cannot parse argument '(?<value>.*)' for (option|command|argument) '(?<name>[^']*)' as expected type '(?<type>[^']*)'\.$", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
        if (parse.Success)
        {
            return $"{parse.Groups["name"].Value} must be {Kind(parse.Groups["type"].Value)}, not '{parse.Groups["value"].Value}'.";
        }

        var unknown = Regex.Match(message, @"^Unrecognized command or argument '(?<token>.*)'\.$", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
        if (unknown.Success)
        {
            return $"'{unknown.Groups["token"].Value}' is not a command or option here.";
        }

        return message switch
        {
            "Required command was not provided." => NoCommand,
            _ => Regex.Replace(message, @"System\.[A-Za-z0-9_.`\[\]]+", m => Kind(m.Value), RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)),
        };
    }

    // Whatever a command with configuration overrides did not recognize must be one.
    private static IEnumerable<string> OverrideProblems(ParseResult parse)
    {
        var tokens = parse.UnmatchedTokens;
        for (var i = 0; i < tokens.Count; i++)
        {
            var token = tokens[i];
            var equals = token.IndexOf('=', StringComparison.Ordinal);
            var name = equals < 0 ? token : token[..equals];
            if (!name.StartsWith("--", StringComparison.Ordinal) || !name.Contains(':', StringComparison.Ordinal) || name.Length < 5)
            {
                yield return $"'{token}' is not a command or option here (configuration overrides read --Section:Key=value).";
            }
            else if (equals < 0)
            {
                if (i + 1 >= tokens.Count || tokens[i + 1].StartsWith("--", StringComparison.Ordinal))
                {
                    yield return $"{token} needs a value (--Section:Key=value or --Section:Key value).";
                }
                else
                {
                    i++;
                }
            }
        }
    }

    private static string Kind(string type) => type switch
    {
        "System.Int32" or "System.Int64" or "System.Int16" or "System.Byte" or "System.UInt32" or "System.UInt64" or "System.UInt16"
            or "System.Nullable`1[System.Int32]" or "System.Nullable`1[System.Int64]" => "a whole number",
        "System.Double" or "System.Decimal" or "System.Single" or "System.Nullable`1[System.Double]" => "a number",
        "System.Boolean" => "true or false",
        _ => "a value of the right kind",
    };

    // The names after the program's that lead to the command.
    private static Stack<string> CommandPath(Command command)
    {
        var path = new Stack<string>();
        for (var current = command; current is not RootCommand && current is not null; current = current.Parents.OfType<Command>().FirstOrDefault())
        {
            path.Push(current.Name);
        }

        return path;
    }

    // A command's own exit codes, else those of the nearest command above it that lists them.
    private static string[]? ExitCodes(Command command)
    {
        for (var current = command; current is not null; current = current.Parents.OfType<Command>().FirstOrDefault())
        {
            if (s_exitCodes.TryGetValue(current, out var codes))
            {
                return codes;
            }
        }

        return null;
    }

    /// <summary>The standard help, then the command's exit codes.</summary>
    private sealed class HelpWithExitCodes(HelpAction help) : SynchronousCommandLineAction
    {
        public override bool ClearsParseErrors => true;

        public override int Invoke(ParseResult parseResult)
        {
            var output = parseResult.InvocationConfiguration.Output;
            using var text = new StringWriter();
            parseResult.InvocationConfiguration.Output = text;
            int exit;
            try
            {
                exit = help.Invoke(parseResult);
            }
            finally
            {
                parseResult.InvocationConfiguration.Output = output;
            }

            // The unmatched tokens a command takes are configuration overrides: say so, instead of
            // the parser's words for arguments passed on to another program.
            output.Write(text.ToString()
                .Replace("[[--] <additional arguments>...]]", "[--Section:Key=value ...]", StringComparison.Ordinal)
                .Replace("Additional Arguments:", "Configuration overrides:", StringComparison.Ordinal)
                .Replace("Arguments passed to the application that is being run.", "--Section:Key=value or --Section:Key value, after appsettings.json and the environment.", StringComparison.Ordinal));
            if (ExitCodes(parseResult.CommandResult.Command) is { Length: > 0 } codes)
            {
                output.WriteLine("Exit codes:");
                foreach (var code in codes)
                {
                    output.WriteLine("  " + code);
                }

                output.WriteLine();
            }

            return exit;
        }
    }
}
