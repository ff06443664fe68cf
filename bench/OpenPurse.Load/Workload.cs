namespace OpenPurse.Load;

/// <summary>
/// What the wallets do, and in which shares: purchases only, or purchases mixed with other kinds
/// of operation (top-ups, refunds). Another kind is one more entry here, one more case in
/// <see cref="CardWallet.RunAsync"/>, and what the ledger check expects of it.
/// </summary>
/// <param name="Kinds">Each kind's name and its share of the operations; the shares add up to 1.</param>
internal sealed record Workload(IReadOnlyList<(string Kind, double Share)> Kinds)
{
    /// <summary>A whole purchase: catalog to download.</summary>
    public const string Purchase = "purchase";

    /// <summary>A top-up by credit card: the authorizer's key to the operator's capture.</summary>
    public const string TopUp = "topup";

    /// <summary>
    /// A store owner's refund of part of an order the card paid earlier (the store's admin API),
    /// then the card's sync that takes it as a CREDIT.
    /// </summary>
    public const string Refund = "refund";

    /// <summary>Purchases only, as every run before the mixed workload.</summary>
    public static Workload Purchases { get; } = new([(Purchase, 1.0)]);

    public bool Has(string kind) => Kinds.Any(k => k.Kind == kind && k.Share > 0);

    /// <summary>Purchases, top-ups for <paramref name="topUpShare"/> of the operations and refunds for <paramref name="refundShare"/>.</summary>
    public static Workload Mixed(double topUpShare, double refundShare = 0) =>
        topUpShare <= 0 && refundShare <= 0
            ? Purchases
            : new([(Purchase, 1 - Math.Max(topUpShare, 0) - Math.Max(refundShare, 0)), .. Share(TopUp, topUpShare), .. Share(Refund, refundShare)]);

    /// <summary>The name of one part of a kind's operation, timed on its own (a refund's request and its sync).</summary>
    public static string Part(string kind, string part) => $"{kind}: {part}";

    /// <summary>Whether a latency's name is a kind of this workload or one of its parts, not an HTTP call.</summary>
    public bool Names(string name) => Kinds.Any(k => name == k.Kind || name.StartsWith(k.Kind + ": ", StringComparison.Ordinal));

    private static (string, double)[] Share(string kind, double share) => share > 0 ? [(kind, share)] : [];

    /// <summary>One wallet's sequence of kinds: exact shares, spread evenly, the same on every run.</summary>
    /// <param name="phase">
    /// Where in the sequence the wallet starts (its index): wallets that start together and run at
    /// the same pace would otherwise all run the same kind at once, and a short measured phase could
    /// see none of a kind.
    /// </param>
    public Mix Start(int phase)
    {
        var mix = new Mix(this);
        for (var i = 0; i < phase % 1000; i++)
        {
            mix.Next();
        }

        return mix;
    }

    /// <summary>Smooth weighted round-robin: each operation goes to the kind most behind its share.</summary>
    internal sealed class Mix(Workload workload)
    {
        private readonly double[] _credit = new double[workload.Kinds.Count];

        public string Next()
        {
            var best = 0;
            for (var i = 0; i < _credit.Length; i++)
            {
                _credit[i] += workload.Kinds[i].Share;
                if (_credit[i] > _credit[best])
                {
                    best = i;
                }
            }

            _credit[best] -= 1;
            return workload.Kinds[best].Kind;
        }
    }
}
