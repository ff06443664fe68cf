namespace OpenPurse.Protocol.Apdu;

/// <summary>
/// The status words the OpenPurse card answers (ISO/IEC 7816-4 §5.6, GlobalPlatform for
/// the secure channel). The 94xx values are purse-specific: ISO 7816-4 leaves 9XXX
/// (except 9000) to the application, as e-purse standards do for value errors.
/// </summary>
public enum StatusWord : ushort
{
    /// <summary>9000: normal processing.</summary>
    Ok = 0x9000,

    /// <summary>6300: the host cryptogram did not verify (GlobalPlatform EXTERNAL AUTHENTICATE).</summary>
    AuthenticationFailed = 0x6300,

    /// <summary>6581: memory failure: the card could not persist a write.</summary>
    MemoryFailure = 0x6581,

    /// <summary>6700: Lc or Le does not fit the command.</summary>
    WrongLength = 0x6700,

    /// <summary>6982: no secure channel, or the command MAC did not verify (also a replayed command).</summary>
    SecurityStatusNotSatisfied = 0x6982,

    /// <summary>6985: the command came out of order (e.g. EXTERNAL AUTHENTICATE without INITIALIZE UPDATE).</summary>
    ConditionsNotSatisfied = 0x6985,

    /// <summary>6A80: the (decrypted) data field is malformed.</summary>
    WrongData = 0x6A80,

    /// <summary>6A82: no application with that AID.</summary>
    ApplicationNotFound = 0x6A82,

    /// <summary>6A83: no log record at that position.</summary>
    RecordNotFound = 0x6A83,

    /// <summary>6A84: no free purse slot for a new currency.</summary>
    NotEnoughMemory = 0x6A84,

    /// <summary>6A86: P1 or P2 not allowed for this instruction.</summary>
    IncorrectP1P2 = 0x6A86,

    /// <summary>6A88: the referenced key version or purse does not exist.</summary>
    ReferencedDataNotFound = 0x6A88,

    /// <summary>6D00: unknown instruction.</summary>
    InstructionNotSupported = 0x6D00,

    /// <summary>6E00: unknown class byte.</summary>
    ClassNotSupported = 0x6E00,

    /// <summary>9401: the purse holds less than the debit asks.</summary>
    InsufficientValue = 0x9401,

    /// <summary>9402: the credit would take the purse above its balance limit.</summary>
    BalanceLimitExceeded = 0x9402,

    /// <summary>9403: the amount or bill the person approved differs from what the operator's command says.</summary>
    ApprovalMismatch = 0x9403,

    /// <summary>9404: the command was made for another transaction counter value (stale or replayed).</summary>
    CounterMismatch = 0x9404,
}
