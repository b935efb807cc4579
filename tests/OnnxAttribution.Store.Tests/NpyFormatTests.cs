using System.Text;

namespace OnnxAttribution.Store.Tests;

public sealed class NpyFormatTests : TempDirectoryTest
{
    [Test]
    public void BuildHeader_Float32_3x4_MatchesNumPyBytesExactly()
    {
        // What numpy.save writes for np.zeros((3, 4), '<f4') (NumPy < 1.24 padding rule, without growth-axis spaces):
        // magic, version 1.0, header length 118 (0x76 0x00), the dict, spaces to offset 127, '\n'; data at 128.
        const string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }";
        var expected = new List<byte> { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 0x01, 0x00, 0x76, 0x00 };
        expected.AddRange(Encoding.ASCII.GetBytes(dict));
        expected.AddRange(Enumerable.Repeat((byte)' ', 127 - 10 - dict.Length));
        expected.Add((byte)'\n');

        byte[] header = NpyFormat.BuildHeader(StoreDType.Float32, 3, 4);

        Assert.That(header, Is.EqualTo(expected.ToArray()));
        Assert.That(header, Has.Length.EqualTo(128));
    }

    [Test]
    public void BuildHeader_Float16_60000x4096_Pinned()
    {
        byte[] header = NpyFormat.BuildHeader(StoreDType.Float16, 60000, 4096);
        string text = Encoding.ASCII.GetString(header, 10, header.Length - 10);
        Assert.Multiple(() =>
        {
            Assert.That(header.Take(10).ToArray(), Is.EqualTo(new byte[] { 0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x01, 0x00, 0x76, 0x00 }));
            Assert.That(text, Is.EqualTo("{'descr': '<f2', 'fortran_order': False, 'shape': (60000, 4096), }" + new string(' ', 51) + "\n"));
        });
    }

    [Test]
    public void BuildHeader_Int8_1000000x4096_PinnedAndReadBack()
    {
        byte[] header = NpyFormat.BuildHeader(StoreDType.Int8, 1000000, 4096);
        string text = Encoding.ASCII.GetString(header, 10, header.Length - 10);
        Assert.Multiple(() =>
        {
            Assert.That(header.Take(10).ToArray(), Is.EqualTo(new byte[] { 0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x01, 0x00, 0x76, 0x00 }));
            Assert.That(text, Is.EqualTo("{'descr': '|i1', 'fortran_order': False, 'shape': (1000000, 4096), }" + new string(' ', 49) + "\n"));
            var read = NpyFormat.ReadHeader(new MemoryStream(header), "int8.npy");
            Assert.That(read, Is.EqualTo(new NpyHeader(StoreDType.Int8, 1000000, 4096, 128)));
            Assert.That(read.DataLength, Is.EqualTo(4096000000L));
        });
    }

    [Test]
    public void BuildHeader_EveryDigitCount_PadsWithOneToSixtyFourSpacesToAMultipleOf64()
    {
        // NumPy's rule: the dict, then 1 to 64 spaces and '\n', so that the data starts at a multiple of 64. Together these fix
        // the padding for every dict length. (A dict that exactly fills a line, which gets all 64 spaces, needs 60 digits of
        // shape for '<f4': no 2-D shape of longs reaches it, so every digit count of both sizes is checked instead.)
        for (int rowDigits = 1; rowDigits <= 19; rowDigits++)
        {
            for (int colDigits = 1; colDigits <= 19; colDigits++)
            {
                long rows = long.Parse(new string('8', rowDigits), System.Globalization.CultureInfo.InvariantCulture);
                long cols = long.Parse(new string('7', colDigits), System.Globalization.CultureInfo.InvariantCulture);
                string dict = $"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}";

                byte[] header = NpyFormat.BuildHeader(StoreDType.Float32, rows, cols);

                string text = Encoding.ASCII.GetString(header, 10, header.Length - 10);
                int spaces = header.Length - 10 - dict.Length - 1;
                Assert.That(header.Length % 64, Is.Zero, $"({rows}, {cols})");
                Assert.That(spaces, Is.InRange(1, 64), $"({rows}, {cols})");
                Assert.That(text, Is.EqualTo(dict + new string(' ', spaces) + "\n"), $"({rows}, {cols})");
            }
        }
    }

    [TestCase(StoreDType.Float32, 0, 1)]
    [TestCase(StoreDType.Float32, 3, 4)]
    [TestCase(StoreDType.Float16, 60000, 4096)]
    [TestCase(StoreDType.Float16, 3_000_000_000, 4096)]
    public void ReadHeader_WhatBuildHeaderWrote_RoundTrips(StoreDType dtype, long rows, long cols)
    {
        byte[] header = NpyFormat.BuildHeader(dtype, rows, cols);
        var parsed = NpyFormat.ReadHeader(new MemoryStream(header), "test.npy");
        Assert.That(parsed, Is.EqualTo(new NpyHeader(dtype, rows, cols, header.Length)));
        Assert.That(parsed.DataOffset % NpyFormat.Alignment, Is.Zero);
        Assert.That(parsed.DataLength, Is.EqualTo(rows * cols * dtype.ElementSize())); // > int.MaxValue for the big case
    }

    [Test]
    public void CreatePreallocated_FileLengthIsHeaderPlusData_AndReadHeaderAcceptsIt()
    {
        string path = Path.Combine(TempDir, "m.npy");
        var created = NpyFormat.CreatePreallocated(path, StoreDType.Float16, 5, 7);
        Assert.That(new FileInfo(path).Length, Is.EqualTo(128 + (5 * 7 * 2)));
        Assert.That(NpyFormat.ReadHeader(path), Is.EqualTo(created));
    }

    [Test]
    public void ReadHeader_FileLengthWrong_NamesFileAndLengths()
    {
        string path = Path.Combine(TempDir, "m.npy");
        NpyFormat.CreatePreallocated(path, StoreDType.Float32, 5, 7);
        using (var s = new FileStream(path, FileMode.Open))
        {
            s.SetLength(s.Length - 1);
        }
        var e = Assert.Throws<StoreFormatException>(() => NpyFormat.ReadHeader(path))!;
        Assert.That(e.Message, Does.Contain(path).And.Contain("267 bytes").And.Contain("268"));
    }

    [TestCase("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }", "'descr'")]
    [TestCase("{'descr': '>f4', 'fortran_order': False, 'shape': (3, 4), }", "'descr'")]
    [TestCase("{'descr': '<f4', 'fortran_order': True, 'shape': (3, 4), }", "'fortran_order'")]
    [TestCase("{'descr': '<f4', 'fortran_order': False, 'shape': (12,), }", "'shape'")]
    [TestCase("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4, 1), }", "'shape'")]
    [TestCase("{'descr': '<f4', 'fortran_order': False, }", "missing key(s) 'shape'")]
    [TestCase("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), 'x': 1, }", "unexpected key 'x'")]
    [TestCase("{'descr': '<f4', 'fortran_order': False, 'shape': (3, -4), }", "'shape'")]
    [TestCase("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4) ", "expected ',' or '}'")]
    public void ReadHeader_BadDict_NamesTheField(string dict, string expectedText)
    {
        var e = Assert.Throws<StoreFormatException>(() => NpyFormat.ReadHeader(new MemoryStream(WithDict(dict)), "bad.npy"))!;
        Assert.That(e.Message, Does.StartWith("bad.npy: ").And.Contain(expectedText));
    }

    [Test]
    public void ReadHeader_BadMagic_Throws()
    {
        byte[] bytes = NpyFormat.BuildHeader(StoreDType.Float32, 3, 4);
        bytes[1] = (byte)'X';
        var e = Assert.Throws<StoreFormatException>(() => NpyFormat.ReadHeader(new MemoryStream(bytes), "bad.npy"))!;
        Assert.That(e.Message, Does.Contain("magic"));
    }

    [Test]
    public void ReadHeader_Version3_Throws()
    {
        byte[] bytes = NpyFormat.BuildHeader(StoreDType.Float32, 3, 4);
        bytes[6] = 3;
        var e = Assert.Throws<StoreFormatException>(() => NpyFormat.ReadHeader(new MemoryStream(bytes), "bad.npy"))!;
        Assert.That(e.Message, Does.Contain("version").And.Contain("3.0"));
    }

    [TestCase(0xFFFFFFFFu)]
    [TestCase((uint)(1 << 20) + 1)]
    public void ReadHeader_Version2HeaderLengthAbsurd_RefusedBeforeAllocating(uint length)
    {
        byte[] bytes = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 2, 0, 0, 0, 0, 0];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), length);
        var e = Assert.Throws<StoreFormatException>(() => NpyFormat.ReadHeader(new MemoryStream(bytes), "bad.npy"))!;
        Assert.That(e.Message, Does.StartWith("bad.npy: ").And.Contain("header length").And.Contain(length.ToString(System.Globalization.CultureInfo.InvariantCulture)));
    }

    [Test]
    public void ReadHeader_UnalignedData_Throws()
    {
        byte[] bytes = WithDict("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", padTo: 100);
        var e = Assert.Throws<StoreFormatException>(() => NpyFormat.ReadHeader(new MemoryStream(bytes), "bad.npy"))!;
        Assert.That(e.Message, Does.Contain("multiple of 64"));
    }

    [Test]
    public void ReadHeader_Truncated_Throws()
    {
        byte[] bytes = NpyFormat.BuildHeader(StoreDType.Float32, 3, 4)[..50];
        Assert.Throws<StoreFormatException>(() => NpyFormat.ReadHeader(new MemoryStream(bytes), "bad.npy"));
        Assert.Throws<StoreFormatException>(() => NpyFormat.ReadHeader(new MemoryStream([]), "empty.npy"));
    }

    private static byte[] WithDict(string dict, int padTo = 128)
    {
        var bytes = new byte[padTo];
        Array.Fill(bytes, (byte)' ');
        new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0 }.CopyTo(bytes, 0);
        bytes[8] = (byte)(padTo - 10);
        bytes[9] = 0;
        Encoding.ASCII.GetBytes(dict).CopyTo(bytes, 10);
        bytes[^1] = (byte)'\n';
        return bytes;
    }
}
