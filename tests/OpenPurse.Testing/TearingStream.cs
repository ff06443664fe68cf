namespace OpenPurse.Testing;

/// <summary>
/// A card's memory file whose power can fail in the middle of a write: with a <see cref="Budget"/>,
/// writes pass through until that many more bytes are written, then the rest never arrives and the
/// write throws, as a card loses power. Without one it is the plain file.
/// </summary>
public sealed class TearingStream(Stream inner, int? budget = null) : Stream
{
    /// <summary>How many more bytes may be written before power fails; null: no failure.</summary>
    public int? Budget { get; set; } = budget;

    public override bool CanRead => inner.CanRead;

    public override bool CanSeek => inner.CanSeek;

    public override bool CanWrite => inner.CanWrite;

    public override long Length => inner.Length;

    public override long Position { get => inner.Position; set => inner.Position = value; }

    public override void Flush() => inner.Flush();

    public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);

    public override long Seek(long offset, SeekOrigin origin) => inner.Seek(offset, origin);

    public override void SetLength(long value) => inner.SetLength(value);

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (Budget is not { } budget)
        {
            inner.Write(buffer);
            return;
        }

        var allowed = Math.Min(buffer.Length, budget);
        inner.Write(buffer[..allowed]);
        Budget = budget - allowed;
        if (allowed < buffer.Length)
        {
            // What reached the file stays there; the card's own commit protocol must cope.
            inner.Flush();
            throw new IOException("Power lost during the write.");
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }

        base.Dispose(disposing);
    }
}
