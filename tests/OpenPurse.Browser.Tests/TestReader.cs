using OpenPurse.Card;
using OpenPurse.Demo;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Purse;

namespace OpenPurse.Browser.Tests;

/// <summary>
/// The agent's reader in these tests: the demo's card slot, which the test puts the card on when a
/// person would, and a hand on the card that can hold it still for a moment, so that a screen
/// shown only while the card works (FIG. 19, FIG. 30) stays on the page long enough to be seen.
/// </summary>
internal sealed class TestReader : ICardReader, IDisposable
{
    private readonly CardSlot _slot = new();
    private readonly ManualResetEventSlim _free = new(initialState: true);

    // How many more commands the card answers before it is held; -1: no limit.
    private int _passes = -1;

    public string Name => _slot.Name;

    /// <summary>Puts the card on the reader.</summary>
    public void Insert(EmulatedCard card) => _slot.Insert(card);

    /// <summary>From now on the card answers nothing until <see cref="Release"/>.</summary>
    public void Hold() => HoldAfter(0);

    /// <summary>The card answers <paramref name="commands"/> more commands, then nothing until <see cref="Release"/>.</summary>
    public void HoldAfter(int commands)
    {
        lock (_free)
        {
            _passes = commands;
            if (commands == 0)
            {
                _free.Reset();
            }
        }
    }

    public void Release()
    {
        lock (_free)
        {
            _passes = -1;
            _free.Set();
        }
    }

    public ResponseApdu Transmit(CommandApdu command)
    {
        // Commands to an empty reader fail as they would, and count for nothing.
        if (!_slot.HasCard)
        {
            return _slot.Transmit(command);
        }

        lock (_free)
        {
            if (_passes == 0)
            {
                _free.Reset();
            }
            else if (_passes > 0)
            {
                _passes--;
            }
        }

        // Never for ever: a test that forgot to release fails on its own timeout, not the run's.
        if (!_free.Wait(TimeSpan.FromSeconds(60)))
        {
            throw new CardRemovedException("The test held the card for too long.");
        }

        return _slot.Transmit(command);
    }

    /// <summary>The card's balance in euros, read straight from it (SELECT, GET DATA); only while the agent is not talking to it.</summary>
    public Money Balance()
    {
        Assert.True(_slot.Transmit(CardHostSession.Select()).IsOk);
        var answer = _slot.Transmit(CardHostSession.GetData());
        if (!answer.IsOk || !PurseStatus.TryParse(answer.Data, out var status))
        {
            throw new InvalidOperationException($"GET DATA answered {answer}.");
        }

        return status.BalanceOf(Currency.Eur) ?? Money.Zero(Currency.Eur);
    }

    public void Dispose()
    {
        _free.Set();
        _slot.Dispose();
        _free.Dispose();
    }
}
