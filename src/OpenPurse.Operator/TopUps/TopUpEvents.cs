using Microsoft.Extensions.Logging;
using OpenPurse.Operator.Credit;
using OpenPurse.Protocol;

namespace OpenPurse.Operator.TopUps;

/// <summary>
/// What the top-up classes tell the log and the metrics: a line per state change with the id, the
/// amount and the last four digits, nothing else of the card; and the authorizer's silences.
/// </summary>
internal sealed partial class TopUpEvents(OperatorMetrics metrics, ILogger<TopUpEvents> logger)
{
    /// <summary>A top-up entered <paramref name="state"/>.</summary>
    public void Entered(Guid topUpId, TopUpState state, Money amount, string? lastFour)
    {
        var text = state.ToText();
        LogEntered(topUpId, text, amount, lastFour ?? "?");
        metrics.EnteredTopUp(text);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Top-up {TopUpId} of {Amount} (card ending {LastFour}): {State}")]
    private partial void LogEntered(Guid topUpId, string state, Money amount, string lastFour);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Top-up {TopUpId}: the credit authorizer did not answer ({Result}); the top-up stays authorizing until the same request comes again, or is abandoned")]
    public partial void AuthorizerUnavailable(Guid topUpId, CreditResult result);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Top-up {TopUpId}: no request for it since {Since:O}; abandoned, whatever the credit authorizer approved for it is voided")]
    public partial void Abandoned(Guid topUpId, DateTimeOffset since);

    [LoggerMessage(Level = LogLevel.Error, Message = "Top-up {TopUpId} was abandoned and voided before the credit authorizer approved it as {AuthorizationId}, and the void of that approval was not taken ({Answer}): it is held until it expires")]
    public partial void LateApprovalHeld(Guid topUpId, Guid authorizationId, string answer);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Top-up {TopUpId}: the {Call} was not taken by the credit authorizer ({Answer}); the sweeper asks again")]
    public partial void SettleFailed(Guid topUpId, string call, string answer);
}
