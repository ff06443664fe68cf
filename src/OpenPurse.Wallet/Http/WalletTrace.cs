using System.Diagnostics;

namespace OpenPurse.Wallet.Http;

/// <summary>
/// One trace per wallet command: every HTTP call the command makes, to the store and to the
/// operator, carries the command's W3C <c>traceparent</c>, and the servers continue that trace
/// (their own calls to each other too), so one purchase is one trace end to end.
/// </summary>
internal static class WalletTrace
{
    /// <summary>The wallet's activity source.</summary>
    public const string SourceName = "OpenPurse.Wallet";

    private static readonly ActivitySource s_source = new(SourceName);

    /// <summary>Starts the command's activity; dispose it when the command ends.</summary>
    /// <param name="command">The command, e.g. <c>pay</c>.</param>
    public static Activity Start(string command)
    {
        var name = "wallet " + command;
        if (s_source.StartActivity(name, ActivityKind.Client) is { } listened)
        {
            return listened;
        }

        // Nobody in the process listens (the wallet exports nothing itself): an activity all the
        // same, so that the calls carry its trace id, marked sampled so that servers sampling by
        // their caller's decision (OpenTelemetry's default) trace the command as well.
        var activity = new Activity(name) { ActivityTraceFlags = ActivityTraceFlags.Recorded };
        activity.SetIdFormat(ActivityIdFormat.W3C);
        return activity.Start();
    }
}
