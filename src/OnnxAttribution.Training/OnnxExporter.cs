using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Runtime;
using OnnxAttribution.Onnx;
using OnnxAttribution.Onnx.Proto;

namespace OnnxAttribution.Training;

/// <summary>
/// Writes a <see cref="UNet"/> as an ONNX forward graph plus <c>model.json</c>.
/// </summary>
/// <remarks>
/// The graph is <c>eps = f(x_t float[batch,C,H,W], t int64[batch])</c> (plus the label, or a text model's context), opset 18,
/// IR 10, and uses only Conv, Gemm (transB=1), Sigmoid, Mul, Add, Sub, Div, Sqrt, Sin, Cos, Cast, Unsqueeze, Concat, Reshape,
/// ReduceMean, Resize (nearest, asymmetric, floor) and for cross-attention Transpose, MatMul and Softmax — the forms the
/// gradient-graph builder expects. GroupNorm is decomposed (Reshape → mean → centred → variance →
/// divide by √(v+ε) → Reshape → scale and shift with [C,1,1] initializers). Initializer names are the TorchSharp parameter names.
/// Numerically the graph agrees with <see cref="UNet.forward"/> to float32 rounding (≈1e-6).
/// </remarks>
public static class OnnxExporter
{
    /// <summary>Name of the image input of the forward graph.</summary>
    public const string InputImage = "x_t";

    /// <summary>Name of the timestep input of the forward graph.</summary>
    public const string InputTimestep = "t";

    /// <summary>Name of the label input of a class-conditional network's forward graph.</summary>
    public const string InputLabel = ConditionSpec.DefaultLabelInput;

    /// <summary>Name of the output of the forward graph.</summary>
    public const string OutputNoise = "eps";

    /// <summary>Name of a text-conditioned network's embedding input, float [batch, L, D] (the caption encoder's output).</summary>
    public const string InputContext = "context";

    /// <summary>Name of the caption encoder's input, token ids int64 [batch, L].</summary>
    public const string InputTokens = "tokens";

    /// <summary>Name of the caption encoder's output, float [batch, L, D].</summary>
    public const string OutputContext = "context";

    /// <summary>Exports <paramref name="module"/> (pass the EMA network of a training run) to <paramref name="outDir"/>.</summary>
    /// <param name="module">The network; its <see cref="UNet.Config"/> is written as the architecture.</param>
    /// <param name="schedule">The noise schedule it was trained with.</param>
    /// <param name="training">How it was trained, or null.</param>
    /// <param name="outDir">The model directory (created if needed); <c>forward.onnx</c> and <c>model.json</c> are replaced.</param>
    /// <param name="name">The model's name in <c>model.json</c>.</param>
    /// <param name="afterForward">Called with the forward graph and the directory after <c>forward.onnx</c> is written and
    /// before <c>model.json</c> is: the place to write <c>vjp.onnx</c> from it. For a text-conditioned network the graph is
    /// forward.onnx composed with <c>text-encoder.onnx</c> (<see cref="PromptGraph"/>), the graph the engine runs.</param>
    /// <param name="checkpoint">For the raw weights of a training checkpoint: its step and learning rate, recorded in model.json.</param>
    /// <param name="classNames">For a class-conditional network, the classes' names (recorded in model.json's condition); or null.</param>
    /// <param name="lora">For a LoRA fine-tune, its base and adapters (model.json's <c>lora</c>); or null.</param>
    public static ExportedModel Export(
        UNet module,
        ScheduleSettings schedule,
        TrainingInfo? training,
        string outDir,
        string name = "ddpm-unet",
        Action<ModelProto, string>? afterForward = null,
        CheckpointInfo? checkpoint = null,
        IReadOnlyList<string>? classNames = null,
        LoraSpec? lora = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(schedule);
        ArgumentNullException.ThrowIfNull(outDir);
        Directory.CreateDirectory(outDir);
        var model = BuildForward(module, name);
        var forwardPath = Path.Combine(outDir, "forward.onnx");
        OnnxModelFile.Save(model, forwardPath);
        var config = module.Config;
        var condition = ConditionOf(config, classNames);
        if (config.Text is not null)
        {
            var encoder = BuildTextEncoder(module);
            OnnxModelFile.Save(encoder, Path.Combine(outDir, TextConditionSettings.EncoderFile));
            afterForward?.Invoke(PromptGraph.Compose(model, encoder, condition!, forwardPath), outDir);
        }
        else
        {
            afterForward?.Invoke(model, outDir);
        }
        var meta = new ModelMetadata
        {
            Name = name,
            ImageSize = config.ImageSize,
            Channels = config.Channels,
            Schedule = schedule,
            Architecture = config.ToJson(),
            Parameters = module.ParameterInfos(),
            Training = training,
            Checkpoint = checkpoint,
            Condition = condition,
            Lora = lora,
        };
        meta.Save(outDir);
        return new ExportedModel(outDir, forwardPath, Path.Combine(outDir, ModelMetadata.FileName), model, meta);
    }

    /// <summary>model.json's condition for a network built from <paramref name="config"/>: a label input for a class-conditional
    /// one (its null label the table's last row), a packed prompt for a text-conditioned one, null for an unconditional one.</summary>
    public static ConditionSpec? ConditionOf(UNetConfig config, IReadOnlyList<string>? classNames = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.Text is { } text)
        {
            return text.Spec(classNames ?? []);
        }
        return config.Classes == 0 ? null : new ConditionSpec
        {
            Kind = ConditionKind.Label,
            Input = InputLabel,
            Classes = config.Classes,
            NullLabel = config.NullLabel,
            ClassNames = classNames is { } names && names.Count == config.Classes ? names.ToArray() : [],
        };
    }

    /// <summary>The forward graph of <paramref name="module"/> with its current weights as initializers.</summary>
    public static ModelProto BuildForward(UNet module, string name = "ddpm-unet")
    {
        ArgumentNullException.ThrowIfNull(module);
        var writer = new Writer(module, name);
        return writer.Build();
    }

    /// <summary>The forward graph the engine runs for <paramref name="module"/>: <see cref="BuildForward"/>, for a text-conditioned
    /// network composed with <see cref="BuildTextEncoder"/> (<see cref="PromptGraph"/>: it takes the packed prompt). The
    /// gradient graph is derived from this one.</summary>
    public static ModelProto BuildRunnable(UNet module, string name = "ddpm-unet")
    {
        ArgumentNullException.ThrowIfNull(module);
        var forward = BuildForward(module, name);
        return module.Config.Text is null ? forward
            : PromptGraph.Compose(forward, BuildTextEncoder(module), ConditionOf(module.Config)!, $"the forward graph of {name}");
    }

    /// <summary>The caption encoder of a text-conditioned <paramref name="module"/>: <c>tokens</c> int64 [batch, L] →
    /// <c>context</c> float [batch, L, D]; initializers named as the TorchSharp parameters (<c>text.token.weight</c>, …).</summary>
    /// <exception cref="ArgumentException">The network has no text condition.</exception>
    public static ModelProto BuildTextEncoder(UNet module, string name = "caption-encoder")
    {
        ArgumentNullException.ThrowIfNull(module);
        var text = module.Config.Text ?? throw new ArgumentException("the network has no text condition", nameof(module));
        var weights = module.GetWeights();
        var shapes = module.CaptionEncoderInfos().ToDictionary(p => p.Name, p => p.Shape, StringComparer.Ordinal);
        var b = new GraphBuilder(name);
        int length = text.Length(), width = text.Width;
        string P(string n) => b.Initializer(UNet.CaptionEncoderPrefix + n, weights[UNet.CaptionEncoderPrefix + n], shapes[UNet.CaptionEncoderPrefix + n]);
        var tokens = b.Input(InputTokens, TensorData.Int64, -1, length);
        var e = b.Node("Gather", [P("token.weight"), tokens], b.Fresh("embedded"), Attr.Int("axis", 0));
        e = b.Node("Add", [e, P("position")], b.Fresh("positioned"));
        // The MLP on [batch, L, D]: MatMul with the transposed weight (a Transpose of the initializer, stored as TorchSharp has it).
        string Linear(string x, string layer)
        {
            var wt = b.Node("Transpose", [P($"{layer}.weight")], b.Fresh($"{layer}.weight_t"), Attr.Ints("perm", 1, 0));
            return b.Node("Add", [b.Node("MatMul", [x, wt], b.Fresh($"{layer}.matmul")), P($"{layer}.bias")], b.Fresh(layer));
        }
        var h = Linear(e, "fc1");
        h = b.Node("Mul", [h, b.Node("Sigmoid", [h], b.Fresh("fc1.sigmoid"))], b.Fresh("fc1.act"));
        h = Linear(h, "fc2");
        b.Node("Add", [e, h], OutputContext);
        b.Output(OutputContext, TensorData.Float, -1, length, width);
        return b.Build();
    }

    private sealed class Writer
    {
        private const string LoraA = LoraAdapter.Suffix + ".a";
        private const string LoraB = LoraAdapter.Suffix + ".b";

        private readonly GraphBuilder _b;
        private readonly UNetConfig _c;
        private readonly Dictionary<string, float[]> _weights;
        private readonly Dictionary<string, long[]> _shapes;
        private readonly Dictionary<string, string> _int64Constants = new(StringComparer.Ordinal);
        private readonly double? _loraScale;
        private string? _gnEps;
        private string? _loraScaleConstant;

        public Writer(UNet module, string name)
        {
            _b = new GraphBuilder(name);
            _c = module.Config;
            _weights = module.GetWeights();
            _shapes = module.AllParameterInfos().ToDictionary(p => p.Name, p => p.Shape, StringComparer.Ordinal);
            _loraScale = module.Config.Lora?.Scale;
        }

        public ModelProto Build()
        {
            int levels = _c.ChannelMultipliers.Count;
            int size = _c.ImageSize;
            var x = _b.Input(InputImage, TensorData.Float, -1, _c.Channels, size, size);
            var t = _b.Input(InputTimestep, TensorData.Int64, -1);

            var temb = TimeEmbedding(t);
            if (_c.Classes > 0)
            {
                // The label's row of the embedding table added to the time embedding: a Gather of per-example rows.
                var y = _b.Input(InputLabel, TensorData.Int64, -1);
                var table = Parameter("label.weight", _shapes["label.weight"]);
                var row = _b.Node("Gather", [table, y], _b.Fresh("label.embedding"), Attr.Int("axis", 0));
                temb = _b.Node("Add", [temb, row], _b.Fresh("time.with_label"));
            }
            var tact = Silu(temb, "time.act");
            var context = _c.Text is { } text ? _b.Input(InputContext, TensorData.Float, -1, text.Length(), text.Width) : null;

            var h = Conv(x, "conv_in", stride: 1, pad: 1);
            var skips = new (string Value, int Channels, int Size)[levels - 1];
            int ch = _c.LevelChannels(0);
            for (int i = 0; i < levels; i++)
            {
                h = ResBlock(h, tact, $"down{i}", ch, _c.LevelChannels(i), size);
                ch = _c.LevelChannels(i);
                if (i < levels - 1)
                {
                    skips[i] = (h, ch, size);
                    h = Conv(h, $"downsample{i}", stride: 2, pad: 1);
                    size /= 2;
                }
            }
            h = ResBlock(h, tact, "mid", ch, ch, size);
            if (context is not null)
            {
                h = CrossAttention(h, context, "mid_attn", ch, size);
            }
            var scales = _b.Constant("upsample_scales", [1f, 1f, 2f, 2f], 4);
            for (int i = levels - 2; i >= 0; i--)
            {
                h = _b.Node("Resize", [h, "", scales], _b.Fresh($"upsample{i}.nearest"),
                    Attr.String("mode", "nearest"),
                    Attr.String("coordinate_transformation_mode", "asymmetric"),
                    Attr.String("nearest_mode", "floor"));
                size *= 2;
                h = Conv(h, $"upsample{i}", stride: 1, pad: 1);
                h = _b.Node("Concat", [h, skips[i].Value], _b.Fresh($"up{i}.concat"), Attr.Int("axis", 1));
                h = ResBlock(h, tact, $"up{i}", ch + skips[i].Channels, skips[i].Channels, size);
                ch = skips[i].Channels;
            }
            h = GroupNorm(h, "norm_out", ch, size);
            h = Silu(h, "norm_out.act");
            var eps = Conv(h, "conv_out", stride: 1, pad: 1, output: OutputNoise);
            _b.Output(eps, TensorData.Float, -1, _c.Channels, _c.ImageSize, _c.ImageSize);
            return _b.Build();
        }

        private string TimeEmbedding(string t)
        {
            int half = _c.SinusoidDim / 2;
            var tf = _b.Node("Cast", [t], _b.Fresh("time.t_float"), Attr.Int("to", TensorData.Float));
            var col = _b.Node("Unsqueeze", [tf, Int64Constant("axes_1", 1)], _b.Fresh("time.t_column"));
            var freq = _b.Initializer("time.frequencies", _c.TimeFrequencies(), 1, half);
            var arg = _b.Node("Mul", [col, freq], _b.Fresh("time.arg"));
            var sin = _b.Node("Sin", [arg], _b.Fresh("time.sin"));
            var cos = _b.Node("Cos", [arg], _b.Fresh("time.cos"));
            var emb = _b.Node("Concat", [sin, cos], _b.Fresh("time.sinusoid"), Attr.Int("axis", 1));
            var h = Gemm(emb, "time.fc1");
            h = Silu(h, "time.fc1.act");
            return Gemm(h, "time.fc2");
        }

        private string ResBlock(string x, string tact, string prefix, int inCh, int outCh, int size)
        {
            var h = GroupNorm(x, $"{prefix}.norm1", inCh, size);
            h = Silu(h, $"{prefix}.norm1.act");
            h = Conv(h, $"{prefix}.conv1", stride: 1, pad: 1);
            var tp = Gemm(tact, $"{prefix}.time_proj");
            tp = _b.Node("Unsqueeze", [tp, Int64Constant("axes_2_3", 2, 3)], _b.Fresh($"{prefix}.time_proj.map"));
            h = _b.Node("Add", [h, tp], _b.Fresh($"{prefix}.add_time"));
            h = GroupNorm(h, $"{prefix}.norm2", outCh, size);
            h = Silu(h, $"{prefix}.norm2.act");
            h = Conv(h, $"{prefix}.conv2", stride: 1, pad: 1);
            var skip = inCh == outCh ? x : Conv(x, $"{prefix}.skip", stride: 1, pad: 0);
            return _b.Node("Add", [skip, h], _b.Fresh($"{prefix}.out"));
        }

        /// <summary>As <see cref="UNet.CrossAttention"/>: h + out(softmax(q kᵀ / √C) v), q from GroupNorm(h), k and v from the context.</summary>
        private string CrossAttention(string h, string context, string prefix, int channels, int size)
        {
            int length = _c.Text!.Length();
            var q = Conv(GroupNorm(h, $"{prefix}.norm", channels, size), $"{prefix}.q", stride: 1, pad: 0);
            q = _b.Node("Reshape", [q, Int64Constant($"shape_0_{channels}_m1", 0, channels, -1)], _b.Fresh($"{prefix}.q.flat"));
            q = _b.Node("Transpose", [q], _b.Fresh($"{prefix}.q.rows"), Attr.Ints("perm", 0, 2, 1));
            var ctx = _b.Node("Transpose", [context], _b.Fresh($"{prefix}.context.columns"), Attr.Ints("perm", 0, 2, 1));
            ctx = _b.Node("Unsqueeze", [ctx, Int64Constant("axes_3", 3)], _b.Fresh($"{prefix}.context.map"));
            var k = _b.Node("Reshape", [Conv(ctx, $"{prefix}.k", stride: 1, pad: 0), Int64Constant($"shape_0_{channels}_{length}", 0, channels, length)],
                _b.Fresh($"{prefix}.k.flat"));
            var v = _b.Node("Reshape", [Conv(ctx, $"{prefix}.v", stride: 1, pad: 0), Int64Constant($"shape_0_{channels}_{length}", 0, channels, length)],
                _b.Fresh($"{prefix}.v.flat"));
            v = _b.Node("Transpose", [v], _b.Fresh($"{prefix}.v.rows"), Attr.Ints("perm", 0, 2, 1));
            var scores = _b.Node("MatMul", [q, k], _b.Fresh($"{prefix}.scores"));
            scores = _b.Node("Mul", [scores, _b.Scalar($"{prefix}.scale", (float)(1.0 / Math.Sqrt(channels)))], _b.Fresh($"{prefix}.scaled"));
            var weights = _b.Node("Softmax", [scores], _b.Fresh($"{prefix}.weights"), Attr.Int("axis", -1));
            var o = _b.Node("MatMul", [weights, v], _b.Fresh($"{prefix}.attended"));
            o = _b.Node("Transpose", [o], _b.Fresh($"{prefix}.attended.columns"), Attr.Ints("perm", 0, 2, 1));
            o = _b.Node("Reshape", [o, Int64Constant($"shape_0_{channels}_{size}_{size}", 0, channels, size, size)], _b.Fresh($"{prefix}.attended.map"));
            return _b.Node("Add", [h, Conv(o, $"{prefix}.out", stride: 1, pad: 0)], _b.Fresh(prefix));
        }

        private string Conv(string x, string prefix, int stride, int pad, string? output = null)
        {
            var wShape = _shapes[$"{prefix}.weight"];
            var w = Parameter($"{prefix}.weight", wShape);
            var bias = Parameter($"{prefix}.bias", _shapes[$"{prefix}.bias"]);
            long k = wShape[2];
            bool adapted = _shapes.ContainsKey(prefix + LoraA);
            var y = _b.Node("Conv", [x, w, bias], adapted ? _b.Fresh(prefix) : output ?? _b.Fresh(prefix), ConvAttributes(k, stride, pad));
            if (!adapted)
            {
                return y;
            }
            // The adapter: A, a convolution of the layer's kernel, stride and padding to rank channels; B a 1×1 convolution back.
            var a = Parameter(prefix + LoraA, _shapes[prefix + LoraA]);
            var b = Parameter(prefix + LoraB, _shapes[prefix + LoraB]);
            var down = _b.Node("Conv", [x, a], _b.Fresh($"{prefix}_lora.down"), ConvAttributes(k, stride, pad));
            var up = _b.Node("Conv", [down, b], _b.Fresh($"{prefix}_lora.up"), ConvAttributes(1, 1, 0));
            return AddAdapter(y, up, prefix, output);
        }

        private static AttributeProto[] ConvAttributes(long k, int stride, int pad) =>
        [
            Attr.Ints("kernel_shape", k, k),
            Attr.Ints("strides", stride, stride),
            Attr.Ints("pads", pad, pad, pad, pad),
            Attr.Int("group", 1),
        ];

        private string Gemm(string x, string prefix)
        {
            var w = Parameter($"{prefix}.weight", _shapes[$"{prefix}.weight"]);
            var bias = Parameter($"{prefix}.bias", _shapes[$"{prefix}.bias"]);
            var y = _b.Node("Gemm", [x, w, bias], _b.Fresh(prefix), Attr.Int("transB", 1));
            if (!_shapes.ContainsKey(prefix + LoraA))
            {
                return y;
            }
            var a = Parameter(prefix + LoraA, _shapes[prefix + LoraA]);
            var b = Parameter(prefix + LoraB, _shapes[prefix + LoraB]);
            var down = _b.Node("Gemm", [x, a], _b.Fresh($"{prefix}_lora.down"), Attr.Int("transB", 1));
            var up = _b.Node("Gemm", [down, b], _b.Fresh($"{prefix}_lora.up"), Attr.Int("transB", 1));
            return AddAdapter(y, up, prefix, null);
        }

        /// <summary>The layer's output <paramref name="y"/> plus (alpha / rank) × its adapter's <paramref name="up"/>.</summary>
        private string AddAdapter(string y, string up, string prefix, string? output)
        {
            _loraScaleConstant ??= _b.Initializer("lora_scale", [(float)_loraScale!.Value]);
            var scaled = _b.Node("Mul", [up, _loraScaleConstant], _b.Fresh($"{prefix}_lora.scaled"));
            return _b.Node("Add", [y, scaled], output ?? _b.Fresh($"{prefix}.adapted"));
        }

        private string Silu(string x, string name)
        {
            var s = _b.Node("Sigmoid", [x], _b.Fresh(name + ".sigmoid"));
            return _b.Node("Mul", [x, s], _b.Fresh(name));
        }

        private string GroupNorm(string x, string prefix, int channels, int size)
        {
            int g = _c.Groups;
            var grouped = _b.Node("Reshape", [x, Int64Constant($"shape_0_{g}_m1", 0, g, -1)], _b.Fresh($"{prefix}.grouped"));
            var axes = Int64Constant("axes_2", 2);
            var mean = _b.Node("ReduceMean", [grouped, axes], _b.Fresh($"{prefix}.mean"), Attr.Int("keepdims", 1));
            var d = _b.Node("Sub", [grouped, mean], _b.Fresh($"{prefix}.centred"));
            var sq = _b.Node("Mul", [d, d], _b.Fresh($"{prefix}.squared"));
            var v = _b.Node("ReduceMean", [sq, axes], _b.Fresh($"{prefix}.var"), Attr.Int("keepdims", 1));
            _gnEps ??= _b.Initializer("groupnorm_eps", [(float)_c.GroupNormEpsilon]);
            var ve = _b.Node("Add", [v, _gnEps], _b.Fresh($"{prefix}.var_eps"));
            var sd = _b.Node("Sqrt", [ve], _b.Fresh($"{prefix}.std"));
            var n = _b.Node("Div", [d, sd], _b.Fresh($"{prefix}.normalised"));
            var y = _b.Node("Reshape", [n, Int64Constant($"shape_0_{channels}_{size}_{size}", 0, channels, size, size)], _b.Fresh($"{prefix}.ungrouped"));
            var gamma = Parameter($"{prefix}.weight", [channels, 1, 1]);
            var beta = Parameter($"{prefix}.bias", [channels, 1, 1]);
            var scaled = _b.Node("Mul", [y, gamma], _b.Fresh($"{prefix}.scaled"));
            return _b.Node("Add", [scaled, beta], _b.Fresh(prefix));
        }

        private string Parameter(string name, long[] dims) => _b.Initializer(name, _weights[name], dims);

        private string Int64Constant(string name, params long[] values)
        {
            if (!_int64Constants.TryGetValue(name, out var existing))
            {
                existing = _b.Initializer(name, values, values.Length);
                _int64Constants[name] = existing;
            }
            return existing;
        }
    }
}
