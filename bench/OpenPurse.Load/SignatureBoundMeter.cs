using System.Diagnostics;
using System.Security.Cryptography;
using OpenPurse.Card;
using OpenPurse.Operator.Security;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;

namespace OpenPurse.Load;

/// <summary>
/// Measures the signature bound: how many purchases per second this machine could settle if the
/// signature and MAC work of a purchase were all there was to do, every core doing it.
/// </summary>
/// <remarks>
/// <para>One purchase's work, as docs/protocol.md counts it (§ Counts), every party's:</para>
/// <list type="bullet">
/// <item>ES256 signs: the bill SIG1 and receipt SIG4 (store), the settlement information SIG2 (signed profile only) and the ACN SIG3 (operator).</item>
/// <item>ES256 verifies: SIG1 by operator, wallet and store (at the download); SIG2 by the wallet; SIG3 by store and wallet; SIG4 by operator and wallet.</item>
/// <item>The card session: the operator's security module opens it twice (round trip 1, and again
/// from the stored greeting in round trip 2), each time diversifying the card's keys from the
/// master (AN10922) and deriving the SCP03 session keys; it makes EXTERNAL AUTHENTICATE and the
/// secured DEBIT, and opens the card's encrypted, R-MACed log record. The card, emulated on a
/// memory stream, answers SELECT, INITIALIZE UPDATE, EXTERNAL AUTHENTICATE and DEBIT; its commit
/// (an image and its SHA-256, no disk flush) is the only work in it that is neither MAC nor cipher.</item>
/// </list>
/// <para>Payloads are 300 bytes, about what the real messages are; ES256 hashes them in well under a
/// microsecond, so their exact size does not move the bound.</para>
/// </remarks>
internal static class SignatureBoundMeter
{
    // Long enough for the tiered JIT to finish with the work: at 0.5 s a fresh process measured
    // 870–990 purchases/s where the same work, hot, gave 1 300–1 540.
    private static readonly TimeSpan s_warmup = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan s_measured = TimeSpan.FromSeconds(2);
    private const int SingleCoreSamples = 400;

    public static SignatureBound Measure(SettlementProfile profile)
    {
        // One core: the median of single purchases' work.
        using (var work = new PurchaseWork(profile))
        {
            RunFor(work, s_warmup);
            var samples = new double[SingleCoreSamples];
            for (var i = 0; i < samples.Length; i++)
            {
                var started = Stopwatch.GetTimestamp();
                work.Run();
                samples[i] = Stopwatch.GetElapsedTime(started).TotalMicroseconds;
            }

            Array.Sort(samples);
            var median = samples[samples.Length / 2];

            // All cores at once: what they complete together, measured, not multiplied out.
            var cores = Environment.ProcessorCount;
            var works = Enumerable.Range(0, cores).Select(_ => new PurchaseWork(profile)).ToArray();
            try
            {
                var counts = new long[cores];
                using var go = new Barrier(cores + 1);
                var threads = works.Select((w, i) => new Thread(() =>
                {
                    RunFor(w, s_warmup);
                    go.SignalAndWait();
                    counts[i] = RunFor(w, s_measured);
                })).ToArray();
                foreach (var thread in threads)
                {
                    thread.Start();
                }

                go.SignalAndWait();
                var started = Stopwatch.GetTimestamp();
                foreach (var thread in threads)
                {
                    thread.Join();
                }

                var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
                return new SignatureBound(work.Signs, work.Verifies, PurchaseWork.OperatorSessions, Math.Round(median, 1), Math.Round(counts.Sum() / seconds, 1));
            }
            finally
            {
                foreach (var w in works)
                {
                    w.Dispose();
                }
            }
        }
    }

    private static long RunFor(PurchaseWork work, TimeSpan duration)
    {
        var end = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        long count = 0;
        while (Stopwatch.GetTimestamp() < end)
        {
            work.Run();
            count++;
        }

        return count;
    }

    /// <summary>One thread's keys, card and messages, and one purchase's cryptography over them.</summary>
    private sealed class PurchaseWork : IDisposable
    {
        public const int OperatorSessions = 2;

        private static readonly Money s_price = new(1, Currency.Eur);

        private readonly SettlementProfile _profile;
        private readonly SoftwareKeyVault _vault;
        private readonly EcdsaSigningKey _storeKey;
        private readonly JsonWebKeySet _storeKeys;
        private readonly JsonWebKeySet _operatorKeys;
        private readonly EmulatedCard _card;
        private readonly CardId _cardId = CardId.FromSerial(100_000_000_000_000UL + (ulong)RandomNumberGenerator.GetInt32(int.MaxValue));
        private readonly byte[] _payload = RandomNumberGenerator.GetBytes(300);
        private readonly byte[] _billDigest = RandomNumberGenerator.GetBytes(32);
        private readonly byte[] _hostChallenge = RandomNumberGenerator.GetBytes(8);

        public PurchaseWork(SettlementProfile profile)
        {
            _profile = profile;
            _vault = SoftwareKeyVault.FromKeys(RandomNumberGenerator.GetBytes(16), ECDsa.Create(ECCurve.NamedCurves.nistP256));
            _storeKey = EcdsaSigningKey.Generate("store-key");
            _storeKeys = new JsonWebKeySet([_storeKey.PublicKey]);
            _operatorKeys = new JsonWebKeySet([_vault.OperatorKey.PublicKey]);
            var keys = _vault.IssueCardKeys(_cardId);
            _card = EmulatedCard.Create(new MemoryStream(), new CardPersonalization(_cardId, keys.KeyVersion, keys.EncKey, keys.MacKey, Money.MaxMinorUnits));
            CryptographicOperations.ZeroMemory(keys.EncKey);
            CryptographicOperations.ZeroMemory(keys.MacKey);
            Card(CardHostSession.Select());
            using var load = OpenSession(out var greeting);
            Card(load.ExternalAuthenticate());
            var order = new ValueCommand(Guid.NewGuid(), _billDigest, new Money(Money.MaxMinorUnits, Currency.Eur), greeting.Status.Counter);
            Card(CardHostSession.WithApproval(load.Credit(order), order.ToApproval()));
        }

        public int Signs => _profile == SettlementProfile.Signed ? 4 : 3;

        public int Verifies => _profile == SettlementProfile.Signed ? 8 : 7;

        public void Run()
        {
            // The store's bill, checked by operator, wallet and (at the download) the store.
            var bill = Jws.Sign(_storeKey, _payload, MessageTypes.Bill);
            Verify(bill, _storeKeys, MessageTypes.Bill, 3);

            // Round trip 1: the card's greeting, the operator's session, SIG2 for the wallet.
            Card(CardHostSession.Select());
            using (var session = OpenSession(out var greeting))
            {
                var order = new ValueCommand(Guid.NewGuid(), _billDigest, s_price, greeting.Status.Counter);
                var externalAuthenticate = session.ExternalAuthenticate();
                var debit = session.Debit(order);
                if (_profile == SettlementProfile.Signed)
                {
                    Verify(Jws.Sign(_vault.OperatorKey, _payload, MessageTypes.SettlementInfo), _operatorKeys, MessageTypes.SettlementInfo, 1);
                }

                // The card pays; round trip 2 opens its answer in a session rebuilt from the greeting.
                Card(externalAuthenticate);
                var answer = ResponseApdu.Parse(_card.Transmit(CardHostSession.WithApproval(debit, order.ToApproval()).ToBytes()));
                using var rebuilt = _vault.OpenCardSession(_cardId, _hostChallenge, greeting, out _) ?? throw new InvalidOperationException("The session does not open again.");
                rebuilt.ExternalAuthenticate();
                rebuilt.Debit(order);
                if (!rebuilt.TryUnwrap(answer, out var plain) || !CardLogRecord.TryParse(plain.Data, out _))
                {
                    throw new InvalidOperationException("The card's log record does not open.");
                }
            }

            // The ACN for store and wallet; the receipt for operator and wallet.
            Verify(Jws.Sign(_vault.OperatorKey, _payload, MessageTypes.CompletionNotice), _operatorKeys, MessageTypes.CompletionNotice, 2);
            Verify(Jws.Sign(_storeKey, _payload, MessageTypes.Receipt), _storeKeys, MessageTypes.Receipt, 2);
        }

        public void Dispose()
        {
            _card.Dispose();
            _storeKey.Dispose();
            _vault.Dispose();
        }

        private CardHostSession OpenSession(out CardGreeting greeting)
        {
            var answer = Card(CardHostSession.InitializeUpdate(_hostChallenge, 1));
            if (!CardGreeting.TryParse(answer.Data, out greeting!))
            {
                throw new InvalidOperationException("The card's greeting is malformed.");
            }

            return _vault.OpenCardSession(_cardId, _hostChallenge, greeting, out var error)
                ?? throw new InvalidOperationException($"The card did not authenticate: {error}.");
        }

        private ResponseApdu Card(CommandApdu command)
        {
            var answer = ResponseApdu.Parse(_card.Transmit(command.ToBytes()));
            return answer.IsOk ? answer : throw new InvalidOperationException($"The card answered {(ushort)answer.Status:X4}.");
        }

        private static void Verify(string compact, JsonWebKeySet keys, string type, int times)
        {
            for (var i = 0; i < times; i++)
            {
                if (!Jws.TryVerify(compact, keys, type, out _, out var error))
                {
                    throw new InvalidOperationException($"A signature the bound made does not verify: {error}.");
                }
            }
        }
    }
}
