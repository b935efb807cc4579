using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace OnnxAttribution.Training;

public sealed partial class UNet
{
    /// <summary>
    /// The caption encoder of a text-conditioned network: the packed prompt [B] unpacked into L token ids (token j =
    /// ⌊prompt / Vʲ⌋ mod V), e = token embedding + position embedding, context = e + fc2(SiLU(fc1(e))): float [B, L, D].
    /// Exported as its own graph (<see cref="OnnxExporter.BuildTextEncoder"/>) from the token ids on.
    /// </summary>
    internal sealed class CaptionEncoder : nn.Module<Tensor, Tensor>
    {
        private readonly Embedding _token;
        private readonly Parameter _position;
        private readonly Linear _fc1;
        private readonly Linear _fc2;
        private readonly long[] _divisors;
        private readonly long _radix;

        public CaptionEncoder(TextConditionSettings text) : base("text")
        {
            var spec = text.Spec([]);
            _radix = spec.Vocabulary!.Count;
            _divisors = spec.PromptDivisors(); // the engine's unpacking, exact in int64 (a double power is not above 2⁵³)
            _token = nn.Embedding(_radix, text.Width);
            register_module("token", _token);
            _position = nn.Parameter(torch.randn(spec.Length, text.Width).mul_(0.02));
            register_parameter("position", _position);
            _fc1 = nn.Linear(text.Width, text.Width);
            register_module("fc1", _fc1);
            _fc2 = nn.Linear(text.Width, text.Width);
            register_module("fc2", _fc2);
        }

        /// <summary>The token ids [B, L] of packed prompts [B].</summary>
        public Tensor Tokens(Tensor prompts)
        {
            using var scope = torch.NewDisposeScope();
            var columns = _divisors.Select(d => prompts.div(d, rounding_mode: RoundingMode.floor).remainder(_radix).unsqueeze(1)).ToArray();
            return torch.cat(columns, 1).MoveToOuterDisposeScope();
        }

        /// <param name="prompts">Packed prompts [B], int64.</param>
        public override Tensor forward(Tensor prompts)
        {
            using var scope = torch.NewDisposeScope();
            var e = _token.forward(Tokens(prompts)).add(_position, KeptScalars.One);
            var h = _fc2.forward(nn.functional.silu(_fc1.forward(e)));
            return e.add(h, KeptScalars.One).MoveToOuterDisposeScope();
        }
    }

    /// <summary>
    /// Cross-attention from the feature map to the caption (one head): q = 1×1 conv of GroupNorm(h) [B, HW, C], k and v = 1×1
    /// convs of the context laid out as [B, D, L, 1], out = h + 1×1 conv of softmax(q kᵀ / √C) v.
    /// </summary>
    internal sealed class CrossAttention : nn.Module<Tensor, Tensor, Tensor>
    {
        private readonly GroupNorm _norm;
        private readonly Conv2d _q;
        private readonly Conv2d _k;
        private readonly Conv2d _v;
        private readonly Conv2d _out;

        public CrossAttention(int channels, int width, UNetConfig config) : base("cross_attention")
        {
            Channels = channels;
            _norm = NewGroupNorm(config.Groups, channels, config.GroupNormEpsilon);
            register_module("norm", _norm);
            _q = nn.Conv2d(channels, channels, 1);
            register_module("q", _q);
            _k = nn.Conv2d(width, channels, 1);
            register_module("k", _k);
            _v = nn.Conv2d(width, channels, 1);
            register_module("v", _v);
            _out = nn.Conv2d(channels, channels, 1);
            register_module("out", _out);
        }

        public int Channels { get; }

        /// <param name="h">[B, C, H, W].</param>
        /// <param name="context">[B, L, D].</param>
        public override Tensor forward(Tensor h, Tensor context)
        {
            using var scope = torch.NewDisposeScope();
            long b = h.shape[0], c = h.shape[1], height = h.shape[2], width = h.shape[3], l = context.shape[1];
            var q = Conv(_q, _norm.forward(h)).reshape(b, c, height * width).transpose(1, 2);
            var ctx = context.transpose(1, 2).unsqueeze(3);
            var k = Conv(_k, ctx).reshape(b, c, l);
            var v = Conv(_v, ctx).reshape(b, c, l).transpose(1, 2);
            var weights = torch.matmul(q, k).mul(1.0 / Math.Sqrt(c)).softmax(-1);
            var o = torch.matmul(weights, v).transpose(1, 2).reshape(b, c, height, width);
            return h.add(Conv(_out, o), KeptScalars.One).MoveToOuterDisposeScope();
        }
    }
}
