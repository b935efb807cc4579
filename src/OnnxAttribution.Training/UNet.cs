using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace OnnxAttribution.Training;

/// <summary>
/// The DDPM U-Net ε_θ(x_t, t) (Ho et al. 2020) in TorchSharp: <c>forward(x_t [B,C,H,W] float32, t [B] int64) → ε [B,C,H,W]</c>.
/// </summary>
/// <remarks>
/// Parameter names (<c>named_parameters</c>) are the initializer names of the exported <c>forward.onnx</c>, e.g.
/// <c>down0.conv1.weight</c>, <c>time.fc1.bias</c>. The module owns its parameters: dispose it.
/// See <see cref="UNetConfig"/> for the layout; <see cref="OnnxExporter"/> writes the same computation as ONNX.
/// </remarks>
public sealed partial class UNet : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly TimeEmbedding _time;
    private readonly Embedding? _label;
    private readonly CaptionEncoder? _text;
    private readonly CrossAttention? _midAttention;
    private readonly Conv2d _convIn;
    private readonly ResBlock[] _down;
    private readonly Conv2d[] _downsample;
    private readonly ResBlock _mid;
    private readonly Conv2d[] _upsample;
    private readonly ResBlock[] _up;
    private readonly GroupNorm _normOut;
    private readonly Conv2d _convOut;
    private readonly LoraAdapter? _convInLora;
    private readonly LoraAdapter?[] _downsampleLora;
    private readonly LoraAdapter?[] _upsampleLora;
    private readonly LoraAdapter? _convOutLora;

    /// <summary>Builds a freshly initialised network (TorchSharp's default initialisation).</summary>
    /// <param name="config">The architecture.</param>
    /// <param name="seed">When given, the parameters are drawn from a generator seeded with it, so two networks built with
    /// the same seed are bit-identical. When null, the global TorchSharp generator is used.</param>
    /// <exception cref="UserInputException">The config is invalid.</exception>
    public UNet(UNetConfig config, long? seed = null) : base("unet")
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        if (seed is { } s)
        {
            torch.manual_seed(s);
        }
        int levels = config.ChannelMultipliers.Count;
        int tdim = config.TimeEmbeddingDim;
        _time = new TimeEmbedding(config);
        register_module("time", _time);
        if (config.Classes > 0)
        {
            _label = nn.Embedding(config.Classes + 1, tdim);
            register_module("label", _label);
        }
        _convIn = nn.Conv2d(config.Channels, config.LevelChannels(0), 3, padding: 1);
        register_module("conv_in", _convIn);
        _convInLora = Adapt(Register, "conv_in", _convIn, config.Lora, LoraTargets.All);

        _down = new ResBlock[levels];
        _downsample = new Conv2d[levels - 1];
        _downsampleLora = new LoraAdapter?[levels - 1];
        int ch = config.LevelChannels(0);
        for (int i = 0; i < levels; i++)
        {
            _down[i] = new ResBlock(ch, config.LevelChannels(i), tdim, config);
            register_module($"down{i}", _down[i]);
            ch = config.LevelChannels(i);
            if (i < levels - 1)
            {
                _downsample[i] = nn.Conv2d(ch, ch, 3, stride: 2, padding: 1);
                register_module($"downsample{i}", _downsample[i]);
                _downsampleLora[i] = Adapt(Register, $"downsample{i}", _downsample[i], config.Lora, LoraTargets.All);
            }
        }
        _mid = new ResBlock(ch, ch, tdim, config);
        register_module("mid", _mid);
        if (config.Text is { } text)
        {
            _text = new CaptionEncoder(text);
            register_module(CaptionEncoderPrefix.TrimEnd('.'), _text);
            _midAttention = new CrossAttention(ch, text.Width, config);
            register_module("mid_attn", _midAttention);
        }

        _upsample = new Conv2d[levels - 1];
        _upsampleLora = new LoraAdapter?[levels - 1];
        _up = new ResBlock[levels - 1];
        for (int i = levels - 2; i >= 0; i--)
        {
            _upsample[i] = nn.Conv2d(ch, ch, 3, padding: 1);
            register_module($"upsample{i}", _upsample[i]);
            _upsampleLora[i] = Adapt(Register, $"upsample{i}", _upsample[i], config.Lora, LoraTargets.All);
            _up[i] = new ResBlock(ch + config.LevelChannels(i), config.LevelChannels(i), tdim, config);
            register_module($"up{i}", _up[i]);
            ch = config.LevelChannels(i);
        }
        _normOut = NewGroupNorm(config.Groups, ch, config.GroupNormEpsilon);
        register_module("norm_out", _normOut);
        _convOut = nn.Conv2d(ch, config.Channels, 3, padding: 1);
        register_module("conv_out", _convOut);
        _convOutLora = Adapt(Register, "conv_out", _convOut, config.Lora, LoraTargets.All);
    }

    private void Register(string name, nn.Module module) => register_module(name, module);

    /// <summary>The architecture this network was built from.</summary>
    public UNetConfig Config { get; }

    /// <summary>The number of trainable scalars.</summary>
    public long ParameterCount => parameters().Sum(p => p.numel());

    /// <summary>Predicts the noise ε in <paramref name="xt"/> at timesteps <paramref name="t"/> (an unconditional network).</summary>
    /// <param name="xt">Noisy images [B, C, H, W], float32.</param>
    /// <param name="t">Integer timesteps [B], int64 (0-based: 0..T−1).</param>
    /// <exception cref="InvalidOperationException">The network is class-conditional: use <see cref="Forward"/> with labels.</exception>
    public override Tensor forward(Tensor xt, Tensor t) => Forward(xt, t, null);

    /// <summary>Predicts the noise ε in <paramref name="xt"/> at timesteps <paramref name="t"/> under labels <paramref name="y"/>.</summary>
    /// <param name="xt">Noisy images [B, C, H, W], float32.</param>
    /// <param name="t">Integer timesteps [B], int64 (0-based: 0..T−1).</param>
    /// <param name="y">Class labels [B], int64 in 0 … classes (classes = the null label) for a class-conditional network; packed
    /// prompts [B] for a text-conditioned one (0 = the empty prompt); null for an unconditional one.</param>
    /// <exception cref="InvalidOperationException">Labels missing for a conditional network, or given to an unconditional one.</exception>
    public Tensor Forward(Tensor xt, Tensor t, Tensor? y)
    {
        if (Config.Conditional != (y is not null))
        {
            throw new InvalidOperationException(y is not null ? "this U-Net is unconditional: it takes no labels" : "this U-Net is conditional: pass the labels or prompts");
        }
        using var scope = torch.NewDisposeScope();
        var time = _time.forward(t);
        var temb = nn.functional.silu(_label is null ? time : time.add(_label.forward(y!), KeptScalars.One));
        var h = Conv(_convIn, _convInLora, xt);
        var skips = new Tensor[_down.Length - 1];
        for (int i = 0; i < _down.Length; i++)
        {
            h = _down[i].forward(h, temb);
            if (i < _down.Length - 1)
            {
                skips[i] = h;
                h = Conv(_downsample[i], _downsampleLora[i], h);
            }
        }
        h = _mid.forward(h, temb);
        if (_midAttention is not null)
        {
            h = _midAttention.forward(h, _text!.forward(y!));
        }
        for (int i = _up.Length - 1; i >= 0; i--)
        {
            h = nn.functional.interpolate(h, scale_factor: [2.0, 2.0], mode: InterpolationMode.Nearest);
            h = Conv(_upsample[i], _upsampleLora[i], h);
            h = torch.cat([h, skips[i]], 1);
            h = _up[i].forward(h, temb);
        }
        h = Conv(_convOut, _convOutLora, nn.functional.silu(_normOut.forward(h)));
        return h.MoveToOuterDisposeScope();
    }

    /// <summary>The prefix of a text-conditioned network's caption encoder parameters (exported to their own graph).</summary>
    public const string CaptionEncoderPrefix = "text.";

    /// <summary>
    /// The attributed parameters' names and shapes in <c>named_parameters</c> order (the order of <c>model.json</c>): every
    /// parameter of forward.onnx, or for a LoRA network (<see cref="UNetConfig.Lora"/>) the adapters' alone, the base being
    /// frozen. A text-conditioned network's caption encoder is trained with it but not attributed: its parameters are left out.
    /// </summary>
    public IReadOnlyList<ParameterInfo> ParameterInfos() =>
        TrainableParameters().Where(p => !IsCaptionEncoder(p.Name)).Select(p => new ParameterInfo(p.Name, p.Parameter.shape)).ToList();

    /// <summary>Every parameter's name and shape in forward.onnx, the frozen base weights of a LoRA network included (the
    /// caption encoder's are in its own graph).</summary>
    public IReadOnlyList<ParameterInfo> AllParameterInfos() =>
        named_parameters().Where(p => !IsCaptionEncoder(p.name)).Select(p => new ParameterInfo(p.name, p.parameter.shape)).ToList();

    /// <summary>The caption encoder's parameters' names and shapes (none for a network without a text condition).</summary>
    public IReadOnlyList<ParameterInfo> CaptionEncoderInfos() =>
        named_parameters().Where(p => IsCaptionEncoder(p.name)).Select(p => new ParameterInfo(p.name, p.parameter.shape)).ToList();

    private static bool IsCaptionEncoder(string name) => name.StartsWith(CaptionEncoderPrefix, StringComparison.Ordinal);

    /// <summary>The parameters training changes: all of them, or for a LoRA network the adapters' (<c>…_lora.a</c>, <c>…_lora.b</c>).</summary>
    public IReadOnlyList<(string Name, Parameter Parameter)> TrainableParameters() =>
        named_parameters().Where(p => Config.Lora is null || LoraAdapter.IsAdapterParameter(p.name)).Select(p => (p.name, p.parameter)).ToList();

    /// <summary>
    /// Loads a base network's weights into this LoRA network: every parameter that is not an adapter's, from
    /// <paramref name="baseWeights"/> (the base's parameters by name), and stops them from being trained.
    /// </summary>
    /// <exception cref="ModelFileException">The base has a parameter this network lacks, or lacks one it has, or a size differs.</exception>
    public void LoadBaseWeights(IReadOnlyDictionary<string, float[]> baseWeights, string source)
    {
        ArgumentNullException.ThrowIfNull(baseWeights);
        var frozen = named_parameters().Where(p => !LoraAdapter.IsAdapterParameter(p.name)).ToList();
        var names = new HashSet<string>(frozen.Select(p => p.name), StringComparer.Ordinal);
        if (baseWeights.Keys.FirstOrDefault(k => !names.Contains(k)) is { } extra)
        {
            throw new ModelFileException($"{source}: the base's parameter '{extra}' is not one of this network's (is the base's architecture the same?)");
        }
        using var noGrad = torch.no_grad();
        foreach (var (name, p) in frozen)
        {
            if (!baseWeights.TryGetValue(name, out var values) || values.LongLength != p.numel())
            {
                throw new ModelFileException($"{source}: the base has no parameter '{name}' of {p.numel()} values [{string.Join(",", p.shape)}]");
            }
            using var src = torch.tensor(values, p.shape);
            p.copy_(src);
        }
        FreezeBase();
    }

    /// <summary>Copies every parameter's values out, by name (row-major, float32).</summary>
    public Dictionary<string, float[]> GetWeights()
    {
        using var scope = torch.NewDisposeScope();
        var result = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var (name, p) in named_parameters())
        {
            result[name] = p.detach().cpu().contiguous().data<float>().ToArray();
        }
        return result;
    }

    /// <summary>Overwrites every parameter with the values of the same name (row-major, float32).</summary>
    /// <param name="weights">A value array per parameter name; extra names are an error, as are missing ones.</param>
    /// <param name="source">Where the weights come from, for messages (a file path).</param>
    /// <exception cref="ModelFileException">A parameter is missing, has the wrong number of values, or a name is unknown.</exception>
    public void LoadWeights(IReadOnlyDictionary<string, float[]> weights, string source)
    {
        ArgumentNullException.ThrowIfNull(weights);
        var named = named_parameters().ToList();
        var known = new HashSet<string>(named.Select(p => p.name), StringComparer.Ordinal);
        foreach (var name in weights.Keys)
        {
            if (!known.Contains(name))
            {
                throw new ModelFileException($"{source}: weight '{name}' is not a parameter of this U-Net (its parameters: {string.Join(", ", known.Take(4))}, ...)");
            }
        }
        using var noGrad = torch.no_grad();
        foreach (var (name, p) in named)
        {
            if (!weights.TryGetValue(name, out var values))
            {
                throw new ModelFileException($"{source}: parameter '{name}' [{string.Join(",", p.shape)}] is missing");
            }
            if (values.LongLength != p.numel())
            {
                throw new ModelFileException($"{source}: parameter '{name}' needs {p.numel()} values for shape [{string.Join(",", p.shape)}], found {values.LongLength}");
            }
            using var src = torch.tensor(values, p.shape);
            p.copy_(src);
        }
    }

    /// <summary>Rebuilds the network of a model directory: the config from <c>model.json</c>, the weights from the
    /// initializers of its forward graph.</summary>
    /// <exception cref="ModelFileException">A file is missing or does not describe this architecture.</exception>
    public static UNet FromModelDirectory(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        var meta = ModelMetadata.Load(directory);
        var config = UNetConfig.FromJson(meta.Architecture, Path.Combine(directory, ModelMetadata.FileName));
        var forwardPath = Path.Combine(directory, meta.Forward);
        var net = new UNet(config);
        try
        {
            // Every parameter of the network: for a LoRA fine-tune model.json lists the adapters, the graph also holds the base.
            net.LoadWeights(net.ReadWeights(directory, meta), forwardPath);
            net.FreezeBase();
        }
        catch
        {
            net.Dispose();
            throw;
        }
        return net;
    }

    /// <summary>Every parameter of this architecture as a model folder holds them: forward.onnx's initializers, and a text model's
    /// caption encoder from its own graph.</summary>
    /// <exception cref="ModelFileException">A file is missing, or a parameter is missing or of another size.</exception>
    internal Dictionary<string, float[]> ReadWeights(string directory, ModelMetadata meta)
    {
        var forwardPath = Path.Combine(directory, meta.Forward);
        var weights = OnnxWeights.Read(forwardPath, AllParameterInfos());
        if (meta.Condition is { Kind: ConditionKind.Text } text)
        {
            foreach (var (name, values) in OnnxWeights.Read(Runtime.PromptGraph.EncoderPath(forwardPath, text), CaptionEncoderInfos()))
            {
                weights[name] = values;
            }
        }
        return weights;
    }

    /// <summary>
    /// <paramref name="conv"/>'s forward on <paramref name="x"/> (a square kernel; stride and padding as the module has them),
    /// with its low-rank <paramref name="adapter"/> when it has one.
    /// Unless both channel counts are multiples of 16 (or the input is an image of 1–3 channels), it is taken as im2col
    /// (<c>unfold</c>) and a matrix product: the same function up to float32 rounding.
    /// </summary>
    /// <remarks>
    /// With libtorch 2.10 under TorchSharp 0.107.0 on AVX-512 CPUs, <c>conv2d</c> reads uninitialised memory when a channel
    /// count is not a multiple of 16, so its output or its input gradient picks up NaNs whenever freed memory held them.
    /// <c>UNetTests.ForwardBackward_ChannelsNotMultiplesOf16_StayFiniteOverNaNFilledMemory</c> fills the allocator's memory
    /// with NaN first: through <c>conv2d</c> it fails at 8 and 24 base channels. Layers of 16, 32 or 64 channels and image
    /// inputs were not affected when tried, so the shipped models (32 base channels) only go this way for the final
    /// convolution.
    /// With an adapter the layer runs once with the merged weight W + scale · B A (one convolution; the same function as
    /// W x + scale · B (A x), which is how the exported graph writes it), and autograd carries the gradient to A and B.
    /// </remarks>
    internal static Tensor Conv(Conv2d conv, LoraAdapter? adapter, Tensor x)
    {
        if (adapter is null)
        {
            return ConvWith(conv, null, x);
        }
        using var scope = torch.NewDisposeScope();
        return ConvWith(conv, conv.weight!.add(adapter.DeltaWeight(), KeptScalars.One), x).MoveToOuterDisposeScope();
    }

    /// <summary>A low-rank adapter of <paramref name="layer"/>, registered through <paramref name="register"/> as <c>{name}_lora</c>,
    /// when <paramref name="lora"/> targets layers of kind <paramref name="kind"/>; null otherwise.</summary>
    internal static LoraAdapter? Adapt(Action<string, nn.Module> register, string name, nn.Module layer, LoraSettings? lora, LoraTargets kind)
    {
        if (lora is null || (lora.Targets != LoraTargets.All && lora.Targets != kind))
        {
            return null;
        }
        var adapter = layer switch
        {
            Conv2d conv => LoraAdapter.ForConv(conv, lora),
            Linear linear => LoraAdapter.ForLinear(linear, lora),
            _ => throw new ArgumentException($"no LoRA adapter for a {layer.GetType().Name}", nameof(layer)),
        };
        register(name + LoraAdapter.Suffix, adapter);
        return adapter;
    }

    /// <summary>
    /// Draws every adapter's B (zero in a fresh adapter) uniform in ±<paramref name="bound"/> from <paramref name="seed"/>, so a
    /// fresh LoRA network's A matrices have nonzero gradients: what a gradient check of fresh networks needs to test anything
    /// of A. No-op for a network without adapters.
    /// </summary>
    public void RandomizeAdapters(long seed, double bound = 0.1)
    {
        using var noGrad = torch.no_grad();
        using var generator = new torch.Generator((ulong)seed);
        foreach (var (_, p) in named_parameters().Where(p => p.name.EndsWith(LoraAdapter.Suffix + ".b", StringComparison.Ordinal)))
        {
            p.uniform_(-bound, bound, generator);
        }
    }

    /// <summary>Stops a LoRA network's base weights from being trained (no-op for a network without adapters).</summary>
    internal void FreezeBase()
    {
        if (Config.Lora is null)
        {
            return;
        }
        foreach (var (name, p) in named_parameters())
        {
            if (!LoraAdapter.IsAdapterParameter(name))
            {
                p.requires_grad_(false);
            }
        }
    }

    internal static Tensor Conv(Conv2d conv, Tensor x) => ConvWith(conv, null, x);

    /// <summary><paramref name="conv"/>'s forward with <paramref name="weightOverride"/> in place of its own weight when given (see
    /// <see cref="Conv(Conv2d, LoraAdapter?, Tensor)"/>).</summary>
    private static Tensor ConvWith(Conv2d conv, Tensor? weightOverride, Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var weight = weightOverride ?? conv.weight!;
        long outChannels = weight.shape[0], inChannels = weight.shape[1], kernel = weight.shape[2];
        long b = x.shape[0], stride = conv.stride[0];
        long padding = conv.padding?[0] ?? throw new InvalidOperationException("UNet.Conv takes convolutions with explicit padding");
        if (outChannels % 16 == 0 && (inChannels % 16 == 0 || inChannels <= 3))
        {
            return (weightOverride is null ? conv.forward(x) : nn.functional.conv2d(x, weight, conv.bias, [stride], [padding])).MoveToOuterDisposeScope();
        }
        long h = ((x.shape[2] + (2 * padding) - kernel) / stride) + 1, w = ((x.shape[3] + (2 * padding) - kernel) / stride) + 1;
        var cols = nn.functional.unfold(x, kernel, padding: padding, stride: stride);
        var y = torch.matmul(weight.view(outChannels, -1), cols).add(conv.bias!.view(1, outChannels, 1), KeptScalars.One);
        return y.view(b, outChannels, h, w).MoveToOuterDisposeScope();
    }

    private static GroupNorm NewGroupNorm(int groups, int channels, double eps) => new(groups, channels, eps);

    /// <summary>
    /// GroupNorm (Wu &amp; He 2018) with scale 1 and shift 0 at start, on <c>functional.group_norm</c>. TorchSharp 0.107.0's
    /// <c>nn.GroupNorm</c> module leaves its affine parameters uninitialised (whatever the allocator returns).
    /// </summary>
    internal sealed class GroupNorm : nn.Module<Tensor, Tensor>
    {
        private readonly Parameter _weight;
        private readonly Parameter _bias;

        public GroupNorm(int groups, int channels, double eps) : base("groupnorm")
        {
            Groups = groups;
            Epsilon = eps;
            _weight = nn.Parameter(torch.ones(channels));
            _bias = nn.Parameter(torch.zeros(channels));
            register_parameter("weight", _weight);
            register_parameter("bias", _bias);
        }

        public int Groups { get; }

        public double Epsilon { get; }

        public override Tensor forward(Tensor x) => nn.functional.group_norm(x, Groups, _weight, _bias, Epsilon);
    }

    /// <summary>Sinusoidal embedding of t → Linear → SiLU → Linear (the SiLU after it is applied by the caller).</summary>
    internal sealed class TimeEmbedding : nn.Module<Tensor, Tensor>
    {
        private readonly Linear _fc1;
        private readonly Linear _fc2;
        private readonly LoraAdapter? _fc1Lora;
        private readonly LoraAdapter? _fc2Lora;
        private readonly float[] _frequencies;

        public TimeEmbedding(UNetConfig config) : base("time")
        {
            _frequencies = config.TimeFrequencies();
            _fc1 = nn.Linear(config.SinusoidDim, config.TimeEmbeddingDim);
            register_module("fc1", _fc1);
            _fc1Lora = Adapt((n, m) => register_module(n, m), "fc1", _fc1, config.Lora, LoraTargets.Linear);
            _fc2 = nn.Linear(config.TimeEmbeddingDim, config.TimeEmbeddingDim);
            register_module("fc2", _fc2);
            _fc2Lora = Adapt((n, m) => register_module(n, m), "fc2", _fc2, config.Lora, LoraTargets.Linear);
        }

        public override Tensor forward(Tensor t)
        {
            using var scope = torch.NewDisposeScope();
            var freq = torch.tensor(_frequencies, [1, _frequencies.Length], device: t.device);
            var arg = t.to_type(ScalarType.Float32).unsqueeze(1) * freq;
            var emb = torch.cat([torch.sin(arg), torch.cos(arg)], 1);
            var h = nn.functional.silu(LoraAdapter.Linear(_fc1, _fc1Lora, emb));
            return LoraAdapter.Linear(_fc2, _fc2Lora, h).MoveToOuterDisposeScope();
        }
    }

    /// <summary>GN → SiLU → Conv3×3 → + Linear(SiLU(temb)) → GN → SiLU → Conv3×3, plus the input (1×1 conv when the
    /// channel count changes).</summary>
    internal sealed class ResBlock : nn.Module<Tensor, Tensor, Tensor>
    {
        private readonly GroupNorm _norm1;
        private readonly Conv2d _conv1;
        private readonly Linear _timeProj;
        private readonly GroupNorm _norm2;
        private readonly Conv2d _conv2;
        private readonly Conv2d? _skip;
        private readonly LoraAdapter? _conv1Lora;
        private readonly LoraAdapter? _timeProjLora;
        private readonly LoraAdapter? _conv2Lora;
        private readonly LoraAdapter? _skipLora;

        public ResBlock(int inChannels, int outChannels, int timeDim, UNetConfig config) : base("resblock")
        {
            InChannels = inChannels;
            OutChannels = outChannels;
            _norm1 = NewGroupNorm(config.Groups, inChannels, config.GroupNormEpsilon);
            register_module("norm1", _norm1);
            _conv1 = nn.Conv2d(inChannels, outChannels, 3, padding: 1);
            register_module("conv1", _conv1);
            _conv1Lora = Adapt((n, m) => register_module(n, m), "conv1", _conv1, config.Lora, LoraTargets.Conv);
            _timeProj = nn.Linear(timeDim, outChannels);
            register_module("time_proj", _timeProj);
            _timeProjLora = Adapt((n, m) => register_module(n, m), "time_proj", _timeProj, config.Lora, LoraTargets.Linear);
            _norm2 = NewGroupNorm(config.Groups, outChannels, config.GroupNormEpsilon);
            register_module("norm2", _norm2);
            _conv2 = nn.Conv2d(outChannels, outChannels, 3, padding: 1);
            register_module("conv2", _conv2);
            _conv2Lora = Adapt((n, m) => register_module(n, m), "conv2", _conv2, config.Lora, LoraTargets.Conv);
            if (inChannels != outChannels)
            {
                _skip = nn.Conv2d(inChannels, outChannels, 1);
                register_module("skip", _skip);
                _skipLora = Adapt((n, m) => register_module(n, m), "skip", _skip, config.Lora, LoraTargets.All);
            }
        }

        public int InChannels { get; }

        public int OutChannels { get; }

        /// <param name="x">[B, in, H, W].</param>
        /// <param name="tembAct">SiLU of the time embedding, [B, timeDim].</param>
        public override Tensor forward(Tensor x, Tensor tembAct)
        {
            using var scope = torch.NewDisposeScope();
            var h = Conv(_conv1, _conv1Lora, nn.functional.silu(_norm1.forward(x)));
            var time = LoraAdapter.Linear(_timeProj, _timeProjLora, tembAct);
            h = h.add(time.unsqueeze(2).unsqueeze(3), KeptScalars.One);
            h = Conv(_conv2, _conv2Lora, nn.functional.silu(_norm2.forward(h)));
            var skip = _skip is null ? x : Conv(_skip, _skipLora, x);
            return skip.add(h, KeptScalars.One).MoveToOuterDisposeScope();
        }
    }
}
