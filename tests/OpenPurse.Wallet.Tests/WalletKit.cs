using OpenPurse.Card;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Wallet.Purchase;
using OpenPurse.Wallet.Readers;
using OpenPurse.Wallet.Tests.Fakes;

namespace OpenPurse.Wallet.Tests;

/// <summary>
/// One wallet's world: a fake operator (playing the security module too) and a fake store, both as
/// HTTP handlers, and a real emulated card in a private temporary directory, topped up with 100.00 EUR.
/// </summary>
internal sealed class WalletKit : IDisposable
{
    public static readonly CardId TestCardId = CardId.FromSerial(940_000_000_000_123);
    public static readonly Uri StoreUri = new("http://store.test/");
    public static readonly Uri OperatorUri = new("http://operator.test/");

    private readonly string _directory = Directory.CreateTempSubdirectory("openpurse-wallet-").FullName;
    private readonly HttpClient _storeHttp;
    private readonly HttpClient _operatorHttp;

    public WalletKit(long topUpMinor = 10_000)
    {
        Store = new FakeStore(() => Operator.KeySet);
        Operator.Register(Store);
        CardPath = Path.Combine(_directory, "card.bin");
        Card = EmulatedCard.Create(CardPath, Operator.Personalize(TestCardId));
        if (topUpMinor > 0)
        {
            Operator.TopUp(c => ResponseApdu.Parse(Card.Transmit(c.ToBytes())), Eur(topUpMinor));
        }

        Reader = new RecordingReader(new InProcessReader(Card));
        _storeHttp = new HttpClient(Store, disposeHandler: false) { BaseAddress = StoreUri };
        _operatorHttp = new HttpClient(Operator, disposeHandler: false) { BaseAddress = OperatorUri };
    }

    public FakeOperator Operator { get; } = new();

    public FakeStore Store { get; }

    public string CardPath { get; }

    public EmulatedCard Card { get; }

    /// <summary>The reader the flow uses; it records every command's INS.</summary>
    public RecordingReader Reader { get; }

    public static Money Eur(long cents) => new(cents, Currency.Eur);

    public PurchaseFlow Flow(IPurchasePrompt? prompt = null) =>
        new(_storeHttp, _operatorHttp, Reader, prompt ?? new AutoPrompt()) { CompletionRetryDelay = TimeSpan.Zero };

    public Task<PurchaseResult> BuyAsync(SettlementProfile profile = SettlementProfile.Signed, IPurchasePrompt? prompt = null, int quantity = 1) =>
        Flow(prompt).RunAsync(new PurchaseRequest(FakeStore.Sku, quantity, Profile: profile));

    /// <summary>The card's status read directly (not through the recording reader).</summary>
    public PurseStatus CardStatus()
    {
        Assert.True(ResponseApdu.Parse(Card.Transmit(CardHostSession.Select().ToBytes())).IsOk);
        var answer = ResponseApdu.Parse(Card.Transmit(CardHostSession.GetData().ToBytes()));
        Assert.True(PurseStatus.TryParse(answer.Data, out var status));
        return status;
    }

    public Money Balance() => CardStatus().BalanceOf(Currency.Eur) ?? Eur(0);

    public void Dispose()
    {
        _storeHttp.Dispose();
        _operatorHttp.Dispose();
        Card.Dispose();
        Store.Dispose();
        Operator.Dispose();
        Directory.Delete(_directory, recursive: true);
    }
}

/// <summary>Records the instruction byte of every command, to say exactly what reached the card.</summary>
internal sealed class RecordingReader(ICardReader inner) : ICardReader
{
    private readonly List<byte> _instructions = [];

    public string Name => inner.Name;

    public IReadOnlyList<byte> Instructions => _instructions;

    public ResponseApdu Transmit(CommandApdu command)
    {
        _instructions.Add(command.Ins);
        return inner.Transmit(command);
    }
}

/// <summary>Changes one byte of a compact JWS: one character in the middle of its payload.</summary>
internal static class Tamper
{
    public static string OneByte(string compact)
    {
        var parts = compact.Split('.');
        var payload = parts[1].ToCharArray();
        var i = payload.Length / 2;
        payload[i] = payload[i] == 'A' ? 'B' : 'A';
        return $"{parts[0]}.{new string(payload)}.{parts[2]}";
    }
}

/// <summary>
/// The card leaves the reader once it has run <paramref name="instruction"/> (a DEBIT, a CREDIT):
/// the GET DATA that reads the balance back finds no card.
/// </summary>
internal sealed class PulledAfter(byte instruction, ICardReader inner) : ICardReader
{
    private bool _ran;

    public string Name => inner.Name;

    public ResponseApdu Transmit(CommandApdu command)
    {
        if (_ran)
        {
            throw new CardRemovedException("The card left the reader.");
        }

        _ran = command.Ins == instruction;
        return inner.Transmit(command);
    }
}

/// <summary>The network between the wallet and the operator cuts the completion of a value order.</summary>
internal sealed class NoCompletion(HttpMessageHandler inner) : DelegatingHandler(inner)
{
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
        request.RequestUri!.AbsolutePath.EndsWith("/completion", StringComparison.Ordinal)
            ? throw new HttpRequestException("The connection was cut.")
            : base.SendAsync(request, cancellationToken);
}
