using System.Globalization;
using System.Text;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;

namespace OpenPurse.Hosting;

/// <summary>
/// The servers' console log: one line per entry, <c>time level category[event] message</c>, then
/// the exception if there is one. Every control character of the message and the exception (CR,
/// LF, ESC, …) is written escaped (<c>\r</c>, <c>\n</c>, <c>\u001b</c>), so that a value a
/// client sent, a path holding <c>%0D%0A</c> say, can never start a line of its own or move the
/// terminal's cursor: each line of the log is one entry the server wrote.
/// </summary>
internal sealed class OneLineConsoleFormatter() : ConsoleFormatter(Name)
{
    /// <summary>The formatter's name in the console logger's options.</summary>
    public new const string Name = "openpurse";

    /// <summary>The standard setting that names the console's formatter (<c>json</c>, <c>simple</c>, <c>systemd</c>, or this one's).</summary>
    public const string FormatterNameSetting = "Logging:Console:FormatterName";

    /// <summary>
    /// Writes every console log entry of the application with this formatter, unless the
    /// configuration names another (<c>Logging:Console:FormatterName=json</c>: one JSON object a line).
    /// </summary>
    public static ILoggingBuilder AddTo(ILoggingBuilder logging)
    {
        ArgumentNullException.ThrowIfNull(logging);
        logging.AddConsole();
        logging.AddConsoleFormatter<OneLineConsoleFormatter, ConsoleFormatterOptions>();
        // After every other configuration, since the slim web builder names "simple" after the
        // configuration is bound: the formatter the configuration names, else this one.
        logging.Services.AddOptions<ConsoleLoggerOptions>().PostConfigure<IConfiguration>((console, configuration) =>
            console.FormatterName = configuration[FormatterNameSetting] is { Length: > 0 } named ? named : Name);
        return logging;
    }

    public override void Write<TState>(in LogEntry<TState> logEntry, IExternalScopeProvider? scopeProvider, TextWriter textWriter)
    {
        ArgumentNullException.ThrowIfNull(textWriter);
        var message = logEntry.Formatter?.Invoke(logEntry.State, logEntry.Exception);
        if (message is null && logEntry.Exception is null)
        {
            return;
        }

        var line = new StringBuilder(128);
        line.Append(DateTimeOffset.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture))
            .Append(' ').Append(LevelOf(logEntry.LogLevel))
            .Append(' ');
        AppendEscaped(line, logEntry.Category);
        line.Append('[').Append(logEntry.EventId.Id.ToString(CultureInfo.InvariantCulture)).Append("] ");
        AppendEscaped(line, message);
        if (logEntry.Exception is { } exception)
        {
            line.Append(" | ");
            AppendEscaped(line, exception.ToString());
        }

        line.Append('\n');
        textWriter.Write(line);
    }

    /// <summary>Appends the text with every control character (C0, DEL, C1, line and paragraph separators) escaped, and backslashes doubled.</summary>
    internal static void AppendEscaped(StringBuilder line, string? text)
    {
        foreach (var c in text ?? "")
        {
            switch (c)
            {
                case '\\':
                    line.Append(@"\\");
                    break;
                case '\r':
                    line.Append(@"\r");
                    break;
                case '\n':
                    line.Append(@"\n");
                    break;
                case '\t':
                    line.Append(@"\t");
                    break;
                default:
                    if (char.IsControl(c) || c is '\u2028' or '\u2029' or '\u0085')
                    {
                        line.Append(@"\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        line.Append(c);
                    }

                    break;
            }
        }
    }

    private static string LevelOf(LogLevel level) => level switch
    {
        LogLevel.Trace => "trce",
        LogLevel.Debug => "dbug",
        LogLevel.Information => "info",
        LogLevel.Warning => "warn",
        LogLevel.Error => "fail",
        LogLevel.Critical => "crit",
        _ => "none",
    };
}
