using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Purse;
using OpenPurse.Testing;

namespace OpenPurse.Card.Tests;

/// <summary>
/// Anti-tearing: power is cut after every possible number of bytes of the commit that a debit or a
/// credit makes. Afterwards the card holds exactly the old state or exactly the new one, never a
/// mix, its counter never went back, and when it answered 9000 it holds the new state.
/// </summary>
public sealed class TearingTest
{
    public static TheoryData<ValueKind, int> Cases => new()
    {
        { ValueKind.Debit, 0 },
        { ValueKind.Debit, 1 }, // one more commit first, so the torn write lands in the other slot
        { ValueKind.Credit, 0 },
        { ValueKind.Credit, 1 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Move_PowerCutAtEveryByteOfTheWrite_LeavesOldOrNewStateOnly(ValueKind kind, int extraCommits)
    {
        using var kit = new CardKit();
        kit.Credit(Eur.Of(5_000));
        for (var i = 0; i < extraCommits; i++)
        {
            kit.Debit(Eur.Of(1));
        }

        var template = kit.ReadFileWhileOff();
        var slotLength = new CardMemory(new MemoryStream(), CardState.ImageLength).SlotLength;

        // The reference: the same move with no power cut.
        var (oldImage, newImage, uncut) = CutAfter(kit, template, kind, int.MaxValue);
        Assert.Equal(StatusWord.Ok, uncut);
        Assert.NotEqual(oldImage, newImage);
        var oldCounter = CardState.FromBytes(oldImage).Counter;

        var keptOld = 0;
        for (var cut = 0; cut <= slotLength; cut++)
        {
            var (before, after, answer) = CutAfter(kit, template, kind, cut);

            Assert.Equal(oldImage, before);
            Assert.True(after.SequenceEqual(oldImage) || after.SequenceEqual(newImage), $"A cut after {cut} bytes left a third state.");
            Assert.True(CardState.FromBytes(after).Counter >= oldCounter, "The counter went back.");
            Assert.True(answer is StatusWord.Ok or StatusWord.MemoryFailure, $"Answer {answer} after a cut at {cut}.");
            if (answer == StatusWord.Ok)
            {
                Assert.Equal(newImage, after);
            }

            keptOld += after.SequenceEqual(oldImage) ? 1 : 0;
        }

        // A cut anywhere short of the whole slot keeps the old state, unless the unwritten tail
        // happened to hold the right bytes already (then the write was in fact complete).
        Assert.InRange(keptOld, slotLength - 8, slotLength);
    }

    // Restores the card file, cuts the power after `cut` bytes of the next write, makes the move,
    // then powers up again: the card's state before, after, and what it answered.
    private static (byte[] Before, byte[] After, StatusWord Answer) CutAfter(CardKit kit, byte[] template, ValueKind kind, int cut)
    {
        // INITIALIZE UPDATE commits the session counter first (one whole slot); the cut falls in the move's commit.
        var budget = cut == int.MaxValue ? cut : CardKit.SlotLength + cut;
        kit.PowerCycle(path => EmulatedCard.Open(new TearingStream(new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None), budget)), template);
        var before = kit.Image();
        var answer = kit.Move(kind, Eur.Of(700), transactionRef: s_fixedRef).Status;
        kit.PowerCycle();
        return (before, kit.Image(), answer);
    }

    private static readonly Guid s_fixedRef = new("0195f2a4-0000-7000-8000-000000000001");

    [Fact]
    public void Open_BothSlotsCorrupt_RefusesToPretend()
    {
        using var kit = new CardKit();
        var length = (int)new FileInfo(kit.Path).Length;

        Assert.Throws<InvalidDataException>(() => kit.PowerCycle(fileWhileOff: new byte[length]));
        kit.PowerCycle(_ => EmulatedCard.Create(new MemoryStream(), kit.Issuer.Personalize(CardKit.TestCardId)));
    }

    [Fact]
    public void AfterATornWrite_TheCardKeepsWorking()
    {
        using var kit = new CardKit();
        kit.Credit(Eur.Of(5_000));
        kit.PowerCycle(path => EmulatedCard.Open(new TearingStream(new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None), CardKit.SlotLength + 100)));
        Assert.Equal(StatusWord.MemoryFailure, kit.Debit(Eur.Of(700)).Status);

        kit.PowerCycle();

        Assert.Equal(Eur.Of(5_000), kit.Balance(Currency.Eur));
        Assert.Equal(StatusWord.Ok, kit.Debit(Eur.Of(700)).Status);
        Assert.Equal(Eur.Of(4_300), kit.Balance(Currency.Eur));
        Assert.Equal(2u, kit.Status().Counter);
    }

    [Fact]
    public void InitializeUpdate_PowerCutInItsWrite_AnswersMemoryFailureAndTheCardKeepsItsState()
    {
        using var kit = new CardKit();
        kit.Credit(Eur.Of(5_000));
        var sessionBefore = kit.Card.State.SessionCounter;
        var image = kit.Image();
        kit.PowerCycle(path => EmulatedCard.Open(new TearingStream(new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None), 100)));
        kit.Send(CardHostSession.Select());

        Assert.Equal(StatusWord.MemoryFailure, kit.Send(CardHostSession.InitializeUpdate(new byte[8])).Status);

        kit.PowerCycle();
        Assert.Equal(sessionBefore, kit.Card.State.SessionCounter);
        Assert.Equal(image, kit.Image());
        Assert.Equal(StatusWord.Ok, kit.Debit(Eur.Of(1)).Status);
    }

}
