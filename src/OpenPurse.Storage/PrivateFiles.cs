using Microsoft.Data.Sqlite;

namespace OpenPurse.Storage;

/// <summary>
/// Where a party keeps records and keys on disk: directories 0700 and files 0600, whatever the
/// process's umask and whatever mode an earlier version or a person left on them. The registry
/// holds every full card number, the store's database every order, the vaults their keys: no other
/// local user may read them.
/// </summary>
/// <remarks>
/// Existing directories and files are tightened, never loosened; the owner is not changed. On
/// Windows, where these modes do not exist, the directory's inherited ACL applies.
/// </remarks>
public static class PrivateFiles
{
    /// <summary>Read, write and search for the owner only.</summary>
    public const UnixFileMode OwnerOnlyDirectory = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>Read and write for the owner only.</summary>
    public const UnixFileMode OwnerOnlyFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>Any permission for group or others.</summary>
    public const UnixFileMode GroupOrOthers =
        UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    // The files SQLite keeps beside a database in WAL mode (and the rollback journal of a database
    // not yet switched to WAL). SQLite creates them with the database file's mode.
    private static readonly string[] s_sqliteCompanions = ["-wal", "-shm", "-journal"];

    /// <summary>Creates <paramref name="path"/> (and its missing parents) for its owner only, or tightens it.</summary>
    /// <returns>The full path.</returns>
    public static string CreateDirectory(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (OperatingSystem.IsWindows())
        {
            return Directory.CreateDirectory(path).FullName;
        }

        // The mode given to CreateDirectory passes through the umask; the explicit set below does not.
        var directory = Directory.CreateDirectory(path, OwnerOnlyDirectory);
        Tighten(directory.FullName);
        return directory.FullName;
    }

    /// <summary>Takes group's and others' permissions off an existing file or directory.</summary>
    public static void Tighten(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        var mode = File.GetUnixFileMode(path);
        if ((mode & GroupOrOthers) != 0)
        {
            File.SetUnixFileMode(path, mode & ~GroupOrOthers);
        }
    }

    /// <summary>
    /// Makes a SQLite database file private before SQLite opens it: creates it empty with mode 0600
    /// when it does not exist, so that SQLite, which gives its WAL and shared-memory files the
    /// database file's mode, makes those 0600 too; tightens the database and its companions when
    /// they do exist. In-memory and temporary databases are left alone.
    /// </summary>
    /// <param name="connectionString">A Microsoft.Data.Sqlite connection string.</param>
    public static void ProtectSqliteDatabase(string connectionString)
    {
        var dataSource = new SqliteConnectionStringBuilder(connectionString).DataSource;
        if (OperatingSystem.IsWindows() || string.IsNullOrEmpty(dataSource) || dataSource == ":memory:"
            || dataSource.StartsWith("file:", StringComparison.OrdinalIgnoreCase))
        {
            return;
        }

        var path = Path.GetFullPath(dataSource);
        if (!Directory.Exists(Path.GetDirectoryName(path)))
        {
            // Not this party's to make here: whoever opens the database first makes its directory
            // (PrivateFiles.CreateDirectory, 0700), and a database in a private directory is private.
            return;
        }

        if (!File.Exists(path))
        {
            var create = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = OwnerOnlyFile };
            try
            {
                using var _ = new FileStream(path, create);
            }
            catch (IOException) when (File.Exists(path))
            {
                // Another node of this process created it first: tightened below like any existing one.
            }
        }

        Tighten(path);
        foreach (var suffix in s_sqliteCompanions)
        {
            if (File.Exists(path + suffix))
            {
                Tighten(path + suffix);
            }
        }
    }

    /// <summary>
    /// Reads a secret (a key) kept in a file of its own, refusing a file that group or others may
    /// read or change and one too long to be a key of its kind.
    /// </summary>
    /// <param name="path">The key file.</param>
    /// <param name="lengthMax">The most bytes a key of its kind takes, with room to spare.</param>
    /// <param name="kind">What the key is, for the message, e.g. "a P-256 PKCS#8 private key".</param>
    /// <returns>The bytes, which the caller zeroes after use.</returns>
    /// <exception cref="InvalidOperationException">The file is open to group or others, empty, or too long.</exception>
    public static byte[] ReadSecret(string path, int lengthMax, string kind)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!OperatingSystem.IsWindows())
        {
            var mode = File.GetUnixFileMode(path);
            if ((mode & GroupOrOthers) != 0)
            {
                throw new InvalidOperationException(
                    $"Refusing the key file '{path}': its mode {Convert.ToString((int)mode, 8)} lets group or others read or change it. "
                    + $"A key must be readable by its owner only (chmod 600 '{path}').");
            }
        }

        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        if (stream.Length is 0 || stream.Length > lengthMax)
        {
            throw new InvalidOperationException($"The key file '{path}' is not {kind} (length {stream.Length}).");
        }

        var bytes = new byte[stream.Length];
        stream.ReadExactly(bytes);
        return bytes;
    }

    /// <summary>
    /// Writes a secret to a new file, owner-only from the moment the file exists: written beside the
    /// final name, flushed to disk and moved into place, so a crash never leaves half a key under the
    /// name a later start would load.
    /// </summary>
    /// <exception cref="IOException">A file of that name exists already.</exception>
    public static void WriteSecret(string path, ReadOnlySpan<byte> secret)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var temporary = path + ".tmp";
        File.Delete(temporary);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = OwnerOnlyFile;
        }

        using (var stream = new FileStream(temporary, options))
        {
            stream.Write(secret);
            stream.Flush(flushToDisk: true);
        }

        File.Move(temporary, path, overwrite: false);
    }
}
