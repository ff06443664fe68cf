using System.Diagnostics;
using System.Net.Sockets;
using OpenPurse.Card;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Testing;
using OpenPurse.Wallet.Purchase;
using OpenPurse.Wallet.Readers;

namespace OpenPurse.Wallet.Tests;

/// <summary>
/// The tests that go through pcscd share one daemon: the PC/SC client library finds one per
/// process (<see cref="PcscDaemon"/>), and its slot holds one card at a time.
/// </summary>
[CollectionDefinition(Name)]
public sealed class PcscDaemonGroup : ICollectionFixture<PcscFixture>
{
    public const string Name = "pcscd";
}

/// <summary>Starts the daemon at the first test that asks for it, so that skipped tests never start it.</summary>
public sealed class PcscFixture : IDisposable
{
    private readonly Lazy<PcscDaemon> _daemon = new(() => PcscDaemon.Start(PcscReader.ListReaders), LazyThreadSafetyMode.ExecutionAndPublication);

    public PcscDaemon Daemon => _daemon.Value;

    public void Dispose()
    {
        if (_daemon.IsValueCreated)
        {
            _daemon.Value.Dispose();
        }
    }
}

/// <summary>One emulated card in the virtual reader's slot 0, for one test: inserted, pulled, put back.</summary>
internal sealed class VirtualSlot : IDisposable
{
    /// <summary>How long pcscd may take to notice a card come or go: it polls vpcd every 400 ms.</summary>
    private const int PresenceTimeoutMs = 10_000;

    private const int PollIntervalMs = 50;

    private readonly PcscDaemon _daemon;
    private readonly EmulatedCard _card;

    private VirtualSlot(PcscDaemon daemon, EmulatedCard card)
    {
        _daemon = daemon;
        _card = card;
    }

    public VpcdCardConnector Connector { get; private set; } = null!;

    /// <summary>Puts <paramref name="card"/> into the reader and waits until PC/SC answers with it.</summary>
    public static VirtualSlot Insert(PcscDaemon daemon, EmulatedCard card)
    {
        var slot = new VirtualSlot(daemon, card);
        slot.PutBack();
        return slot;
    }

    /// <summary>A fresh connection to the card through PC/SC.</summary>
    public static PcscReader Open() => PcscReader.Open(PcscDaemon.ReaderName);

    /// <summary>Puts the card (back) into the slot and waits until the card PC/SC reaches is this one.</summary>
    public void PutBack()
    {
        Connector?.Dispose();
        Connector = VpcdCardConnector.Attach(_card, new NetworkStream(_daemon.ConnectSlot(), ownsSocket: true));
        Await(() =>
        {
            using var reader = Open();
            var card = new WalletCard(reader);
            card.Select();
            return card.Status().CardId == _card.CardId;
        }, "the card to answer through PC/SC");
    }

    /// <summary>Pulls the card and waits until PC/SC sees the slot empty, so that the next card cannot meet this one's state.</summary>
    public void Pull()
    {
        Connector.Pull();
        Await(() =>
        {
            try
            {
                using var reader = Open();
                return false;
            }
            catch (WalletException e) when (e.Code == "card.not_found")
            {
                return true;
            }
        }, "PC/SC to see the slot empty");
    }

    /// <summary>Leaves the slot empty for the next test, even when the card was pulled already (pcscd may not have noticed yet).</summary>
    public void Dispose()
    {
        Pull();
        Connector.Dispose();
    }

    private void Await(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        Exception? last = null;
        while (clock.ElapsedMilliseconds < PresenceTimeoutMs)
        {
            try
            {
                if (condition())
                {
                    return;
                }
            }
            catch (Exception e) when (e is WalletException or CardRemovedException or PcscException)
            {
                last = e; // Not yet: pcscd has not polled the slot since it changed.
            }

            Thread.Sleep(PollIntervalMs);
        }

        throw new TimeoutException($"Waited {PresenceTimeoutMs} ms for {what} (last: {last?.Message ?? "none"}). pcscd said: {_daemon.Output}");
    }
}
