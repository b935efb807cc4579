using System.Buffers.Binary;
using System.Text;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Training.Tests;

public sealed class TrainingCheckpointTests : TempDirectoryTest
{
    [Test]
    public void Save_OneTensor_HeaderLayoutIsPinned()
    {
        var path = Path.Combine(TempDir, "c.bin");
        new TrainingCheckpoint
        {
            Step = 3,
            Seed = 5,
            ConfigJson = "{}",
            Tensors = [("model.w", [2], [1.5f, -2f])],
        }.Save(path);
        var b = File.ReadAllBytes(path);
        var expected = new List<byte>();
        expected.AddRange("OATCKPT\0"u8.ToArray());
        expected.AddRange(Le32(1));
        expected.AddRange(Le32(1));
        expected.AddRange(Le64(3));
        expected.AddRange(Le64(5));
        expected.AddRange(Le32(2));
        expected.AddRange("{}"u8.ToArray());
        expected.AddRange(Le32(1));
        expected.AddRange(Le32(7));
        expected.AddRange(Encoding.UTF8.GetBytes("model.w"));
        expected.AddRange(Le32(1));
        expected.AddRange(Le64(2));
        expected.AddRange(BitConverter.GetBytes(1.5f));
        expected.AddRange(BitConverter.GetBytes(-2f));
        Assert.That(b, Is.EqualTo(expected.ToArray()));
        var back = TrainingCheckpoint.Load(path);
        Assert.That(back.Tensors.Single().Values, Is.EqualTo(new[] { 1.5f, -2f }));
    }

    [Test]
    public void Load_TruncatedFile_ThrowsModelFileException()
    {
        var path = Path.Combine(TempDir, "c.bin");
        new TrainingCheckpoint { Step = 1, Seed = 1, ConfigJson = "{}", Tensors = [("a", [4], new float[4])] }.Save(path);
        var b = File.ReadAllBytes(path);
        File.WriteAllBytes(path, b[..^3]);
        Assert.That(() => TrainingCheckpoint.Load(path), Throws.TypeOf<ModelFileException>().With.Message.Contains("truncated"));
    }

    private static byte[] Le32(int v)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(b, v);
        return b;
    }

    private static byte[] Le64(long v)
    {
        var b = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(b, v);
        return b;
    }
}
