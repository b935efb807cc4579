using TorchSharp;

namespace OnnxAttribution.Training.Tests;

public sealed class TorchSharpLoadTests
{
    [Test]
    public void Matmul_SmallMatrices_MatchesHandComputedProduct()
    {
        using var scope = torch.NewDisposeScope();
        var a = torch.tensor(new float[] { 1, 2, 3, 4, 5, 6 }, [2, 3]);
        var b = torch.tensor(new float[] { 7, 8, 9, 10, 11, 12 }, [3, 2]);
        var c = torch.matmul(a, b).data<float>().ToArray();
        Assert.That(c, Is.EqualTo(new float[] { 58, 64, 139, 154 }).AsCollection);
    }
}
