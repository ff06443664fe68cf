using System.Security.Cryptography;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Channel;
using OpenPurse.Protocol.Purse;

namespace OpenPurse.Card;

/// <summary>
/// The e-purse application (the data storage device 20 of the specification): a state machine
/// over APDUs. Unselected → SELECT → selected → INITIALIZE UPDATE → authenticating →
/// EXTERNAL AUTHENTICATE → session; any refused secured command ends the session.
/// </summary>
/// <remarks>
/// Value moves only through DEBIT and CREDIT, each over a fully secured session (C-MAC,
/// C-DECRYPTION, R-MAC, R-ENCRYPTION), each bound to the card's current counter, each
/// written to memory with its log record in one commit before the card answers.
/// </remarks>
internal sealed class PurseApplet : IDisposable
{
    private const int ReadLogCountMax = 3; // 3 × 71 bytes, encrypted and MACed, still fits 256.

    private readonly CardMemory _memory;
    private CardState _state;
    private readonly AesCmac _staticEnc;
    private readonly AesCmac _staticMac;
    private bool _selected;
    private Pending? _pending;
    private SecureChannel? _session;

    public PurseApplet(CardMemory memory)
    {
        _memory = memory;
        _state = CardState.FromBytes(memory.Load());
        (_staticEnc, _staticMac) = (new AesCmac(_state.EncKey), new AesCmac(_state.MacKey));
    }

    public CardState State => _state;

    /// <summary>Power cycle: RAM (selection and session) is lost, memory stays.</summary>
    public void Reset()
    {
        EndSession();
        _selected = false;
    }

    public ResponseApdu Process(ReadOnlySpan<byte> bytes)
    {
        if (!CommandApdu.TryParse(bytes, out var command))
        {
            return ResponseApdu.Of(StatusWord.WrongLength);
        }

        if (Classify(command) is { } refused)
        {
            return refused;
        }

        if (!_selected && command.Ins != PurseInstruction.Select)
        {
            return ResponseApdu.Of(StatusWord.ConditionsNotSatisfied);
        }

        return command.Ins switch
        {
            PurseInstruction.Select => Select(command),
            PurseInstruction.InitializeUpdate => InitializeUpdate(command),
            PurseInstruction.ExternalAuthenticate => ExternalAuthenticate(command),
            PurseInstruction.GetData => command.P1 == 0 && command.P2 == 0
                ? new ResponseApdu(_state.Status.ToBytes(), StatusWord.Ok)
                : ResponseApdu.Of(StatusWord.IncorrectP1P2),
            PurseInstruction.ReadLog when command.Cla == PurseInstruction.ClaProprietary => ReadLog(command),
            _ => Secured(command),
        };
    }

    public void Dispose()
    {
        EndSession();
        _staticEnc.Dispose();
        _staticMac.Dispose();
        CryptographicOperations.ZeroMemory(_state.EncKey);
        CryptographicOperations.ZeroMemory(_state.MacKey);
        _memory.Dispose();
    }

    // Which class bytes each instruction accepts; anything else is refused before any state is touched.
    private static ResponseApdu? Classify(CommandApdu command)
    {
        if (command.Cla is not (PurseInstruction.ClaIso or PurseInstruction.ClaProprietary or PurseInstruction.ClaSecured))
        {
            return ResponseApdu.Of(StatusWord.ClassNotSupported);
        }

        byte[]? allowed = command.Ins switch
        {
            PurseInstruction.Select => [PurseInstruction.ClaIso],
            PurseInstruction.InitializeUpdate or PurseInstruction.GetData => [PurseInstruction.ClaProprietary],
            PurseInstruction.ExternalAuthenticate or PurseInstruction.ReadPurse
                or PurseInstruction.Debit or PurseInstruction.Credit => [PurseInstruction.ClaSecured],
            PurseInstruction.ReadLog => [PurseInstruction.ClaProprietary, PurseInstruction.ClaSecured],
            _ => null,
        };

        return allowed is null ? ResponseApdu.Of(StatusWord.InstructionNotSupported)
            : !allowed.Contains(command.Cla) ? ResponseApdu.Of(StatusWord.ClassNotSupported)
            : null;
    }

    private ResponseApdu Select(CommandApdu command)
    {
        Reset();
        if (command.P1 != 0x04 || command.P2 != 0x00)
        {
            return ResponseApdu.Of(StatusWord.IncorrectP1P2);
        }

        if (!command.Data.SequenceEqual(PurseAid.Value))
        {
            return ResponseApdu.Of(StatusWord.ApplicationNotFound);
        }

        _selected = true;
        // FCI template (6F) with the DF name (84).
        byte[] fci = [0x6F, (byte)(2 + PurseAid.Value.Length), 0x84, (byte)PurseAid.Value.Length, .. PurseAid.Value];
        return new ResponseApdu(fci, StatusWord.Ok);
    }

    private ResponseApdu InitializeUpdate(CommandApdu command)
    {
        EndSession();
        if (command.P2 != 0)
        {
            return ResponseApdu.Of(StatusWord.IncorrectP1P2);
        }

        if (command.P1 != 0 && command.P1 != _state.KeyVersion)
        {
            return ResponseApdu.Of(StatusWord.ReferencedDataNotFound);
        }

        if (command.Data.Length != Scp03.ChallengeLength)
        {
            return ResponseApdu.Of(StatusWord.WrongLength);
        }

        // The session counter is written before the card answers: a greeting always carries a
        // number no earlier greeting had, even across power loss.
        var next = _state.NextSession();
        try
        {
            _memory.Commit(next.ToBytes());
        }
        catch (IOException)
        {
            return ResponseApdu.Of(StatusWord.MemoryFailure);
        }

        _state = next;
        var hostChallenge = command.Data.ToArray();
        var cardChallenge = RandomNumberGenerator.GetBytes(Scp03.ChallengeLength);
        var keys = Scp03.DeriveSessionKeys(_staticEnc, _staticMac, hostChallenge, cardChallenge);
        using var sessionMac = new AesCmac(keys.Mac);
        Span<byte> cryptogram = stackalloc byte[Scp03.CryptogramLength];
        Scp03.CardCryptogram(sessionMac, hostChallenge, cardChallenge, cryptogram);

        var data = CardGreeting.Encode(_state.CardId, _state.KeyVersion, cardChallenge, cryptogram, _state.SessionCounter, _state.Status, _state.Log.Count > 0 ? _state.Log[0] : null, keys);
        _pending = new Pending(keys, hostChallenge, cardChallenge);
        return new ResponseApdu(data, StatusWord.Ok);
    }

    private ResponseApdu ExternalAuthenticate(CommandApdu command)
    {
        if (_pending is not { } pending)
        {
            return ResponseApdu.Of(StatusWord.ConditionsNotSatisfied);
        }

        _pending = null;
        using var keys = pending.Keys;
        if (command.P1 != (byte)SecurityLevel.Full || command.P2 != 0)
        {
            return ResponseApdu.Of(StatusWord.IncorrectP1P2);
        }

        if (command.Data.Length != Scp03.CryptogramLength + Scp03.MacLength)
        {
            return ResponseApdu.Of(StatusWord.WrongLength);
        }

        var channel = new SecureChannel(keys, SecurityLevel.Full);
        if (!channel.TryUnwrap(command, out var plain))
        {
            channel.Dispose();
            return ResponseApdu.Of(StatusWord.SecurityStatusNotSatisfied);
        }

        using var sessionMac = new AesCmac(keys.Mac);
        Span<byte> expected = stackalloc byte[Scp03.CryptogramLength];
        Scp03.HostCryptogram(sessionMac, pending.HostChallenge, pending.CardChallenge, expected);
        if (!CryptographicOperations.FixedTimeEquals(expected, plain.Data))
        {
            channel.Dispose();
            return ResponseApdu.Of(StatusWord.AuthenticationFailed);
        }

        _session = channel;
        return ResponseApdu.Of(StatusWord.Ok);
    }

    // Every CLA 84 command but EXTERNAL AUTHENTICATE: unwrap, act, wrap; a refusal ends the session.
    private ResponseApdu Secured(CommandApdu command)
    {
        if (_session is not { } session)
        {
            return ResponseApdu.Of(StatusWord.SecurityStatusNotSatisfied);
        }

        var approvalLength = command.Ins is PurseInstruction.Debit or PurseInstruction.Credit ? Approval.Length : 0;
        if (command.Data.Length < approvalLength + Scp03.MacLength)
        {
            EndSession();
            return ResponseApdu.Of(StatusWord.WrongLength);
        }

        var approval = command.Data[..approvalLength].ToArray();
        if (!session.TryUnwrap(command.With(command.Cla, command.Data[approvalLength..]), out var plain))
        {
            EndSession();
            return ResponseApdu.Of(StatusWord.SecurityStatusNotSatisfied);
        }

        var answer = plain.Ins switch
        {
            PurseInstruction.ReadPurse => plain.P1 == 0 && plain.P2 == 0 && plain.Data.Length == 0
                ? new ResponseApdu(_state.Status.ToBytes(), StatusWord.Ok)
                : ResponseApdu.Of(StatusWord.IncorrectP1P2),
            PurseInstruction.ReadLog => ReadLog(plain),
            PurseInstruction.Debit => MoveValue(ValueKind.Debit, plain, approval),
            PurseInstruction.Credit => MoveValue(ValueKind.Credit, plain, approval),
            _ => ResponseApdu.Of(StatusWord.InstructionNotSupported),
        };

        if (!answer.IsOk)
        {
            EndSession();
            return answer;
        }

        return session.Wrap(answer);
    }

    private ResponseApdu ReadLog(CommandApdu command)
    {
        if (command.P1 >= CardState.LogCapacity || command.P2 is < 1 or > ReadLogCountMax || command.Data.Length != 0)
        {
            return ResponseApdu.Of(StatusWord.IncorrectP1P2);
        }

        var records = _state.Log.Skip(command.P1).Take(command.P2).ToArray();
        if (records.Length == 0)
        {
            return ResponseApdu.Of(StatusWord.RecordNotFound);
        }

        var data = new byte[records.Length * CardLogRecord.Length];
        for (var i = 0; i < records.Length; i++)
        {
            records[i].WriteTo(data.AsSpan(i * CardLogRecord.Length));
        }

        return new ResponseApdu(data, StatusWord.Ok);
    }

    // ST17: write the log and move the value in one commit; ST18: answer the completion notice.
    private ResponseApdu MoveValue(ValueKind kind, CommandApdu command, ReadOnlySpan<byte> approvalBytes)
    {
        if (command.P1 != 0 || command.P2 != 0)
        {
            return ResponseApdu.Of(StatusWord.IncorrectP1P2);
        }

        if (!ValueCommand.TryParse(command.Data, out var order) || !order.Amount.IsPositive
            || !Approval.TryParse(approvalBytes, out var approval))
        {
            return ResponseApdu.Of(StatusWord.WrongData);
        }

        // What the person approved is what the card does (the gap the specification names).
        if (approval.Amount != order.Amount || !CryptographicOperations.FixedTimeEquals(approval.Digest.Span, order.Digest.Span))
        {
            return ResponseApdu.Of(StatusWord.ApprovalMismatch);
        }

        if (order.ExpectedCounter != _state.Counter)
        {
            return ResponseApdu.Of(StatusWord.CounterMismatch);
        }

        var balance = _state.Status.BalanceOf(order.Amount.Currency);
        Money after;
        if (kind == ValueKind.Debit)
        {
            if (balance is not { } held)
            {
                return ResponseApdu.Of(StatusWord.ReferencedDataNotFound);
            }

            if (held < order.Amount)
            {
                return ResponseApdu.Of(StatusWord.InsufficientValue);
            }

            after = held - order.Amount;
        }
        else
        {
            if (balance is null && _state.Purses.Count >= PurseStatus.PursesMax)
            {
                return ResponseApdu.Of(StatusWord.NotEnoughMemory);
            }

            var held = balance ?? Money.Zero(order.Amount.Currency);
            if (order.Amount.MinorUnits > _state.BalanceMaxMinor - held.MinorUnits)
            {
                return ResponseApdu.Of(StatusWord.BalanceLimitExceeded);
            }

            after = held + order.Amount;
        }

        var next = _state.Apply(kind, order, after);
        try
        {
            _memory.Commit(next.ToBytes());
        }
        catch (IOException)
        {
            // The write did not complete: memory still holds the old state, and so does _state.
            return ResponseApdu.Of(StatusWord.MemoryFailure);
        }

        _state = next;
        return new ResponseApdu(next.Log[0].ToBytes(), StatusWord.Ok);
    }

    private void EndSession()
    {
        _pending?.Keys.Dispose();
        _pending = null;
        _session?.Dispose();
        _session = null;
    }

    private sealed record Pending(SessionKeys Keys, byte[] HostChallenge, byte[] CardChallenge);
}
