using System.Diagnostics.Tracing;
using Microsoft.Diagnostics.NETCore.Client;
using Microsoft.Diagnostics.Tracing;
using Microsoft.Diagnostics.Tracing.Parsers;

namespace OpenPurse.Load;

/// <summary>
/// A server's managed heap right after a full, blocking collection, read over the runtime's
/// diagnostic port: an EventPipe session with the GC heap-collect keyword makes the runtime
/// collect at once, and its GCHeapStats event reports the heap it kept. Unlike the resident set,
/// that is what the process still holds, not what the collector let grow.
/// </summary>
internal static class LiveHeap
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(30);

    public static async Task<long> AfterFullCollectionAsync(int processId)
    {
        var client = new DiagnosticsClient(processId);
        var keywords = (long)(ClrTraceEventParser.Keywords.GC | ClrTraceEventParser.Keywords.GCHeapCollect);
        using var session = client.StartEventPipeSession([new EventPipeProvider(ClrTraceEventParser.ProviderName, EventLevel.Informational, keywords)], requestRundown: false);
        using var source = new EventPipeEventSource(session.EventStream);
        var heap = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        source.Clr.GCHeapStats += stats => heap.TrySetResult(stats.TotalHeapSize);
        var reading = Task.Run(source.Process);
        try
        {
            return await heap.Task.WaitAsync(s_timeout);
        }
        finally
        {
            await session.StopAsync(CancellationToken.None);
            await reading;
        }
    }
}
