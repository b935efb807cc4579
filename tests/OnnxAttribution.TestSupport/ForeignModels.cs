using OnnxAttribution.Onnx;
using OnnxAttribution.Onnx.Proto;

namespace OnnxAttribution.TestSupport;

/// <summary>
/// ε-prediction models written the way PyTorch's exporter writes them, for 1×16×16 images (the embedded training set's
/// geometry), with random weights: a U-Net with attention, and a DiT block. Nothing here is made for this engine: the
/// inputs are called <c>sample</c> and <c>timestep</c>, the output <c>out</c>.
/// </summary>
public sealed class ForeignModels
{
    private readonly GraphBuilder _b;
    private readonly Random _random;
    private readonly int _opset;
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);

    private ForeignModels(string name, int opset, int seed)
    {
        _b = new GraphBuilder(name);
        _random = new Random(seed);
        _opset = opset;
    }

    /// <summary>
    /// A small U-Net: sinusoidal time embedding (Cast, Unsqueeze, Exp, Sin, Cos, Concat) plus a learned one (Gather),
    /// Linear layers as MatMul with a transposed weight, GroupNorm as Reshape + InstanceNormalization + Reshape + Mul + Add,
    /// SiLU as Sigmoid · Mul, residual blocks, a strided-Conv downsample, a self-attention block (MatMul, Split, Softmax,
    /// Transpose, Reshape), and upsampling by Resize and by ConvTranspose, added.
    /// </summary>
    /// <param name="opset">13 or newer.</param>
    /// <param name="timestepType">The timestep input's element type (int64 or float).</param>
    /// <param name="fixedBatch">Write the batch axis as a fixed 1 (as an export without dynamic axes does) instead of symbolic.</param>
    public static ModelProto UNet(int opset, int timestepType = TensorData.Int64, bool fixedBatch = false)
    {
        var m = new ForeignModels("foreign-unet", opset, seed: opset);
        var b = m._b;
        long batch = fixedBatch ? 1 : -1;
        var x = b.Input("sample", TensorData.Float, batch, 1, 16, 16);
        var t = b.Input("timestep", timestepType, batch);
        var temb = m.TimeEmbedding(t, timestepType, dim: 16);
        temb = m.Silu(m.Linear(temb, 16, 32));
        var h = m.Conv(x, 1, 16, 3, 1, 1);
        h = m.ResBlock(h, temb, 16, 16);
        var skip = h;
        var down = m.Conv(h, 16, 16, 3, 2, 1);                                  // 8×8
        down = m.ResBlock(down, temb, 16, 16);
        down = m.Attention(down, 16, 8);
        var scales = b.Constant("up_scales", [1f, 1f, 2f, 2f], 4);
        var resized = b.Node("Resize", [down, "", scales], null, Attr.String("mode", "nearest"));
        var transposed = b.Node("ConvTranspose", [down, m.Weight("up_t.weight", 16, 16, 2, 2), m.Bias("up_t.bias", 16)], null,
            Attr.Ints("strides", 2, 2));
        var up = b.Node("Add", [m.Conv(resized, 16, 16, 3, 1, 1), transposed]);
        h = b.Node("Concat", [up, skip], null, Attr.Int("axis", 1));       // 32 channels
        h = m.ResBlock(h, temb, 32, 16);
        h = m.Silu(m.GroupNorm(h, 16, 4));
        var eps = m.Conv(h, 16, 1, 3, 1, 1, output: "out");
        b.Output(eps, TensorData.Float, batch, 1, 16, 16);
        return b.Build("pytorch", opset, 8);
    }

    /// <summary>
    /// A DiT block: a patchify Conv (4×4 patches), a position embedding, LayerNormalization, self-attention, an MLP with
    /// Gelu, the time embedding added to the tokens, a final LayerNormalization and a linear head, unpatchified with
    /// Reshape and a rank-6 Transpose. LayerNormalization needs opset 17, Gelu 20.
    /// </summary>
    public static ModelProto DiT(int opset = 21)
    {
        var m = new ForeignModels("foreign-dit", opset, seed: 7);
        var b = m._b;
        const int d = 32;
        var x = b.Input("sample", TensorData.Float, -1, 1, 16, 16);
        var t = b.Input("timestep", TensorData.Int64, -1);
        var temb = m.Silu(m.Linear(m.TimeEmbedding(t, TensorData.Int64, dim: 16), 16, d));
        var patches = m.Conv(x, 1, d, 4, 4, 0);                                   // [B, d, 4, 4]
        var tokens = b.Node("Transpose", [m.Reshape(patches, 0, d, 16)], null, Attr.Ints("perm", 0, 2, 1));   // [B, 16, d]
        tokens = b.Node("Add", [tokens, m.Random("pos_embed", 0.02f, 1, 16, d)]);
        tokens = b.Node("Add", [tokens, m.Unsqueeze(temb, 1)]);
        var attended = m.TokenAttention(m.LayerNorm(tokens, d, "norm1"), d, "attn");
        tokens = b.Node("Add", [tokens, attended]);
        var hidden = b.Node("Gelu", [m.Linear(m.LayerNorm(tokens, d, "norm2"), d, 2 * d, "mlp.fc1")]);
        tokens = b.Node("Add", [tokens, m.Linear(hidden, 2 * d, d, "mlp.fc2")]);
        var head = m.Linear(m.LayerNorm(tokens, d, "norm_out"), d, 16, "head");      // [B, 16 tokens, 4·4·1]
        var grid = b.Node("Transpose", [m.Reshape(head, 0, 4, 4, 4, 4, 1)], null, Attr.Ints("perm", 0, 5, 1, 3, 2, 4));
        var eps = b.Node("Reshape", [grid, b.ConstantInt64("out_shape", 0, 1, 16, 16)], "out");
        b.Output(eps, TensorData.Float, -1, 1, 16, 16);
        return b.Build("pytorch", opset, 9);
    }

    /// <summary>
    /// The smallest model whose output shows how it reads its timestep: out = sample · timestep + Conv(sample; W = 0),
    /// the timestep a float [batch] broadcast over the image.
    /// </summary>
    public static ModelProto TimestepProbe(int opset = 17)
    {
        var m = new ForeignModels("probe", opset, seed: 1);
        var b = m._b;
        var x = b.Input("sample", TensorData.Float, -1, 1, 4, 4);
        var t = b.Input("timestep", TensorData.Float, -1);
        var column = m.Reshape(t, -1, 1, 1, 1);
        var zero = b.Initializer("conv.weight", new float[9], 1, 1, 3, 3);
        var conv = b.Node("Conv", [x, zero], null, Attr.Ints("pads", 1, 1, 1, 1));
        var eps = b.Node("Add", [b.Node("Mul", [x, column]), conv], "out");
        b.Output(eps, TensorData.Float, -1, 1, 4, 4);
        return b.Build("pytorch", opset, 8);
    }

    private string TimeEmbedding(string t, int timestepType, int dim)
    {
        int half = dim / 2;
        var steps = new float[half];
        for (int i = 0; i < half; i++)
        {
            steps[i] = -MathF.Log(10000f) * i / half;
        }
        var freqs = _b.Node("Exp", [_b.Constant("freq_exponents", steps, 1, half)]);
        var tf = timestepType == TensorData.Float ? t : _b.Node("Cast", [t], null, Attr.Int("to", TensorData.Float));
        var args = _b.Node("Mul", [Unsqueeze(tf, 1), freqs]);
        var sinusoid = _b.Node("Concat", [_b.Node("Sin", [args]), _b.Node("Cos", [args])], null, Attr.Int("axis", 1));
        if (timestepType != TensorData.Int64)
        {
            return sinusoid;
        }
        var learned = _b.Node("Gather", [Random("time_table", 0.1f, 1000, dim), t], null, Attr.Int("axis", 0));
        return _b.Node("Add", [sinusoid, learned]);
    }

    private string ResBlock(string x, string temb, int inChannels, int outChannels)
    {
        var h = Conv(Silu(GroupNorm(x, inChannels, 4)), inChannels, outChannels, 3, 1, 1);
        var cond = Unsqueeze(Unsqueeze(Linear(temb, 32, outChannels), 2), 3);
        h = _b.Node("Add", [h, cond]);
        h = Conv(Silu(GroupNorm(h, outChannels, 4)), outChannels, outChannels, 3, 1, 1);
        var shortcut = inChannels == outChannels ? x : Conv(x, inChannels, outChannels, 1, 1, 0);
        return _b.Node("Add", [h, shortcut]);
    }

    /// <summary>Self-attention over the H·W positions of [B, C, H, W], one head, PyTorch's layout.</summary>
    private string Attention(string x, int channels, int side)
    {
        var tokens = _b.Node("Transpose", [Reshape(GroupNorm(x, channels, 4), 0, channels, side * side)], null, Attr.Ints("perm", 0, 2, 1));
        var attended = TokenAttention(tokens, channels, "attn");
        var back = Reshape(_b.Node("Transpose", [attended], null, Attr.Ints("perm", 0, 2, 1)), 0, channels, side, side);
        return _b.Node("Add", [x, back]);
    }

    /// <summary>One-head attention over [B, N, d] tokens: a fused qkv Linear, Split, softmax(q kᵀ/√d) v, an output Linear.</summary>
    private string TokenAttention(string tokens, int d, string name)
    {
        var qkv = Linear(tokens, d, 3 * d, name + ".qkv");
        var parts = _b.NodeMulti("Split", [qkv, _b.ConstantInt64(name + "_split", d, d, d)],
            [_b.Fresh(name + "_q"), _b.Fresh(name + "_k"), _b.Fresh(name + "_v")], Attr.Int("axis", 2));
        var kT = _b.Node("Transpose", [parts[1]], null, Attr.Ints("perm", 0, 2, 1));
        var logits = _b.Node("Mul", [_b.Node("MatMul", [parts[0], kT]), _b.Scalar(name + "_scale", 1f / MathF.Sqrt(d))]);
        var weights = _b.Node("Softmax", [logits], null, Attr.Int("axis", -1));
        return Linear(_b.Node("MatMul", [weights, parts[2]]), d, d, name + ".proj");
    }

    private string GroupNorm(string x, int channels, int groups)
    {
        var grouped = Reshape(x, 0, groups, -1);
        var ones = _b.Constant("gn_ones", Enumerable.Repeat(1f, groups).ToArray(), groups);
        var zeros = _b.Constant("gn_zeros", new float[groups], groups);
        var normed = _b.Node("InstanceNormalization", [grouped, ones, zeros], null, Attr.Float("epsilon", 1e-5f));
        var shape = _b.Node("Shape", [x]);
        var back = _b.Node("Reshape", [normed, shape]);
        var gamma = _b.Initializer(Unique("gn.weight"), Enumerable.Range(0, channels).Select(_ => 1f + Noise(0.1f)).ToArray(), channels, 1, 1);
        var beta = _b.Initializer(Unique("gn.bias"), Enumerable.Range(0, channels).Select(_ => Noise(0.1f)).ToArray(), channels, 1, 1);
        return _b.Node("Add", [_b.Node("Mul", [back, gamma]), beta]);
    }

    private string LayerNorm(string x, int d, string name)
    {
        var gamma = _b.Initializer(name + ".weight", Enumerable.Range(0, d).Select(_ => 1f + Noise(0.1f)).ToArray(), d);
        var beta = _b.Initializer(name + ".bias", Enumerable.Range(0, d).Select(_ => Noise(0.1f)).ToArray(), d);
        return _b.Node("LayerNormalization", [x, gamma, beta], null, Attr.Int("axis", -1), Attr.Float("epsilon", 1e-6f));
    }

    private string Silu(string x) => _b.Node("Mul", [x, _b.Node("Sigmoid", [x])]);

    /// <summary>PyTorch's Linear without fusing: MatMul(x, Transpose(W)) + b, W stored [out, in].</summary>
    private string Linear(string x, int inFeatures, int outFeatures, string? name = null)
    {
        name ??= Unique("linear");
        var w = Random(name + ".weight", 1f / MathF.Sqrt(inFeatures), outFeatures, inFeatures);
        var wT = _b.Node("Transpose", [w], null, Attr.Ints("perm", 1, 0));
        return _b.Node("Add", [_b.Node("MatMul", [x, wT]), Bias(name + ".bias", outFeatures)]);
    }

    private string Conv(string x, int inChannels, int outChannels, int kernel, int stride, int pad, string? output = null)
    {
        var name = Unique("conv");
        return _b.Node("Conv", [x, Weight(name + ".weight", outChannels, inChannels, kernel, kernel), Bias(name + ".bias", outChannels)], output,
            Attr.Ints("kernel_shape", kernel, kernel), Attr.Ints("strides", stride, stride), Attr.Ints("pads", pad, pad, pad, pad));
    }

    private string Weight(string name, int outChannels, int inChannels, int kh, int kw) =>
        Random(name, 1f / MathF.Sqrt(inChannels * kh * kw), outChannels, inChannels, kh, kw);

    private string Bias(string name, int n) => Random(name, 0.02f, n);

    private string Random(string name, float scale, params long[] dims)
    {
        long count = dims.Aggregate(1L, (a, v) => a * v);
        var values = new float[count];
        for (long i = 0; i < count; i++)
        {
            values[i] = Noise(scale);
        }
        return _b.Initializer(Unique(name), values, dims);
    }

    /// <summary><paramref name="name"/>, or with a number appended when a parameter already has it (as PyTorch numbers repeated modules).</summary>
    private string Unique(string name)
    {
        string unique = name;
        for (int i = 1; !_names.Add(unique); i++)
        {
            unique = $"{name}_{i}";
        }
        return unique;
    }

    private float Noise(float scale) => (float)(TestRandom.Normal(_random) * scale);

    private string Reshape(string x, params long[] shape) => _b.Node("Reshape", [x, _b.ConstantInt64("shape", shape)]);

    /// <summary>Unsqueeze at one axis: an attribute before opset 13, an input from 13.</summary>
    private string Unsqueeze(string x, long axis) => _opset >= 13
        ? _b.Node("Unsqueeze", [x, _b.ConstantInt64("axes", axis)])
        : _b.Node("Unsqueeze", [x], null, Attr.Ints("axes", axis));
}
