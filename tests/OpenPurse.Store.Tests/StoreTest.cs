namespace OpenPurse.Store.Tests;

/// <summary>A real store (a mall of three members) against a fake operator, fresh for every test.</summary>
public abstract class StoreTest : IAsyncLifetime
{
    private protected FakeOperator Operator { get; private set; } = null!;

    private protected TestStore Store { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Operator = await FakeOperator.StartAsync();
        Store = await TestStore.StartAsync(Operator);
    }

    public async Task DisposeAsync()
    {
        await Store.DisposeAsync();
        await Operator.DisposeAsync();
    }
}
