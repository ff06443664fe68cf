using System.Text.Json;
using OpenPurse.Protocol.Messages;
using OpenPurse.Store.Keys;

namespace OpenPurse.Store.Operator;

/// <summary>
/// What the store hands the operator to be registered: for each member store its id, name, mall,
/// the address for completion notices and its own public keys only (never the mall's whole set,
/// which would let one member sign for another).
/// </summary>
internal static class OperatorRegistration
{
    /// <summary>The path the operator sends completion notices to, relative to the store's public URL.</summary>
    public const string CompletionsPath = "v1/operator/completions";

    public static IReadOnlyList<StoreRegistration> For(string? mallId, IEnumerable<MemberStoreOptions> members, MemberKeys keys, Uri publicUrl)
    {
        ArgumentNullException.ThrowIfNull(members);
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(publicUrl);
        // Below the public URL's own path (a store behind a proxy at https://proxy/mall/ is notified at …/mall/v1/…).
        var root = publicUrl.AbsoluteUri.EndsWith('/') ? publicUrl : new Uri(publicUrl.AbsoluteUri + "/");
        var notifyUrl = new Uri(root, CompletionsPath).ToString();
        return
        [
            .. members.Select(member => new StoreRegistration(
                member.StoreId,
                member.Name,
                mallId,
                notifyUrl,
                JsonDocument.Parse(keys.SetFor(member.StoreId).ToJson()).RootElement.Clone())),
        ];
    }
}
