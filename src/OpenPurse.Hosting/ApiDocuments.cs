using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.OpenApi;
using OpenPurse.Protocol;

namespace OpenPurse.Hosting;

/// <summary>
/// The servers' OpenAPI documents, made at run time from their endpoints' metadata (each endpoint's
/// name, summary, body, success type and problem statuses) and served at <c>/openapi/{name}.json</c>.
/// </summary>
internal static class ApiDocuments
{
    /// <summary>The document of a server's public API.</summary>
    public const string Public = "v1";

    /// <summary>Where a document is served.</summary>
    public static string PathOf(string name) => $"/openapi/{name}.json";

    /// <summary>Adds the document <paramref name="name"/>, describing the endpoints whose metadata <paramref name="describes"/> accepts.</summary>
    /// <param name="services">The server's services.</param>
    /// <param name="name">The document's name, lower case.</param>
    /// <param name="title">The API's title.</param>
    /// <param name="describes">Which endpoints, by their metadata, belong to the document.</param>
    public static IServiceCollection AddApiDocument(this IServiceCollection services, string name, string title, Func<IList<object>, bool> describes) =>
        services.AddOpenApi(name, options =>
        {
            options.OpenApiVersion = OpenApiSpecVersion.OpenApi3_1;
            options.ShouldInclude = description => describes(description.ActionDescriptor.EndpointMetadata);
            options.AddDocumentTransformer((document, _, _) =>
            {
                document.Info = new OpenApiInfo
                {
                    Title = title,
                    Version = "1",
                    Description = "Every refusal is RFC 9457 problem details whose `code` member is a stable code of docs/errors.md; "
                        + "the problem's `type` is https://openpurse.org/problems/ and the code.",
                };
                return Task.CompletedTask;
            });
            // An amount has its own JSON converter, which the schema generator cannot see through.
            options.AddSchemaTransformer((schema, context, _) =>
            {
                if (context.JsonTypeInfo.Type == typeof(Money))
                {
                    schema.Type = JsonSchemaType.Object;
                    schema.Properties = new Dictionary<string, IOpenApiSchema>(StringComparer.Ordinal)
                    {
                        ["minorUnits"] = new OpenApiSchema { Type = JsonSchemaType.Integer, Format = "int64" },
                        ["currency"] = new OpenApiSchema { Type = JsonSchemaType.String, Pattern = "^[A-Z]{3}$" },
                    };
                    schema.Required = new HashSet<string>(StringComparer.Ordinal) { "minorUnits", "currency" };
                }

                return Task.CompletedTask;
            });
        });

    /// <summary>
    /// Declares in the document <paramref name="name"/> the bearer-token scheme <paramref name="scheme"/>,
    /// and on every operation whose endpoint names an authorization policy, that it needs that scheme
    /// and which policy it is; operations open to anyone stay without a requirement.
    /// </summary>
    public static IServiceCollection AddBearerSecurity(this IServiceCollection services, string name, string scheme, string description) =>
        services.Configure<OpenApiOptions>(name, options =>
        {
            options.AddDocumentTransformer((document, _, _) =>
            {
                document.Components ??= new OpenApiComponents();
                document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>(StringComparer.Ordinal);
                document.Components.SecuritySchemes[scheme] = new OpenApiSecurityScheme
                {
                    Type = SecuritySchemeType.Http,
                    Scheme = "bearer",
                    Description = description,
                };
                return Task.CompletedTask;
            });
            options.AddOperationTransformer((operation, context, _) =>
            {
                var policies = context.Description.ActionDescriptor.EndpointMetadata.OfType<IAuthorizeData>()
                    .Select(a => a.Policy).OfType<string>().Distinct(StringComparer.Ordinal).ToList();
                if (policies.Count > 0 && context.Document is { } document)
                {
                    operation.Security = [new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(scheme, document)] = [] }];
                    operation.Description = $"{operation.Description}{(operation.Description is null ? "" : " ")}Authorization: {string.Join(", ", policies)}.";
                }

                return Task.CompletedTask;
            });
        });

    /// <summary>
    /// Describes the JSON body of <typeparamref name="T"/> that an endpoint reads by itself (from the
    /// request's stream, with its own refusals). Not <c>Accepts&lt;T&gt;</c>: that metadata would make
    /// routing refuse another media type with 415 before the endpoint answers it.
    /// </summary>
    public static RouteHandlerBuilder ReadsJson<T>(this RouteHandlerBuilder endpoint) =>
        endpoint.AddOpenApiOperationTransformer(async (operation, context, cancellationToken) =>
            operation.RequestBody = new OpenApiRequestBody
            {
                Required = true,
                Content = new Dictionary<string, OpenApiMediaType>(StringComparer.Ordinal)
                {
                    ["application/json"] = new OpenApiMediaType { Schema = await context.GetOrCreateSchemaAsync(typeof(T), null, cancellationToken).ConfigureAwait(false) },
                },
            });

    /// <summary>
    /// Serves the document <paramref name="name"/> at <see cref="PathOf"/>: open to anyone (it says
    /// what the endpoints already answer to anyone who asks), made once and kept, since the
    /// endpoints do not change while the server runs.
    /// </summary>
    public static RouteHandlerBuilder MapApiDocument(this IEndpointRouteBuilder app, string name)
    {
        ArgumentNullException.ThrowIfNull(app);
        var document = new Lazy<Task<string>>(async () =>
        {
            var provider = app.ServiceProvider.GetRequiredKeyedService<IOpenApiDocumentProvider>(name);
            return await (await provider.GetOpenApiDocumentAsync(CancellationToken.None).ConfigureAwait(false))
                .SerializeAsJsonAsync(OpenApiSpecVersion.OpenApi3_1, CancellationToken.None).ConfigureAwait(false);
        });
        return app.MapGet(PathOf(name), async Task<ContentHttpResult> () => TypedResults.Text(await document.Value.ConfigureAwait(false), "application/json; charset=utf-8"))
            .AllowAnonymous()
            .WithName("GetOpenApiDocument" + char.ToUpperInvariant(name[0]) + name[1..])
            .WithSummary($"This OpenAPI document ({name}).")
            .Produces(StatusCodes.Status200OK, contentType: "application/json")
            .Refuses();
    }
}
