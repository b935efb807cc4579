using System.Buffers.Binary;
using System.Text;

namespace OnnxAttribution.Store.Tests;

/// <summary>
/// The bad-input suite for a store's files: malformed meta.json, features.npy headers and done.bitmaps (truncated, wrong magic,
/// wrong types, absurd or negative sizes) given to <see cref="FeatureStore.Open"/> and <see cref="FeatureStoreWriter.OpenOrCreate"/>.
/// Each is a <see cref="StoreFormatException"/> naming the file and the field, and neither call writes anything.
/// (Header parsing on its own: <see cref="NpyFormatTests"/>; meta.json parsing on its own: <see cref="StoreMetaTests"/>.)
/// </summary>
public sealed class BadStoreFileTests : TempDirectoryTest
{
    private const int Dim = 13;
    private const int N = 37;

    private string Store => Path.Combine(TempDir, "s");

    [SetUp]
    public void MakeStore() => StoreTestData.WriteAll(Store, StoreTestData.Meta(N, Dim)).Dispose();

    /// <summary>Every file of the store with its bytes, to check that a refused open wrote nothing.</summary>
    private List<(string Name, byte[] Bytes)> Snapshot() =>
        Directory.GetFiles(Store).Order(StringComparer.Ordinal).Select(f => (Path.GetFileName(f), File.ReadAllBytes(f))).ToList();

    /// <summary>Both ways of opening the store refuse it with a message that starts with the file and holds <paramref name="expected"/>; no file changes.</summary>
    private void AssertRefused(string file, string expected)
    {
        var before = Snapshot();
        string path = Path.Combine(Store, file);
        var open = Assert.Throws<StoreFormatException>(() => FeatureStore.Open(Store))!;
        var resume = Assert.Throws<StoreFormatException>(() => FeatureStoreWriter.OpenOrCreate(Store, StoreTestData.Meta(N, Dim)))!;
        Assert.Multiple(() =>
        {
            Assert.That(open.Message, Does.StartWith(path).And.Contain(expected), "open");
            Assert.That(resume.Message, Does.StartWith(path).And.Contain(expected), "resume");
            Assert.That(Snapshot(), Is.EqualTo(before), "nothing written");
        });
    }

    /// <summary>Applies <paramref name="edit"/> to the bytes of the store's <paramref name="file"/>, which may return a shorter copy.</summary>
    private void Rewrite(string file, Func<byte[], byte[]> edit)
    {
        string path = Path.Combine(Store, file);
        File.WriteAllBytes(path, edit(File.ReadAllBytes(path)));
    }

    private void EditMeta(string from, string to)
    {
        string path = Path.Combine(Store, StoreFiles.Meta);
        string text = File.ReadAllText(path);
        Assert.That(text, Does.Contain(from), "the test's edit applies");
        File.WriteAllText(path, text.Replace(from, to, StringComparison.Ordinal));
    }

    [TestCase("\"rows\": 37", "\"rows\": \"37\"", "rows")]
    [TestCase("\"rows\": 37", "\"rows\": -37", "'rows'")]
    [TestCase("\"rows\": 37", "\"rows\": 1e300", "rows")]
    [TestCase("\"rows\": 37", "\"rows\": 99999999999999999999", "rows")]
    [TestCase("\"dim\": 13", "\"dim\": 0", "'projector.dim'")]
    [TestCase("\"dim\": 13", "\"dim\": -13", "'projector.dim'")]
    [TestCase("\"dim\": 13", "\"dim\": 2147483648", "dim")]
    [TestCase("\"dim\": 13", "\"dim\": 13.5", "dim")]
    [TestCase("\"dtype\": \"float32\"", "\"dtype\": \"float64\"", "dtype")]
    [TestCase("\"dtype\": \"float32\"", "\"dtype\": 7", "dtype")]
    [TestCase("\"formatVersion\": 1", "\"formatVersion\": 99", "'formatVersion'")]
    [TestCase("\"index\": 0", "\"index\": 5", "'shard'")]
    [TestCase("\"count\": 1", "\"count\": -1", "'shard'")]
    [TestCase("\"timesteps\": [", "\"timesteps\": 5, \"x\": [", "timesteps")]
    [TestCase("\"noiseDraws\": 2,", "", "noiseDraws")]
    [TestCase("\"checksums\": \"xxhash64\"", "\"checksums\": \"md5\"", "'checksums'")]
    [TestCase("\"modelFiles\": {}", "\"modelFiles\": {\"forward.onnx\": \"abc\"}", "'modelFiles.forward.onnx'")]
    [TestCase("\"modelFiles\": {}", "\"modelFiles\": null", "modelFiles")]
    [TestCase("{", "[", "not a valid store meta.json")]
    public void Open_MalformedMetaJson_RefusedNamingTheField(string from, string to, string expected)
    {
        EditMeta(from, to);
        AssertRefused(StoreFiles.Meta, expected);
    }

    [TestCase(0)]
    [TestCase(1)]
    [TestCase(40)]
    public void Open_MetaJsonTruncated_Refused(int keep)
    {
        Rewrite(StoreFiles.Meta, bytes => bytes[..keep]);
        AssertRefused(StoreFiles.Meta, "not a valid store meta.json");
    }

    [Test]
    public void Open_MetaJsonBinaryGarbage_Refused()
    {
        File.WriteAllBytes(Path.Combine(Store, StoreFiles.Meta), [0x00, 0xff, 0x93, 0x4e, 0x55, 0x4d]);
        AssertRefused(StoreFiles.Meta, "not a valid store meta.json");
    }

    /// <summary>Rewrites the features.npy header's dict, keeping the file's length and the data offset.</summary>
    private void EditNpyHeader(string from, string to)
    {
        string path = Path.Combine(Store, StoreFiles.Features);
        byte[] bytes = File.ReadAllBytes(path);
        string header = Encoding.Latin1.GetString(bytes, 0, 128);
        Assert.That(header, Does.Contain(from), "the test's edit applies");
        string edited = header.Replace(from, to, StringComparison.Ordinal);
        edited = edited.TrimEnd('\n', ' ').PadRight(127) + "\n";
        Assert.That(edited, Has.Length.EqualTo(128), "the test's edit fits the header");
        Encoding.Latin1.GetBytes(edited).CopyTo(bytes, 0);
        File.WriteAllBytes(path, bytes);
    }

    [TestCase("'<f4'", "'<f2'", "descr '<f2'")] // valid .npy, but not the file's length or what meta.json says
    [TestCase("'<f4'", "'<i4'", "'descr'")]
    [TestCase("'<f4'", "5", "quoted string")]
    [TestCase("False", "'no'", "'fortran_order'")]
    [TestCase("(37, 13)", "(13, 37)", "'shape'")]
    [TestCase("(37, 13)", "(-37, 13)", "'shape'")]
    [TestCase("(37, 13)", "(37,)", "'shape'")]
    [TestCase("(37, 13)", "(9223372036854775807, 13)", "'shape'")]
    [TestCase("(37, 13)", "(99999999999999999999, 13)", "'shape'")]
    [TestCase("(37, 13)", "(37, 13", "'shape'")]
    [TestCase("'descr'", "'descr\u00e9'", "ASCII")]
    public void Open_MalformedNpyHeader_RefusedNamingTheField(string from, string to, string expected)
    {
        EditNpyHeader(from, to);
        AssertRefused(StoreFiles.Features, expected);
    }

    [TestCase(0, 0xff, "magic")]
    [TestCase(6, 9, "version")]
    [TestCase(8, 0xff, "multiple of 64")] // header length 0x00ff: data not aligned
    [TestCase(9, 0xff, "truncated")] // header length 0xff76: past the end of the file
    public void Open_NpyPrefixDamaged_Refused(int offset, int value, string expected)
    {
        Rewrite(StoreFiles.Features, bytes =>
        {
            bytes[offset] = (byte)value;
            return bytes;
        });
        AssertRefused(StoreFiles.Features, expected);
    }

    [TestCase(0, "magic")]
    [TestCase(9, "magic")]
    [TestCase(128, "file length")]
    public void Open_NpyTruncated_Refused(int keep, string expected)
    {
        Rewrite(StoreFiles.Features, bytes => bytes[..keep]);
        AssertRefused(StoreFiles.Features, expected);
    }

    [TestCase(0, 8, (byte)'X', "magic")]
    [TestCase(8, 4, 2, "'version'")]
    [TestCase(16, 8, 1, "'firstRow'")]
    [TestCase(24, 8, long.MaxValue, "'rowCount'")]
    [TestCase(24, 8, -1, "'rowCount'")]
    public void Open_DoneBitmapHeaderDamaged_Refused(int offset, int size, long value, string expected)
    {
        Rewrite(StoreFiles.Done, bytes =>
        {
            if (size == 8 && offset > 0)
            {
                BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(offset), value);
            }
            else if (size == 4)
            {
                BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(offset), (int)value);
            }
            else
            {
                bytes[offset] = (byte)value;
            }
            return bytes;
        });
        AssertRefused(StoreFiles.Done, expected);
    }

    [TestCase(0, "magic")]
    [TestCase(31, "magic")]
    [TestCase(33, "file length")]
    public void Open_DoneBitmapTruncated_Refused(int keep, string expected)
    {
        Rewrite(StoreFiles.Done, bytes => bytes[..keep]);
        AssertRefused(StoreFiles.Done, expected);
    }

    [Test]
    public void Open_DoneBitmapWithBytesAppended_Refused()
    {
        File.AppendAllText(Path.Combine(Store, StoreFiles.Done), "extra");
        AssertRefused(StoreFiles.Done, "file length");
    }

    [Test]
    public void Open_DoneBitmapBitPastTheLastRowSet_Refused()
    {
        Rewrite(StoreFiles.Done, bytes =>
        {
            bytes[^1] = 0xff; // 37 rows: bits 5..7 of the last byte are past row 36
            return bytes;
        });
        AssertRefused(StoreFiles.Done, "past row 36");
    }
}
