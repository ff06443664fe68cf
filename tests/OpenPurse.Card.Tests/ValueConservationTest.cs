using CsCheck;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Purse;

namespace OpenPurse.Card.Tests;

/// <summary>
/// Property: whatever sequence of APDUs reaches the card — honest moves, mismatched approvals,
/// stale orders, replays, tampered and random bytes, power cycles — its balance changes only by
/// the debits and credits it acknowledged under its R-MAC, each acknowledged move adds exactly one
/// log record and one counter step. Value is never created or lost.
/// </summary>
public sealed class ValueConservationTest
{
    private enum Step
    {
        Credit,
        Debit,
        DebitWithMismatchedApproval,
        DebitForStaleCounter,
        ReplayRecorded,
        TamperRecorded,
        RandomBytes,
        PowerCycle,
    }

    [Fact]
    public void RandomApduSequences_NeverCreateOrLoseValue()
    {
        var step = Gen.Select(Gen.Enum<Step>(), Gen.Long[1, 3_000], Gen.Byte.Array[0, 60], Gen.Int[0, 10_000]);
        step.Array[1, 25].Sample(steps =>
        {
            using var kit = new CardKit(balanceMax: 20_000);
            var expected = 0L;
            var acknowledged = 0u;
            var recorded = new List<CommandApdu>();

            foreach (var (kind, amount, bytes, pick) in steps)
            {
                StatusWord answer;
                switch (kind)
                {
                    case Step.Credit or Step.Debit:
                        var outcome = kit.Move(kind == Step.Credit ? ValueKind.Credit : ValueKind.Debit, Eur.Of(amount));
                        recorded.Add(outcome.Command);
                        answer = outcome.Status;
                        if (answer == StatusWord.Ok)
                        {
                            expected += kind == Step.Credit ? amount : -amount;
                            acknowledged++;
                            Assert.Equal(Eur.Of(expected), outcome.Record!.BalanceAfter);
                        }
                        else
                        {
                            Assert.Contains(answer, new[] { StatusWord.InsufficientValue, StatusWord.BalanceLimitExceeded, StatusWord.ReferencedDataNotFound });
                        }

                        break;
                    case Step.DebitWithMismatchedApproval:
                        answer = kit.Move(ValueKind.Debit, Eur.Of(amount), o => new Approval(Eur.Of(amount - 1), o.Digest)).Status;
                        Assert.Equal(StatusWord.ApprovalMismatch, answer);
                        break;
                    case Step.DebitForStaleCounter:
                        answer = kit.Move(ValueKind.Debit, Eur.Of(amount), counter: c => c + 1).Status;
                        Assert.Equal(StatusWord.CounterMismatch, answer);
                        break;
                    case Step.ReplayRecorded when recorded.Count > 0:
                        kit.OpenSession().Dispose();
                        answer = kit.Send(recorded[pick % recorded.Count]).Status;
                        Assert.Equal(StatusWord.SecurityStatusNotSatisfied, answer);
                        break;
                    case Step.TamperRecorded when recorded.Count > 0:
                        var original = recorded[pick % recorded.Count].ToBytes();
                        original[pick % original.Length] ^= (byte)(1 + (pick % 255));
                        answer = kit.Send(original).Status;
                        Assert.NotEqual(StatusWord.Ok, answer);
                        break;
                    case Step.RandomBytes:
                        answer = kit.Send(bytes).Status;
                        Assert.True(answer != StatusWord.Ok || (bytes.Length >= 2 && bytes[1] is PurseInstruction.Select or PurseInstruction.GetData or PurseInstruction.ReadLog or PurseInstruction.InitializeUpdate));
                        break;
                    case Step.PowerCycle:
                        kit.PowerCycle();
                        break;
                }

                var status = kit.Status();
                Assert.Equal(Eur.Of(expected), status.BalanceOf(Currency.Eur) ?? Eur.Of(0));
                Assert.Equal(acknowledged, status.Counter);
                Assert.Equal(Math.Min((int)acknowledged, CardState.LogCapacity), kit.Card.State.Log.Count);
            }
        }, iter: 300, threads: 1);
    }
}
