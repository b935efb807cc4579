using TorchSharp;

namespace OnnxAttribution.Training.Tests.Support;

internal static class TorchForward
{
    public static float[] Run(UNet net, float[] xt, long[] t)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var c = net.Config;
        var x = torch.tensor(xt, [t.Length, c.Channels, c.ImageSize, c.ImageSize]);
        var tt = torch.tensor(t, [t.Length]);
        return net.forward(x, tt).data<float>().ToArray();
    }

    public static float MaxAbsDifference(float[] a, float[] b)
    {
        Assert.That(a, Has.Length.EqualTo(b.Length));
        float max = 0;
        for (int i = 0; i < a.Length; i++)
        {
            max = Math.Max(max, Math.Abs(a[i] - b[i]));
        }
        return max;
    }
}
