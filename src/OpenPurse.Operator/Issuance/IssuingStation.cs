using System.Security.Cryptography;
using OpenPurse.Card;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;

namespace OpenPurse.Operator.Issuance;

/// <summary>
/// The issuing station's counter for emulated cards: a new card number and its diversified keys
/// personalized into a new card file, then the first load over the card's secure channel. The
/// card's static keys pass through this process once and are zeroed as soon as the card has them.
/// </summary>
internal static class IssuingStation
{
    /// <summary>The most a card may hold unless told otherwise, in minor units (1,000.00 in a two-decimal currency).</summary>
    public const long DefaultBalanceMaxMinor = 100_000;

    /// <summary>Issues a card into <paramref name="path"/> (which must not exist) and loads <paramref name="load"/> onto it when positive.</summary>
    /// <exception cref="IOException">The file exists or cannot be written (the number issued is then blocked).</exception>
    /// <exception cref="InvalidOperationException">The card refused the load: the file is removed and the number blocked.</exception>
    public static async Task<EmulatedCard> IssueCardFileAsync(this CardIssuer issuer, string path, Money load, long balanceMaxMinor = DefaultBalanceMaxMinor, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(issuer);
        var keys = await issuer.IssueAsync(cancellationToken).ConfigureAwait(false);
        EmulatedCard card;
        try
        {
            card = EmulatedCard.Create(path, new CardPersonalization(keys.CardId, keys.KeyVersion, keys.EncKey, keys.MacKey, balanceMaxMinor));
        }
        catch
        {
            await issuer.BlockAsync(keys.CardId, CancellationToken.None).ConfigureAwait(false);
            throw;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(keys.EncKey);
            CryptographicOperations.ZeroMemory(keys.MacKey);
        }

        try
        {
            if (load.IsPositive)
            {
                await issuer.LoadAsync(new StationReader(card), load, cancellationToken).ConfigureAwait(false);
            }

            return card;
        }
        catch
        {
            // No half-issued card: the file goes, and the number is blocked (numbers are never reused).
            card.Dispose();
            File.Delete(path);
            await issuer.BlockAsync(keys.CardId, CancellationToken.None).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The station's own reader: the card lies on it, in this process.</summary>
    private sealed class StationReader(EmulatedCard card) : ICardReader
    {
        public string Name => "Issuing station";

        public ResponseApdu Transmit(CommandApdu command) => ResponseApdu.Parse(card.Transmit(command.ToBytes()));
    }
}
