using System.Diagnostics;
using System.Globalization;
using Dapper;
using Microsoft.Data.Sqlite;
using OpenPurse.Hosting;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;
using OpenPurse.Storage;

namespace OpenPurse.Store.Orders;

/// <summary>
/// An order's life: billed (SIG1 issued), then either paid (ACN checked, receipt issued) or cancelled
/// (the operator's void notice says its settlement will never be paid). Nothing else, and neither
/// end changes again.
/// </summary>
internal enum OrderState
{
    Billed,
    Paid,

    /// <summary>Billed, and voided by the operator: never paid, never delivered (a row in <c>order_voids</c>).</summary>
    Cancelled,
}

/// <summary>The operator's void of an order's settlement, as recorded (the first one, if it came more than once).</summary>
/// <param name="SettlementId">The settlement the operator voided.</param>
/// <param name="VoidNotice">The void notice (JWS, signed by the operator) that said so.</param>
/// <param name="Reason">The notice's reason, e.g. <c>not_run</c> or <c>expired</c>.</param>
/// <param name="VoidedAt">When the operator voided it (the notice's time).</param>
internal sealed record OrderVoid(Guid SettlementId, string VoidNotice, string Reason, DateTimeOffset VoidedAt);

/// <summary>An order as stored.</summary>
/// <param name="OrderNo">The issuer's order number.</param>
/// <param name="StoreId">The (member) store that sells and signs.</param>
/// <param name="Bill">BILL+SIG1 as issued.</param>
/// <param name="Amount">The bill's total.</param>
/// <param name="State">Billed, paid or cancelled.</param>
/// <param name="SettlementId">The operator's settlement that paid it.</param>
/// <param name="CompletionNotice">ACN+SIG3 that proved the payment.</param>
/// <param name="Receipt">Receipt+SIG4 the store issued for it: the buyer's key to the download.</param>
/// <param name="CreatedAt">When it was billed.</param>
/// <param name="PaidAt">When the store accepted the ACN.</param>
/// <param name="Void">The operator's void, for a cancelled order.</param>
internal sealed record OrderRecord(
    string OrderNo, string StoreId, string Bill, Money Amount, OrderState State,
    Guid? SettlementId, string? CompletionNotice, string? Receipt, DateTimeOffset CreatedAt, DateTimeOffset? PaidAt, OrderVoid? Void = null);

/// <summary>A refund of an order as the store recorded it.</summary>
/// <param name="RefundId">The refund's id, sent to the operator (its idempotency key).</param>
/// <param name="OrderNo">The refunded order.</param>
/// <param name="Amount">What goes back to the card.</param>
/// <param name="Reason">Why, as the store owner said, or null.</param>
/// <param name="State"><see cref="Requested"/> (the operator's answer is awaited), <c>owed</c>, <c>credited</c>, or <see cref="Refused"/>.</param>
/// <param name="Notice">The operator's signed refund notice, once answered.</param>
/// <param name="RefusedCode">The operator's problem code, for a refused refund.</param>
/// <param name="RequestedAt">When the store owner asked.</param>
internal sealed record StoredRefund(Guid RefundId, string OrderNo, Money Amount, string? Reason, string State, string? Notice, string? RefusedCode, DateTimeOffset RequestedAt)
{
    public const string Requested = "requested";

    public const string Refused = "refused";

    /// <summary>Whether it counts toward what was paid: every refund but a refused one.</summary>
    public bool Counts => State != Refused;
}

/// <summary>A refund recorded as requested, with its paid order.</summary>
internal sealed record RequestedRefund(OrderRecord Order, StoredRefund Refund);

/// <summary>What recording a payment did.</summary>
internal enum PaymentResult
{
    /// <summary>The order was billed and is now paid with a new receipt.</summary>
    Recorded,

    /// <summary>The same settlement was recorded before; its receipt stands.</summary>
    AlreadyRecorded,

    /// <summary>Another settlement paid the order: nothing changed.</summary>
    PaidByAnotherSettlement,

    /// <summary>The settlement already paid another order (a settlement pays one order): nothing changed.</summary>
    SettlementPaidAnotherOrder,

    /// <summary>The operator voided the order's settlement: the order is cancelled and stays so; nothing changed.</summary>
    OrderVoided,
}

/// <summary>What recording a void did.</summary>
internal enum VoidResult
{
    /// <summary>The order was billed and is now cancelled.</summary>
    Recorded,

    /// <summary>A void was recorded for the order before (for this or another settlement); the first stands.</summary>
    AlreadyRecorded,

    /// <summary>The order is paid: the payment stands and nothing changed.</summary>
    OrderPaid,
}

/// <summary>
/// The store's orders in SQLite (<c>store.db</c>): WAL, <c>synchronous=FULL</c> so an issued order number,
/// a recorded payment or a recorded void survives a power cut, and one write transaction per change
/// (the changes of concurrent requests commit in groups, see <see cref="SqliteCommitGroup"/>).
/// </summary>
internal sealed class OrderDatabase
{
    public const string FileName = "store.db";

    /// <summary>1: orders and order numbers; 2: the operator's voids (<c>order_voids</c>); 3: refunds (<c>order_refunds</c>).</summary>
    private const int SchemaVersion = 3;

    /// <summary>An order with its void, if any: <c>SELECT {OrderSelect} WHERE o.order_no = @orderNo</c>.</summary>
    private const string OrderSelect =
        "o.order_no AS OrderNo, o.store_id AS StoreId, o.bill AS Bill, o.amount_minor AS AmountMinor, o.currency AS Currency, o.state AS State, "
        + "o.settlement_id AS SettlementId, o.completion_notice AS CompletionNotice, o.receipt AS Receipt, o.created_at AS CreatedAt, o.paid_at AS PaidAt, "
        + "v.settlement_id AS VoidSettlementId, v.void_notice AS VoidNotice, v.reason AS VoidReason, v.voided_at AS VoidedAt "
        + "FROM orders o LEFT JOIN order_voids v ON v.order_no = o.order_no";

    private readonly SqliteFile _file;

    // The store's writers take turns in the process and commit in groups.
    private readonly SqliteCommitGroup _writes;

    public OrderDatabase(string dataDirectory)
    {
        // Every order, with what was bought and by which settlement; order_voids references orders.
        _file = new SqliteFile(dataDirectory, FileName, foreignKeys: true);
        _writes = new SqliteCommitGroup(_file.OpenAsync);
    }

    /// <summary>
    /// Creates the schema on first start, brings an older database up to this version (every step only
    /// adds tables, so the statements below serve both), and refuses a database from a newer version.
    /// </summary>
    /// <exception cref="InvalidOperationException">The database's schema is newer than this program.</exception>
    public void Initialize()
    {
        using var connection = _file.OpenForSchema(SchemaVersion, out _);
        using var transaction = connection.BeginTransaction();
        connection.Execute(
            """
            CREATE TABLE IF NOT EXISTS orders (
                order_no TEXT PRIMARY KEY NOT NULL,
                store_id TEXT NOT NULL,
                bill TEXT NOT NULL,
                amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
                currency TEXT NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('billed', 'paid')),
                settlement_id TEXT,
                completion_notice TEXT,
                receipt TEXT,
                created_at TEXT NOT NULL,
                paid_at TEXT,
                -- A paid order has everything that proves it; a billed one has none of it.
                CHECK ((state = 'paid') = (settlement_id IS NOT NULL AND completion_notice IS NOT NULL AND receipt IS NOT NULL AND paid_at IS NOT NULL)),
                CHECK (state = 'paid' OR (settlement_id IS NULL AND completion_notice IS NULL AND receipt IS NULL AND paid_at IS NULL))
            ) STRICT;
            -- One settlement pays one order.
            CREATE UNIQUE INDEX IF NOT EXISTS orders_settlement ON orders (settlement_id) WHERE settlement_id IS NOT NULL;
            CREATE TABLE IF NOT EXISTS order_sequences (
                issuer TEXT PRIMARY KEY NOT NULL,
                last_value INTEGER NOT NULL CHECK (last_value > 0)
            ) STRICT;
            -- Version 2. The operator's word that an order's settlement will never be paid: the order is
            -- cancelled. Only a billed order gets one (a paid order's payment stands), and the first stays.
            CREATE TABLE IF NOT EXISTS order_voids (
                order_no TEXT PRIMARY KEY NOT NULL REFERENCES orders (order_no),
                settlement_id TEXT NOT NULL,
                void_notice TEXT NOT NULL,
                reason TEXT NOT NULL,
                voided_at TEXT NOT NULL
            ) STRICT;
            -- Version 3. Refunds of paid orders: recorded as requested before the operator is asked
            -- (so that a retry sends the same refund id), then with the operator's signed notice, or
            -- refused with its code. Requested, owed and credited ones count toward what was paid.
            CREATE TABLE IF NOT EXISTS order_refunds (
                refund_id TEXT PRIMARY KEY NOT NULL,
                order_no TEXT NOT NULL REFERENCES orders (order_no),
                amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
                currency TEXT NOT NULL,
                reason TEXT,
                state TEXT NOT NULL CHECK (state IN ('requested', 'owed', 'credited', 'refused')),
                notice TEXT,
                refused_code TEXT,
                requested_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            ) STRICT;
            CREATE INDEX IF NOT EXISTS order_refunds_by_order ON order_refunds (order_no);
            """,
            transaction: transaction);
        connection.Execute(string.Create(CultureInfo.InvariantCulture, $"PRAGMA user_version = {SchemaVersion};"), transaction: transaction);
        transaction.Commit();
    }

    /// <summary>
    /// Issues the issuer's next order number and stores the order under it, in one transaction, so a
    /// number is never given twice, even across restarts.
    /// </summary>
    /// <param name="issuer">The mall, or the store itself.</param>
    /// <param name="storeId">The (member) store.</param>
    /// <param name="amount">The bill's total.</param>
    /// <param name="createdAt">Now.</param>
    /// <param name="signBill">Makes BILL+SIG1 for the new order number.</param>
    /// <param name="cancellationToken">Cancels only before the write begins (see <see cref="SqliteCommitGroup"/>).</param>
    public async Task<OrderRecord> CreateOrderAsync(string issuer, string storeId, Money amount, DateTimeOffset createdAt, Func<string, string> signBill, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(signBill);
        Debug.Assert(amount.IsPositive, "Orders are for a positive amount.");
        await using var write = await _writes.BeginAsync(cancellationToken).ConfigureAwait(false);
        var (connection, transaction) = (write.Connection, write.Transaction);
        var sequence = await connection.ExecuteScalarAsync<long>(new CommandDefinition(
            """
            INSERT INTO order_sequences (issuer, last_value) VALUES (@issuer, 1)
            ON CONFLICT (issuer) DO UPDATE SET last_value = last_value + 1
            RETURNING last_value;
            """,
            new { issuer }, transaction)).ConfigureAwait(false);
        Debug.Assert(sequence > 0, "Sequences start at 1.");

        var orderNo = FormatOrderNo(issuer, sequence);
        var bill = signBill(orderNo);
        var inserted = await connection.ExecuteAsync(new CommandDefinition(
            """
            INSERT INTO orders (order_no, store_id, bill, amount_minor, currency, state, created_at)
            VALUES (@orderNo, @storeId, @bill, @amountMinor, @currency, 'billed', @createdAt);
            """,
            new { orderNo, storeId, bill, amountMinor = amount.MinorUnits, currency = amount.Currency.Code, createdAt = StoredTime.Format(createdAt) },
            transaction)).ConfigureAwait(false);
        Debug.Assert(inserted == 1, "One order per insert.");
        await write.CommitAsync().ConfigureAwait(false);
        return new OrderRecord(orderNo, storeId, bill, amount, OrderState.Billed, null, null, null, createdAt, null);
    }

    public async Task<OrderRecord?> FindAsync(string orderNo, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        var row = await connection.QuerySingleOrDefaultAsync<OrderRow>(new CommandDefinition(
            $"SELECT {OrderSelect} WHERE o.order_no = @orderNo;", new { orderNo }, cancellationToken: cancellationToken)).ConfigureAwait(false);
        return row?.ToRecord();
    }

    /// <summary>
    /// A page of a store's paid orders, in the ordinal order of their settlement ids' text (as a
    /// statement lists them; the settlement index serves it), after <paramref name="after"/>.
    /// </summary>
    /// <param name="storeId">The (member) store.</param>
    /// <param name="after">The last settlement of the page before; null for the first page.</param>
    /// <param name="count">The most orders to return.</param>
    /// <param name="cancellationToken">The request's.</param>
    public async Task<IReadOnlyList<OrderRecord>> ListPaidAsync(string storeId, Guid? after, int count, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        // Ids are stored as lowercase "D" text; SQLite compares text bytewise, the ordinal order.
        var rows = await connection.QueryAsync<OrderRow>(new CommandDefinition(
            $"""
            SELECT {OrderSelect} WHERE o.settlement_id > @after AND o.store_id = @storeId AND o.state = 'paid'
            ORDER BY o.settlement_id LIMIT @count;
            """,
            new { storeId, after = after?.ToString("D") ?? "", count }, cancellationToken: cancellationToken)).ConfigureAwait(false);
        return [.. rows.Select(row => row.ToRecord())];
    }

    /// <summary>
    /// Marks a billed order paid by a settlement, with the ACN and the receipt made by
    /// <paramref name="makeReceipt"/>, in one transaction; idempotent for the same settlement.
    /// </summary>
    /// <returns>What happened, and the order as it now is.</returns>
    public async Task<(PaymentResult Result, OrderRecord Order)> RecordPaymentAsync(
        string orderNo, Guid settlementId, string completionNotice, DateTimeOffset paidAt, Func<string> makeReceipt, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(makeReceipt);
        // In this process's turn to write, under the database's write lock: two deliveries of one
        // notice cannot both see 'billed'. Its statements are not cancellable: SQLite interrupts a
        // statement by rolling back the whole transaction, which is the group's.
        await using var write = await _writes.BeginAsync(cancellationToken).ConfigureAwait(false);
        var (connection, transaction) = (write.Connection, write.Transaction);
        var row = await connection.QuerySingleOrDefaultAsync<OrderRow>(new CommandDefinition(
            $"SELECT {OrderSelect} WHERE o.order_no = @orderNo;", new { orderNo }, transaction)).ConfigureAwait(false)
            ?? throw new InvalidOperationException($"Order '{orderNo}' vanished; orders are never deleted.");
        var order = row.ToRecord();
        if (order.State == OrderState.Cancelled)
        {
            return (PaymentResult.OrderVoided, order);
        }

        if (order.State == OrderState.Paid)
        {
            Debug.Assert(order.SettlementId is not null && order.Receipt is not null, "A paid order has its settlement and receipt.");
            return (order.SettlementId == settlementId ? PaymentResult.AlreadyRecorded : PaymentResult.PaidByAnotherSettlement, order);
        }

        var elsewhere = await connection.ExecuteScalarAsync<string?>(new CommandDefinition(
            "SELECT order_no FROM orders WHERE settlement_id = @settlementId;",
            new { settlementId = settlementId.ToString("D") }, transaction)).ConfigureAwait(false);
        if (elsewhere is not null)
        {
            return (PaymentResult.SettlementPaidAnotherOrder, order);
        }

        var receipt = makeReceipt();
        var updated = await connection.ExecuteAsync(new CommandDefinition(
            """
            UPDATE orders SET state = 'paid', settlement_id = @settlementId, completion_notice = @completionNotice, receipt = @receipt, paid_at = @paidAt
            WHERE order_no = @orderNo AND state = 'billed' AND NOT EXISTS (SELECT 1 FROM order_voids WHERE order_no = @orderNo);
            """,
            new { orderNo, settlementId = settlementId.ToString("D"), completionNotice, receipt, paidAt = StoredTime.Format(paidAt) },
            transaction)).ConfigureAwait(false);
        Debug.Assert(updated == 1, "The order was read as billed inside this transaction.");
        await write.CommitAsync().ConfigureAwait(false);
        return (PaymentResult.Recorded, order with { State = OrderState.Paid, SettlementId = settlementId, CompletionNotice = completionNotice, Receipt = receipt, PaidAt = paidAt });
    }

    /// <summary>
    /// Records the operator's void of a billed order's settlement, which cancels the order, in one
    /// transaction; idempotent: a second void (of this or another settlement) keeps the first.
    /// A paid order is not touched.
    /// </summary>
    /// <returns>What happened, and the order as it now is.</returns>
    public async Task<(VoidResult Result, OrderRecord Order)> RecordVoidAsync(
        string orderNo, Guid settlementId, string voidNotice, string reason, DateTimeOffset voidedAt, CancellationToken cancellationToken)
    {
        // In the turn to write, as for a payment: a void and a completion of one order cannot both see 'billed'.
        await using var write = await _writes.BeginAsync(cancellationToken).ConfigureAwait(false);
        var (connection, transaction) = (write.Connection, write.Transaction);
        var row = await connection.QuerySingleOrDefaultAsync<OrderRow>(new CommandDefinition(
            $"SELECT {OrderSelect} WHERE o.order_no = @orderNo;", new { orderNo }, transaction)).ConfigureAwait(false)
            ?? throw new InvalidOperationException($"Order '{orderNo}' vanished; orders are never deleted.");
        var order = row.ToRecord();
        switch (order.State)
        {
            case OrderState.Paid:
                return (VoidResult.OrderPaid, order);
            case OrderState.Cancelled:
                return (VoidResult.AlreadyRecorded, order);
        }

        var inserted = await connection.ExecuteAsync(new CommandDefinition(
            """
            INSERT INTO order_voids (order_no, settlement_id, void_notice, reason, voided_at)
            VALUES (@orderNo, @settlementId, @voidNotice, @reason, @voidedAt);
            """,
            new { orderNo, settlementId = settlementId.ToString("D"), voidNotice, reason, voidedAt = StoredTime.Format(voidedAt) },
            transaction)).ConfigureAwait(false);
        Debug.Assert(inserted == 1, "The order was read without a void inside this transaction.");
        await write.CommitAsync().ConfigureAwait(false);
        return (VoidResult.Recorded, order with { State = OrderState.Cancelled, Void = new OrderVoid(settlementId, voidNotice, reason, voidedAt) });
    }

    /// <summary>
    /// Records a refund of a paid order as requested, in the turn to write, so that two refunds of one
    /// order never add up past what was paid: <paramref name="amount"/> (null: all that is left), or
    /// the refund of the same amount and reason still waiting for the operator's answer, sent again.
    /// </summary>
    /// <returns>The order and the requested refund, or why not (nothing written).</returns>
    public async Task<Result<RequestedRefund>> RequestRefundAsync(string orderNo, Money? amount, string? reason, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var write = await _writes.BeginAsync(cancellationToken).ConfigureAwait(false);
        var (connection, transaction) = (write.Connection, write.Transaction);
        var row = await connection.QuerySingleOrDefaultAsync<OrderRow>(new CommandDefinition(
            $"SELECT {OrderSelect} WHERE o.order_no = @orderNo;", new { orderNo }, transaction)).ConfigureAwait(false);
        if (row is null)
        {
            return StoreRefusals.OrderNotFound(orderNo);
        }

        var order = row.ToRecord();
        if (order.State != OrderState.Paid)
        {
            return new Refusal(ProblemCode.RefundNotPaid, $"Order {orderNo} is {(order.State == OrderState.Billed ? "billed" : "cancelled")}, not paid: there is nothing to refund.");
        }

        var refunds = await RefundsAsync(connection, transaction, orderNo).ConfigureAwait(false);
        if (refunds.FirstOrDefault(r => r.State == StoredRefund.Requested && (amount is null || r.Amount == amount) && r.Reason == reason) is { } waiting)
        {
            return new RequestedRefund(order, waiting);
        }

        var counted = refunds.Where(r => r.Counts).Sum(r => r.Amount.MinorUnits);
        var asked = amount ?? new Money(order.Amount.MinorUnits - counted, order.Amount.Currency);
        if (!asked.IsPositive || !asked.Currency.Equals(order.Amount.Currency))
        {
            return new Refusal(ProblemCode.RefundAmountInvalid, amount is null
                ? $"Order {orderNo} is refunded in full already."
                : $"A refund of order {orderNo} is a positive amount in {order.Amount.Currency.Code}.");
        }

        if (counted + asked.MinorUnits > order.Amount.MinorUnits)
        {
            return new Refusal(ProblemCode.RefundExceedsPaid,
                $"Order {orderNo} paid {order.Amount}, of which {new Money(counted, order.Amount.Currency)} is refunded or asked: at most {new Money(order.Amount.MinorUnits - counted, order.Amount.Currency)} is left.");
        }

        var refund = new StoredRefund(Guid.CreateVersion7(now), orderNo, asked, reason, StoredRefund.Requested, null, null, now);
        await connection.ExecuteAsync(new CommandDefinition(
            """
            INSERT INTO order_refunds (refund_id, order_no, amount_minor, currency, reason, state, requested_at, updated_at)
            VALUES (@refundId, @orderNo, @amountMinor, @currency, @reason, 'requested', @now, @now);
            """,
            new { refundId = refund.RefundId.ToString("D"), orderNo, amountMinor = asked.MinorUnits, currency = asked.Currency.Code, reason, now = StoredTime.Format(now) },
            transaction)).ConfigureAwait(false);
        await write.CommitAsync().ConfigureAwait(false);
        return new RequestedRefund(order, refund);
    }

    /// <summary>
    /// Records the operator's answer to a requested or owed refund: its notice and state, or its
    /// refusal's code. A credited or refused refund is final: an answer that arrives after it (a
    /// request sent again that raced a read) changes nothing.
    /// </summary>
    public async Task RecordRefundAnswerAsync(Guid refundId, string state, string? notice, string? refusedCode, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var write = await _writes.BeginAsync(cancellationToken).ConfigureAwait(false);
        await write.Connection.ExecuteAsync(new CommandDefinition(
            """
            UPDATE order_refunds SET state = @state, notice = COALESCE(@notice, notice), refused_code = @refusedCode, updated_at = @now
            WHERE refund_id = @refundId AND state IN ('requested', 'owed');
            """,
            new { refundId = refundId.ToString("D"), state, notice, refusedCode, now = StoredTime.Format(now) },
            write.Transaction)).ConfigureAwait(false);
        await write.CommitAsync().ConfigureAwait(false);
    }

    /// <summary>An order's refunds, oldest first.</summary>
    public async Task<IReadOnlyList<StoredRefund>> RefundsOfAsync(string orderNo, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        return await RefundsAsync(connection, null, orderNo).ConfigureAwait(false);
    }

    private static async Task<IReadOnlyList<StoredRefund>> RefundsAsync(SqliteConnection connection, SqliteTransaction? transaction, string orderNo)
    {
        var rows = await connection.QueryAsync<(string RefundId, long AmountMinor, string Currency, string? Reason, string State, string? Notice, string? RefusedCode, string RequestedAt)>(
            new CommandDefinition(
                "SELECT refund_id, amount_minor, currency, reason, state, notice, refused_code, requested_at FROM order_refunds WHERE order_no = @orderNo ORDER BY requested_at, refund_id;",
                new { orderNo }, transaction)).ConfigureAwait(false);
        return [.. rows.Select(r => new StoredRefund(Guid.ParseExact(r.RefundId, "D"), orderNo, new Money(r.AmountMinor, Protocol.Currency.FromCode(r.Currency)), r.Reason, r.State,
            r.Notice, r.RefusedCode, StoredTime.Parse(r.RequestedAt)))];
    }

    /// <summary>
    /// <c>&lt;issuer&gt;-&lt;sequence&gt;</c>, the sequence in at least six digits, e.g. <c>demo-mall-000042</c>.
    /// Issuer ids contain no path or separator characters, and the order number is the table's key, so
    /// a number can never be stored for two orders.
    /// </summary>
    public static string FormatOrderNo(string issuer, long sequence) =>
        string.Create(CultureInfo.InvariantCulture, $"{issuer}-{sequence:D6}");

    // synchronous is per connection: FULL makes every commit durable in WAL mode.
    // Microsoft.Data.Sqlite completes its "async" opens and commands synchronously.
    /// <summary>For the health check: a connection to the database opens (the file is there and readable).</summary>
    public async Task PingAsync(CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
    }

    private Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken) => _file.OpenAsync(cancellationToken);

    /// <summary>A row as Dapper reads it; converted to <see cref="OrderRecord"/> at once.</summary>
    private sealed class OrderRow
    {
        public string OrderNo { get; set; } = "";

        public string StoreId { get; set; } = "";

        public string Bill { get; set; } = "";

        public long AmountMinor { get; set; }

        public string Currency { get; set; } = "";

        public string State { get; set; } = "";

        public string? SettlementId { get; set; }

        public string? CompletionNotice { get; set; }

        public string? Receipt { get; set; }

        public string CreatedAt { get; set; } = "";

        public string? PaidAt { get; set; }

        public string? VoidSettlementId { get; set; }

        public string? VoidNotice { get; set; }

        public string? VoidReason { get; set; }

        public string? VoidedAt { get; set; }

        public OrderRecord ToRecord()
        {
            var orderVoid = VoidSettlementId is null
                ? null
                : new OrderVoid(Guid.ParseExact(VoidSettlementId, "D"), VoidNotice!, VoidReason!, StoredTime.Parse(VoidedAt!));
            return new(
                OrderNo,
                StoreId,
                Bill,
                new Money(AmountMinor, Protocol.Currency.FromCode(Currency)),
                (State, orderVoid) switch
                {
                    ("billed", null) => OrderState.Billed,
                    ("billed", _) => OrderState.Cancelled,
                    ("paid", null) => OrderState.Paid,
                    // Never written: a void is recorded only for a billed order, and a cancelled order is never paid.
                    ("paid", _) => throw new InvalidOperationException($"Order '{OrderNo}' is both paid and voided: the database was changed."),
                    _ => throw new InvalidOperationException($"Order '{OrderNo}' has unknown state '{State}'."),
                },
                SettlementId is null ? null : Guid.ParseExact(SettlementId, "D"),
                CompletionNotice,
                Receipt,
                StoredTime.Parse(CreatedAt),
                PaidAt is null ? null : StoredTime.Parse(PaidAt),
                orderVoid);
        }
    }
}
