namespace OpenPurse.Operator.Tls;

/// <summary>
/// <c>openpurse-operator tls init --out &lt;dir&gt; [--name operator --name store …] [--host 127.0.0.1 --host localhost …]</c>:
/// makes the deployment's CA (unless <c>--out</c> holds one) and a server certificate for each
/// named party; see docs/operations.md, "TLS".
/// </summary>
internal static class TlsCommand
{
    public const int ExitOk = 0;
    public const int ExitFailed = 1;
    public const int ExitUsage = 2;

    /// <param name="directory">Where the CA and the certificates go.</param>
    /// <param name="names">The parties to make server certificates for; none: <see cref="DeploymentCertificates.DefaultNames"/>.</param>
    /// <param name="hosts">The DNS names and addresses the certificates name.</param>
    /// <param name="output">Where the files made are listed.</param>
    /// <param name="error">Where failures are told.</param>
    public static int Init(string directory, IReadOnlyList<string> names, IReadOnlyList<string> hosts, TextWriter output, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(names);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        DeploymentPki pki;
        try
        {
            pki = DeploymentCertificates.Create(directory, names.Count > 0 ? names : DeploymentCertificates.DefaultNames, hosts);
        }
        catch (ArgumentException e)
        {
            error.WriteLine("openpurse-operator: " + e.Message);
            return ExitUsage;
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or UnauthorizedAccessException)
        {
            error.WriteLine("openpurse-operator: " + e.Message);
            return ExitFailed;
        }

        output.WriteLine(pki.CaCreated
            ? $"Made a new CA: {pki.CaCertificatePath} (give it to every client), {pki.CaKeyPath} (owner-only; keep it offline)."
            : $"Issued from the existing CA {pki.CaCertificatePath}; its key was left as it was.");
        foreach (var server in pki.Servers)
        {
            output.WriteLine($"{server.Name}: {server.CertificatePath} and {server.KeyPath}");
        }

        return ExitOk;
    }
}
