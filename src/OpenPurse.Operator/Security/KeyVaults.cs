namespace OpenPurse.Operator.Security;

/// <summary>Opens the key vault the configuration names.</summary>
internal static class KeyVaults
{
    public static ISecurityModule Open(OperatorOptions options, string dataDirectory) => options.KeyVault switch
    {
        "software" => SoftwareKeyVault.Open(SoftwareDirectory(options, dataDirectory), options.CreateVaultIfMissing),
        "pkcs11" => Pkcs11KeyVault.Open(Pkcs11(options), options.CreateVaultIfMissing),
        _ => throw Unknown(options),
    };

    /// <summary>
    /// <c>openpurse-operator vault init</c>: creates the configured vault's keys where they are
    /// absent and says what it did (never a secret).
    /// </summary>
    /// <exception cref="KeyVaultException">The vault cannot be opened or initialized.</exception>
    public static string Initialize(OperatorOptions options, string dataDirectory)
    {
        switch (options.KeyVault)
        {
            case "software":
                var directory = SoftwareDirectory(options, dataDirectory);
                var created = !SoftwareKeyVault.Exists(directory);
                using (var vault = SoftwareKeyVault.Open(directory, createIfMissing: true))
                {
                    var state = created ? "generated" : "already present";
                    return $"""
                        Software key vault in {directory}:
                          card master key '{SoftwareKeyVault.MasterKeyLabel}' version {SoftwareKeyVault.MasterKeyVersion:X2} (AES-128): {state}
                          operator signing key '{SoftwareKeyVault.SigningKeyLabel}' (EC P-256, ES256): {state}, kid {vault.OperatorKey.KeyId}
                        """;
                }

            case "pkcs11":
                return Pkcs11KeyVault.Initialize(Pkcs11(options));
            default:
                throw Unknown(options);
        }
    }

    private static string SoftwareDirectory(OperatorOptions options, string dataDirectory) =>
        options.VaultDirectory ?? Path.Combine(dataDirectory, "vault");

    private static Pkcs11Options Pkcs11(OperatorOptions options) =>
        options.Pkcs11 ?? throw new KeyVaultException("KeyVault is 'pkcs11' but the Pkcs11 settings (Library, TokenLabel) are missing.");

    private static KeyVaultException Unknown(OperatorOptions options) =>
        new($"Unknown key vault '{options.KeyVault}'; use 'software' or 'pkcs11'.");
}
