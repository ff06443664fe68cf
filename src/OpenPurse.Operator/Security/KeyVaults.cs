namespace OpenPurse.Operator.Security;

/// <summary>Opens the key vault the configuration names.</summary>
internal static class KeyVaults
{
    public static ISecurityModule Open(OperatorOptions options, string dataDirectory) => options.KeyVault switch
    {
        "software" => SoftwareKeyVault.Open(options.VaultDirectory ?? Path.Combine(dataDirectory, "vault"), options.CreateVaultIfMissing),
        _ => throw new KeyVaultException($"Unknown key vault '{options.KeyVault}'; use 'software'."),
    };
}
