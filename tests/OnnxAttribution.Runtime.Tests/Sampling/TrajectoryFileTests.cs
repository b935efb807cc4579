using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Sampling;

namespace OnnxAttribution.Runtime.Tests.Sampling;

public sealed class TrajectoryFileTests : TempDirectoryTest
{
    private static Trajectory Small() =>
        new(SamplerKind.Ddim, 0x0102030405060708, 1, 1, 2, [999, 499], [1f, 2f, 3f, 4f, 5f, 6f], 0.5, true, 1000);

    [Test]
    public void Write_Header_PinnedByteByByte()
    {
        using var ms = new MemoryStream();
        TrajectoryFile.Write(ms, Small());
        var bytes = ms.ToArray();
        byte[] header =
        [
            (byte)'O', (byte)'A', (byte)'T', (byte)'R', (byte)'A', (byte)'J', (byte)'0', (byte)'1',
            1, 0, 0, 0,             // format version
            1, 0, 0, 0,             // element type: float32
            2, 0, 0, 0,             // steps
            3, 0, 0, 0,             // states
            1, 0, 0, 0,             // C
            1, 0, 0, 0,             // H
            2, 0, 0, 0,             // W
            2, 0, 0, 0,             // sampler: DDIM
            8, 7, 6, 5, 4, 3, 2, 1, // seed
            0, 0, 0, 0, 0, 0, 0xE0, 0x3F, // eta 0.5
            1, 0, 0, 0,             // flags: clipped
            0xE8, 0x03, 0, 0,       // T = 1000
            0xE7, 0x03, 0, 0, 0, 0, 0, 0, // timestep 999
            0xF3, 0x01, 0, 0, 0, 0, 0, 0, // timestep 499
            0, 0, 0x80, 0x3F,       // state 0: 1f
        ];
        Assert.That(bytes[..header.Length], Is.EqualTo(header));
        Assert.That(bytes, Has.Length.EqualTo(TrajectoryFile.HeaderSize + 2 * 8 + 6 * 4));
    }

    [Test]
    public void WriteThenRead_RoundTrips()
    {
        var path = Path.Combine(TempDir, "a.traj");
        var t = Small();
        TrajectoryFile.Write(path, t);
        var r = TrajectoryFile.Read(path);
        Assert.That((r.Kind, r.Seed, r.Channels, r.Height, r.Width, r.Eta, r.ClipDenoised, r.TrainTimesteps),
            Is.EqualTo((t.Kind, t.Seed, 1, 1, 2, 0.5, true, 1000)));
        Assert.That(r.Timesteps, Is.EqualTo(t.Timesteps));
        Assert.That(r.States.ToArray(), Is.EqualTo(t.States.ToArray()));
    }

    [Test]
    public void Read_Truncated_SaysExpectedLength()
    {
        var path = Path.Combine(TempDir, "a.traj");
        TrajectoryFile.Write(path, Small());
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^4]);
        Assert.That(() => TrajectoryFile.Read(path),
            Throws.TypeOf<UserInputException>().With.Message.Contains("104 bytes").And.Message.Contains(path));
    }

    [Test]
    public void Read_OtherVersion_NamesField()
    {
        var path = Path.Combine(TempDir, "a.traj");
        TrajectoryFile.Write(path, Small());
        var bytes = File.ReadAllBytes(path);
        bytes[8] = 9;
        File.WriteAllBytes(path, bytes);
        Assert.That(() => TrajectoryFile.Read(path), Throws.TypeOf<UserInputException>().With.Message.Contains("format version"));
    }

    [Test]
    public void Read_BadMagic_Throws()
    {
        var path = Path.Combine(TempDir, "a.traj");
        File.WriteAllBytes(path, new byte[80]);
        Assert.That(() => TrajectoryFile.Read(path), Throws.TypeOf<UserInputException>().With.Message.Contains("OATRAJ01"));
    }

    [Test]
    public void Read_UnknownElementType_NamesField()
    {
        var path = Path.Combine(TempDir, "a.traj");
        TrajectoryFile.Write(path, Small());
        var bytes = File.ReadAllBytes(path);
        bytes[12] = 10; // float16
        File.WriteAllBytes(path, bytes);
        Assert.That(() => TrajectoryFile.Read(path), Throws.TypeOf<UserInputException>().With.Message.Contains("element type"));
    }
}
