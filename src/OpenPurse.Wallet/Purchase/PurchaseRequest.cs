using OpenPurse.Protocol.Messages;

namespace OpenPurse.Wallet.Purchase;

/// <summary>What the person wants to buy, and how to settle it.</summary>
/// <param name="Sku">The article number in the store's catalog.</param>
/// <param name="Quantity">How many, 1 to <see cref="QuantityMax"/>.</param>
/// <param name="StoreId">The (member) store, needed when a mall's catalog has the article more than once.</param>
/// <param name="Profile">Signed (SIG2, ST1–ST20) or lean (ST101–ST112).</param>
public sealed record PurchaseRequest(string Sku, int Quantity = 1, string? StoreId = null, SettlementProfile Profile = SettlementProfile.Signed)
{
    /// <summary>The most items of one article in one purchase.</summary>
    public const int QuantityMax = 100;

    /// <summary>The longest article number or store id the wallet sends.</summary>
    public const int IdentifierLengthMax = 64;

    /// <summary>Checks the request before anything is sent.</summary>
    /// <exception cref="WalletException">An empty or overlong article, a quantity out of range, or an unknown profile.</exception>
    internal void Validate()
    {
        if (string.IsNullOrWhiteSpace(Sku) || Sku.Length > IdentifierLengthMax)
        {
            throw new WalletException(WalletErrors.InvalidRequest, $"An article number has 1 to {IdentifierLengthMax} characters.");
        }

        if (StoreId is not null && (string.IsNullOrWhiteSpace(StoreId) || StoreId.Length > IdentifierLengthMax))
        {
            throw new WalletException(WalletErrors.InvalidRequest, $"A store id has 1 to {IdentifierLengthMax} characters.");
        }

        if (Quantity is < 1 or > QuantityMax)
        {
            throw new WalletException(WalletErrors.InvalidRequest, $"The quantity is 1 to {QuantityMax}, not {Quantity}.");
        }

        if (!Enum.IsDefined(Profile))
        {
            throw new WalletException(WalletErrors.InvalidRequest, $"Unknown settlement profile {Profile}.");
        }
    }
}
