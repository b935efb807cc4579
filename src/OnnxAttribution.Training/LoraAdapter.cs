using OnnxAttribution.Runtime.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace OnnxAttribution.Training;

/// <summary>
/// The low-rank adapter of one layer (Hu et al. 2021): the layer computes W x + scale · B (A x), scale = alpha / rank. For a
/// convolution A has the layer's kernel (weight [r, in, k, k], applied with the layer's stride and padding) and B is 1×1
/// (weight [out, r, 1, 1]); for a linear layer A is [r, in] and B [out, r]. A starts uniform in ±1/√fan-in, B at zero, so a
/// fresh adapter leaves the base unchanged. Its parameters are named <c>a</c> and <c>b</c>; registered as <c>{layer}_lora</c>
/// they read e.g. <c>down0.conv1_lora.a</c>. In TorchSharp the layer runs once with the merged weight W + scale · B A (the
/// same function; one convolution instead of three), in the exported graph as the two adapter convolutions beside the layer.
/// </summary>
internal sealed class LoraAdapter : nn.Module
{
    /// <summary>The suffix of an adapter's module name after its layer's name.</summary>
    public const string Suffix = "_lora";

    private readonly Parameter _a;
    private readonly Parameter _b;
    private readonly long[] _weightShape;

    private LoraAdapter(long[] weightShape, bool conv, LoraSettings settings) : base("lora")
    {
        _weightShape = weightShape;
        Scale = settings.Scale;
        long r = settings.Rank, outFeatures = weightShape[0], inFeatures = weightShape[1];
        long[] kernel = conv ? weightShape[2..] : [];
        long fan = inFeatures * kernel.Aggregate(1L, (p, k) => p * k);
        double bound = 1 / Math.Sqrt(fan);
        _a = nn.Parameter(torch.empty([r, inFeatures, .. kernel]).uniform_(-bound, bound));
        _b = nn.Parameter(conv ? torch.zeros(outFeatures, r, 1, 1) : torch.zeros(outFeatures, r));
        register_parameter("a", _a);
        register_parameter("b", _b);
    }

    /// <summary>alpha / rank.</summary>
    public double Scale { get; }

    /// <summary>An adapter of <paramref name="conv"/>.</summary>
    public static LoraAdapter ForConv(Conv2d conv, LoraSettings settings) => new(conv.weight!.shape, conv: true, settings);

    /// <summary>An adapter of <paramref name="linear"/>.</summary>
    public static LoraAdapter ForLinear(Linear linear, LoraSettings settings) => new(linear.weight!.shape, conv: false, settings);

    /// <summary>Whether <paramref name="parameterName"/> names an adapter's parameter (<c>…_lora.a</c> or <c>…_lora.b</c>).</summary>
    public static bool IsAdapterParameter(string parameterName) =>
        parameterName.EndsWith(Suffix + ".a", StringComparison.Ordinal) || parameterName.EndsWith(Suffix + ".b", StringComparison.Ordinal);

    /// <summary>scale · B A in the layer's weight shape: what the adapter adds to the layer's weight.</summary>
    public Tensor DeltaWeight()
    {
        using var scope = torch.NewDisposeScope();
        long r = _a.shape[0];
        using Scalar scale = Scale;
        return torch.matmul(_b.view(_weightShape[0], r), _a.view(r, -1)).mul(scale).view(_weightShape).MoveToOuterDisposeScope();
    }

    /// <summary><paramref name="linear"/>'s forward on <paramref name="x"/>, with the merged weight when it has an adapter.</summary>
    public static Tensor Linear(Linear linear, LoraAdapter? adapter, Tensor x)
    {
        if (adapter is null)
        {
            return linear.forward(x);
        }
        using var scope = torch.NewDisposeScope();
        return nn.functional.linear(x, linear.weight!.add(adapter.DeltaWeight(), KeptScalars.One), linear.bias).MoveToOuterDisposeScope();
    }
}
