using System.Text.Json;
using System.Text.Json.Serialization;

namespace OpenPurse.Protocol.Messages;

/// <summary>
/// The one JSON configuration of every OpenPurse message: camelCase, every member written (an
/// absent value is an explicit null, and every member is required when read), amounts as
/// <c>{"minorUnits":1250,"currency":"EUR"}</c> (integers only, never a float), unknown members refused.
/// </summary>
public static class ProtocolJson
{
    /// <summary>Options for messages and HTTP bodies.</summary>
    public static JsonSerializerOptions Options { get; } = Create();

    /// <summary>Serializes to UTF-8 bytes: what gets signed is exactly these bytes.</summary>
    public static byte[] ToUtf8(object value) => JsonSerializer.SerializeToUtf8Bytes(value, value.GetType(), Options);

    /// <summary>Applies the protocol's settings to options a framework owns (e.g. ASP.NET Core's).</summary>
    public static void Configure(JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.PropertyNamingPolicy = JsonNamingPolicy.CamelCase;
        options.PropertyNameCaseInsensitive = false;
        options.DefaultIgnoreCondition = JsonIgnoreCondition.Never;
        options.UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow;
        options.NumberHandling = JsonNumberHandling.Strict;
        options.AllowDuplicateProperties = false;
        options.RespectNullableAnnotations = true;
        options.RespectRequiredConstructorParameters = true;
        options.Converters.Add(new MoneyJsonConverter());
        options.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower, allowIntegerValues: false));
    }

    private static JsonSerializerOptions Create()
    {
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        Configure(options);
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }
}

/// <summary>Money as <c>{"minorUnits":1250,"currency":"EUR"}</c>.</summary>
internal sealed class MoneyJsonConverter : JsonConverter<Money>
{
    public override Money Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw new JsonException("An amount is an object with minorUnits and currency.");
        }

        long? minor = null;
        string? code = null;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            var name = reader.GetString();
            reader.Read();
            switch (name)
            {
                case "minorUnits" when minor is null && reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value):
                    minor = value;
                    break;
                case "currency" when code is null && reader.TokenType == JsonTokenType.String:
                    code = reader.GetString();
                    break;
                default:
                    throw new JsonException($"Unexpected member '{name}' in an amount.");
            }
        }

        if (minor is not { } units || !Currency.TryFromCode(code, out var currency))
        {
            throw new JsonException("An amount needs integer minorUnits and a known currency code.");
        }

        if (units is > Money.MaxMinorUnits or < -Money.MaxMinorUnits)
        {
            throw new JsonException("The amount is out of range.");
        }

        return new Money(units, currency);
    }

    public override void Write(Utf8JsonWriter writer, Money value, JsonSerializerOptions options)
    {
        writer.WriteStartObject();
        writer.WriteNumber("minorUnits", value.MinorUnits);
        writer.WriteString("currency", value.Currency.Code);
        writer.WriteEndObject();
    }
}
