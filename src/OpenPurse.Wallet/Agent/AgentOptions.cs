using System.Security.Cryptography.X509Certificates;

namespace OpenPurse.Wallet.Agent;

/// <summary>How the wallet agent (<c>openpurse agent</c>) runs: whom it settles with, whom it answers, where it listens.</summary>
public sealed class AgentOptions
{
    /// <summary>Where the agent listens unless told otherwise: loopback, a port of its own.</summary>
    public const string DefaultUrl = "http://127.0.0.1:5099";

    /// <summary>The operator it settles with: the keys that check every signature come from it, and top-ups go to it.</summary>
    public required Uri OperatorUrl { get; init; }

    /// <summary>
    /// The origins (<c>scheme://host[:port]</c>) whose pages may use the API; more can be added while
    /// the agent runs (<see cref="RunningAgent.Allow"/>). Top-ups are taken only from the operator's origin.
    /// </summary>
    public IReadOnlyList<string> AllowedOrigins { get; init; } = [];

    /// <summary>The one loopback http URL it listens on; port 0 picks a free port.</summary>
    public string Urls { get; init; } = DefaultUrl;

    /// <summary>How long an approval waits for the person; after that the payment or top-up is declined and nothing is written.</summary>
    public TimeSpan ApprovalLifetime { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>The deployment's CA certificates, trusted besides the system's for the operator and the stores.</summary>
    public X509Certificate2Collection? TrustedRoots { get; init; }

    /// <summary>The HTTP stack towards the operator and the stores; null for the real one (tests give their own).</summary>
    internal HttpMessageHandler? HttpHandler { get; init; }

    /// <summary>The clock of approvals and bills; the system's unless a test says otherwise.</summary>
    internal TimeProvider Time { get; init; } = TimeProvider.System;
}
