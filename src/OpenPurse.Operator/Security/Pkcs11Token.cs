using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;
using Net.Pkcs11Interop.HighLevelAPI.Factories;
using ISession = Net.Pkcs11Interop.HighLevelAPI.ISession;

namespace OpenPurse.Operator.Security;

/// <summary>
/// One logged-in PKCS#11 token: its module loaded once per process, the slot found by the
/// token's label, the user PIN from the environment, and a bounded pool of sessions so that
/// concurrent requests each work in a session of their own.
/// </summary>
/// <remarks>
/// <para>
/// C_Initialize and C_Finalize act on the whole process: a second C_Initialize answers
/// CKR_CRYPTOKI_ALREADY_INITIALIZED, and one C_Finalize ends the module for every user. So one
/// module per library path is shared here and counted; the last token closed finalizes it.
/// SoftHSM2 reads SOFTHSM2_CONF and scans its token directory in C_Initialize only, so a token
/// made afterwards (by softhsm2-util, another process) shows up once the module is initialized
/// again, that is after every user in this process has closed it.
/// </para>
/// <para>
/// Login belongs to the application, not to a session, and a second C_Login while logged in
/// answers CKR_USER_ALREADY_LOGGED_IN without looking at the PIN. So that every
/// <see cref="Open"/> checks its PIN, the first successful login's PIN is remembered as an
/// HMAC under a random per-process key and compared in fixed time; the PIN itself is kept nowhere.
/// </para>
/// </remarks>
internal sealed class Pkcs11Token : IDisposable
{
    /// <summary>The most sessions used at once; more concurrent requests wait for one.</summary>
    public const int SessionsMax = 8;

    /// <summary>How long a request waits for a free session before the token counts as unavailable.</summary>
    public static readonly TimeSpan SessionWaitMax = TimeSpan.FromSeconds(30);

    private const int PinLengthMax = 256;

    private static readonly Pkcs11InteropFactories s_factories = new();
    private static readonly Lock s_modulesLock = new();
    private static readonly Dictionary<string, Module> s_modules = new(StringComparer.Ordinal);
    private static readonly byte[] s_pinMacKey = RandomNumberGenerator.GetBytes(32);
    private static int s_resolverInstalled;

    private readonly Module _module;
    private readonly ISlot _slot;
    private readonly ISession _anchor;
    private readonly ConcurrentBag<ISession> _idle = [];
    private readonly SemaphoreSlim _available = new(SessionsMax, SessionsMax);
    private int _disposed;

    private Pkcs11Token(Module module, ISlot slot, ISession anchor, string label)
    {
        _module = module;
        _slot = slot;
        _anchor = anchor;
        Label = label;
    }

    /// <summary>The token's label.</summary>
    public string Label { get; }

    public static IObjectAttributeFactory Attributes => s_factories.ObjectAttributeFactory;

    public static IMechanismFactory Mechanisms => s_factories.MechanismFactory;

    public static IMechanismParamsFactory MechanismParams => s_factories.MechanismParamsFactory;

    /// <summary>Loads the module (once per process), finds the token by label and logs in with the PIN from the environment.</summary>
    /// <exception cref="KeyVaultException">No PIN in the environment, the module does not load, no such token (or two), or the PIN is refused.</exception>
    public static Pkcs11Token Open(Pkcs11Options options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrEmpty(options.Library) || string.IsNullOrEmpty(options.TokenLabel))
        {
            throw new KeyVaultException("The PKCS#11 vault needs Pkcs11:Library (the module) and Pkcs11:TokenLabel.");
        }

        var pinText = Environment.GetEnvironmentVariable(options.PinEnvironmentVariable);
        if (string.IsNullOrEmpty(pinText))
        {
            throw new KeyVaultException($"Set {options.PinEnvironmentVariable} to the user PIN of token '{options.TokenLabel}'.");
        }

        if (pinText.Length > PinLengthMax)
        {
            throw new KeyVaultException($"{options.PinEnvironmentVariable} is longer than {PinLengthMax} characters.");
        }

        var module = Acquire(options.Library);
        ISession? anchor = null;
        try
        {
            var slot = FindSlot(module, options.TokenLabel);
            anchor = slot.OpenSession(SessionType.ReadWrite);
            var pin = Encoding.UTF8.GetBytes(pinText);
            try
            {
                LogIn(module, anchor, options, pin);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(pin);
            }

            return new Pkcs11Token(module, slot, anchor, options.TokenLabel);
        }
        catch
        {
            CloseQuietly(anchor);
            Release(module);
            throw;
        }
    }

    /// <summary>
    /// Runs <paramref name="work"/> in a session of its own. A session whose work failed is closed
    /// rather than reused: it may be in the middle of an operation, and a new one is cheap.
    /// </summary>
    /// <exception cref="TimeoutException">No session became free within <see cref="SessionWaitMax"/>.</exception>
    public T Use<T>(Func<ISession, T> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (!_available.Wait(SessionWaitMax))
        {
            throw new TimeoutException($"All {SessionsMax} sessions of token '{Label}' stayed busy for {SessionWaitMax.TotalSeconds} s.");
        }

        ISession? session = null;
        try
        {
            if (!_idle.TryTake(out session))
            {
                session = _slot.OpenSession(SessionType.ReadWrite);
            }

            var result = work(session);
            _idle.Add(session);
            session = null;
            return result;
        }
        finally
        {
            CloseQuietly(session);
            _available.Release();
        }
    }

    /// <summary>Finds the one object of a class with a label; null when there is none.</summary>
    /// <exception cref="KeyVaultException">Two or more objects carry the label: which one is meant is unclear.</exception>
    public static IObjectHandle? FindOne(ISession session, CKO objectClass, string label)
    {
        ArgumentNullException.ThrowIfNull(session);
        var found = session.FindAllObjects([Attributes.Create(CKA.CKA_CLASS, objectClass), Attributes.Create(CKA.CKA_LABEL, label)]);
        return found.Count switch
        {
            0 => null,
            1 => found[0],
            _ => throw new KeyVaultException($"The token holds {found.Count} objects of class {objectClass} labelled '{label}'; keep one."),
        };
    }

    /// <summary>Closes this token's sessions (the login ends with the last session) and releases the module.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        while (_idle.TryTake(out var session))
        {
            CloseQuietly(session);
        }

        // No C_Logout: the login is the application's, and another open token on the same
        // slot in this process still needs it. Closing the last session logs out by itself.
        CloseQuietly(_anchor);
        Release(_module);
        _available.Dispose();
    }

    private static Module Acquire(string libraryPath)
    {
        InstallResolver();
        lock (s_modulesLock)
        {
            if (!s_modules.TryGetValue(libraryPath, out var module))
            {
                IPkcs11Library library;
                try
                {
                    library = s_factories.Pkcs11LibraryFactory.LoadPkcs11Library(s_factories, libraryPath, AppType.MultiThreaded);
                }
                catch (Exception e) when (e is UnmanagedException or Pkcs11Exception or DllNotFoundException)
                {
                    throw new KeyVaultException($"Cannot load the PKCS#11 module {libraryPath}: {e.Message}");
                }

                module = new Module(libraryPath, library);
                s_modules.Add(libraryPath, module);
            }

            module.Leases++;
            Debug.Assert(module.Leases > 0, "A module in use has leases.");
            return module;
        }
    }

    private static void Release(Module module)
    {
        lock (s_modulesLock)
        {
            Debug.Assert(module.Leases > 0, "Released more often than acquired.");
            if (--module.Leases > 0)
            {
                return;
            }

            s_modules.Remove(module.LibraryPath);
            foreach (var mac in module.PinMacs.Values)
            {
                CryptographicOperations.ZeroMemory(mac);
            }

            // C_Finalize and unload: the next Open initializes afresh (and sees new tokens).
            module.Library.Dispose();
        }
    }

    private static ISlot FindSlot(Module module, string label)
    {
        // Slot ids are not stable (SoftHSM derives them from the token's serial): the label is.
        var slots = module.Library.GetSlotList(SlotsType.WithTokenPresent)
            .Where(slot => string.Equals(Retrying(slot.GetTokenInfo).Label.TrimEnd(' '), label, StringComparison.Ordinal))
            .ToList();
        if (slots.Count == 0)
        {
            throw new KeyVaultException($"No token labelled '{label}' in {module.LibraryPath}. Create it first (for SoftHSM2: softhsm2-util --init-token --free --label {label}).");
        }

        if (slots.Count > 1)
        {
            throw new KeyVaultException($"{slots.Count} tokens are labelled '{label}' in {module.LibraryPath}; labels must be unique.");
        }

        var flags = Retrying(slots[0].GetTokenInfo).TokenFlags;
        if (!flags.UserPinInitialized)
        {
            throw new KeyVaultException($"Token '{label}' has no user PIN yet; its security officer must set one.");
        }

        if (flags.UserPinLocked)
        {
            throw new KeyVaultException($"The user PIN of token '{label}' is locked; its security officer must unlock it.");
        }

        return slots[0];
    }

    // SoftHSM2's file store answers C_Login and C_GetTokenInfo with CKR_GENERAL_ERROR now and then
    // when several processes open one token at the same moment (nodes started together); an HSM may
    // report a busy device the same way. A few tries, a little apart, get through; any other answer
    // (a refused PIN) is not retried.
    private static T Retrying<T>(Func<T> call)
    {
        const int AttemptsMax = 5;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return call();
            }
            catch (Pkcs11Exception e) when (e.RV is CKR.CKR_GENERAL_ERROR or CKR.CKR_DEVICE_ERROR && attempt < AttemptsMax)
            {
                Thread.Sleep(TimeSpan.FromMilliseconds(100 * attempt));
            }
        }
    }

    private static void LogInRetrying(ISession anchor, byte[] pin) => Retrying(() =>
    {
        anchor.Login(CKU.CKU_USER, pin);
        return true;
    });

    private static void LogIn(Module module, ISession anchor, Pkcs11Options options, byte[] pin)
    {
        var pinMac = HMACSHA256.HashData(s_pinMacKey, pin);
        try
        {
            LogInRetrying(anchor, pin);
            lock (s_modulesLock)
            {
                if (module.PinMacs.Remove(options.TokenLabel, out var previous))
                {
                    CryptographicOperations.ZeroMemory(previous);
                }

                module.PinMacs[options.TokenLabel] = pinMac;
            }
        }
        catch (Pkcs11Exception e) when (e.RV == CKR.CKR_USER_ALREADY_LOGGED_IN)
        {
            // Another open token in this process logged in; the module did not check this PIN.
            bool same;
            lock (s_modulesLock)
            {
                same = module.PinMacs.TryGetValue(options.TokenLabel, out var first) && CryptographicOperations.FixedTimeEquals(first, pinMac);
            }

            CryptographicOperations.ZeroMemory(pinMac);
            if (!same)
            {
                throw new KeyVaultException($"Token '{options.TokenLabel}' refused the PIN in {options.PinEnvironmentVariable}: it differs from the PIN this process logged in with.");
            }
        }
        catch (Pkcs11Exception e) when (e.RV is CKR.CKR_PIN_INCORRECT or CKR.CKR_PIN_INVALID or CKR.CKR_PIN_LEN_RANGE)
        {
            CryptographicOperations.ZeroMemory(pinMac);
            throw new KeyVaultException($"Token '{options.TokenLabel}' refused the PIN in {options.PinEnvironmentVariable} ({e.RV}).");
        }
        catch (Pkcs11Exception e) when (e.RV is CKR.CKR_PIN_LOCKED or CKR.CKR_PIN_EXPIRED)
        {
            CryptographicOperations.ZeroMemory(pinMac);
            throw new KeyVaultException($"Token '{options.TokenLabel}' did not accept a login ({e.RV}); its security officer must reset the user PIN.");
        }
    }

    private static void CloseQuietly(ISession? session)
    {
        if (session is null)
        {
            return;
        }

        try
        {
            session.CloseSession();
        }
        catch (Pkcs11Exception)
        {
            // Already closed or the token went away: nothing is left to release.
        }
    }

    // Pkcs11Interop loads the module with dlopen from "libdl". Since glibc 2.34 (Debian 12)
    // libdl lives in libc and only libdl.so.2 exists, without the unversioned name that .NET
    // probes; so the name is mapped here, once per process (a second resolver would throw).
    private static void InstallResolver()
    {
        if (Interlocked.Exchange(ref s_resolverInstalled, 1) != 0)
        {
            return;
        }

        NativeLibrary.SetDllImportResolver(typeof(Pkcs11InteropFactories).Assembly, static (name, _, _) =>
            OperatingSystem.IsLinux() && name == "libdl" && NativeLibrary.TryLoad("libdl.so.2", out var handle) ? handle : IntPtr.Zero);
    }

    private sealed class Module(string libraryPath, IPkcs11Library library)
    {
        public string LibraryPath { get; } = libraryPath;

        public IPkcs11Library Library { get; } = library;

        public int Leases { get; set; }

        /// <summary>Per token label, the HMAC of the PIN this process logged in with.</summary>
        public Dictionary<string, byte[]> PinMacs { get; } = new(StringComparer.Ordinal);
    }
}
