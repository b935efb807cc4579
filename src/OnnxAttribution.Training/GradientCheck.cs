using OnnxAttribution.Runtime.Gradients;
using static TorchSharp.torch;

namespace OnnxAttribution.Training;

/// <summary>
/// Proves the exported graphs: ONNX Runtime's forward output against TorchSharp's, and every parameter's per-example
/// gradient from the gradient graph against TorchSharp autograd run one example at a time (docs/design.md: float32,
/// relative error ≤ 1e-4 per layer).
/// </summary>
public static class GradientCheck
{
    /// <summary>Checks <paramref name="vjp"/> (a gradient graph of <paramref name="module"/>'s weights) against autograd.</summary>
    /// <param name="module">The TorchSharp network with the same weights as the graph.</param>
    /// <param name="vjp">An open gradient-graph session.</param>
    /// <param name="modelLabel">Names the model in the report.</param>
    /// <param name="options">Batch sizes, timesteps, bars.</param>
    public static IReadOnlyList<GradientCheckCase> Run(UNet module, VjpSession vjp, string modelLabel, GradientCheckOptions options)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(vjp);
        ArgumentNullException.ThrowIfNull(options);
        var config = module.Config;
        if (vjp.Channels != config.Channels || vjp.ImageSize != config.ImageSize)
        {
            throw new ArgumentException($"{vjp.Label}: image geometry {vjp.Channels}×{vjp.ImageSize}² differs from the network's {config.Channels}×{config.ImageSize}²");
        }
        // The attributed parameters (of a LoRA network: the adapters; not a caption encoder's), those the gradient graph differentiates.
        var parameters = module.ParameterInfos().Select(p => p.Name).ToList();
        var missing = parameters.Where(p => !vjp.GradientOutputs.Contains("grad." + p)).ToList();
        if (missing.Count > 0)
        {
            throw new ArgumentException($"{vjp.Label}: the gradient graph has no output for parameter(s) {string.Join(", ", missing.Take(5))}");
        }

        var cases = new List<GradientCheckCase>();
        var rng = new Random(unchecked((int)options.Seed));
        foreach (int batch in options.BatchSizes)
        {
            var groups = batch == 1 ? options.Timesteps.Select(t => new[] { t }).ToList() : [Enumerable.Range(0, batch).Select(i => options.Timesteps[i % options.Timesteps.Count]).ToArray()];
            foreach (var ts in groups)
            {
                cases.Add(RunCase(module, vjp, modelLabel, parameters, ts, rng));
            }
        }
        return cases;
    }

    private static GradientCheckCase RunCase(UNet module, VjpSession vjp, string label, List<string> parameters, long[] ts, Random rng)
    {
        int batch = ts.Length;
        int c = vjp.Channels, s = vjp.ImageSize;
        int per = c * s * s;
        var x = Normal(rng, batch * per);
        var cot = Normal(rng, batch * per);
        // A conditional network's labels: every class and the null label can come up (drawn after x and the cotangent, so an
        // unconditional check draws what it always did).
        int classes = module.Config.Classes;
        long[]? y = module.Config.Text is { } text ? RandomPrompts(rng, text, batch)
            : classes == 0 ? null : Enumerable.Range(0, batch).Select(_ => (long)rng.Next(classes + 1)).ToArray();
        var onnx = vjp.Run(x, ts, cot, batch, null, y ?? []);

        // Forward: the whole batch at once.
        double forwardErr;
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            var eps = module.Forward(tensor(x, [batch, c, s, s]), tensor(ts, [batch]), y is null ? null : tensor(y, [batch])).contiguous().data<float>().ToArray();
            var onnxEps = onnx[VjpSession.OutputEps];
            forwardErr = 0;
            for (int i = 0; i < eps.Length; i++)
            {
                forwardErr = Math.Max(forwardErr, Math.Abs(eps[i] - onnxEps[i]));
            }
        }

        // Gradients: autograd one example at a time with that example's cotangent.
        var reference = parameters.ToDictionary(p => p, _ => 0.0);
        var abs = parameters.ToDictionary(p => p, _ => 0.0);
        var sizes = module.TrainableParameters().ToDictionary(p => p.Name, p => p.Parameter.numel());
        for (int b = 0; b < batch; b++)
        {
            using var scope = NewDisposeScope();
            module.zero_grad();
            var xb = tensor(x.AsSpan(b * per, per).ToArray(), [1, c, s, s]);
            var cb = tensor(cot.AsSpan(b * per, per).ToArray(), [1, c, s, s]);
            var loss = (module.Forward(xb, tensor(new[] { ts[b] }, [1]), y is null ? null : tensor(new[] { y[b] }, [1])) * cb).sum();
            loss.backward();
            foreach (var (name, p) in module.TrainableParameters().Where(p => abs.ContainsKey(p.Name)))
            {
                var expected = p.grad is { } g ? g.contiguous().data<float>().ToArray() : new float[p.numel()];
                var got = onnx["grad." + name];
                int n = expected.Length;
                for (int i = 0; i < n; i++)
                {
                    abs[name] = Math.Max(abs[name], Math.Abs(got[b * n + i] - expected[i]));
                    reference[name] = Math.Max(reference[name], Math.Abs(expected[i]));
                }
            }
        }
        module.zero_grad();
        // A parameter whose true gradient vanishes — a bias added just before a GroupNorm with one channel per group, which
        // takes the channel's mean away again — has float32 noise (≈1e-7) on both sides; its error is measured against
        // VanishingScale × the case's largest gradient instead of its own, or noise against noise would read as 100%.
        double floor = VanishingScale * reference.Values.DefaultIfEmpty(0).Max();
        var layers = parameters.Select(p =>
        {
            double scale = Math.Max(reference[p], floor);
            return new LayerGradientError(p, sizes[p], scale > 0 ? abs[p] / scale : abs[p], abs[p]);
        }).ToList();
        var worst = layers.MaxBy(l => l.MaxRelativeError)!;
        return new GradientCheckCase(label, batch, ts, forwardErr, worst.MaxRelativeError, worst.Parameter, layers);
    }

    /// <summary>The fraction of a case's largest parameter gradient below which a parameter's gradient counts as vanishing
    /// (its error is then relative to this fraction of the largest, not to itself).</summary>
    public const double VanishingScale = 1e-2;

    /// <summary>Random prompts of a text-conditioned network: each word position a random token (padding included), the
    /// empty prompt among them.</summary>
    private static long[] RandomPrompts(Random rng, TextConditionSettings text, int batch)
    {
        var spec = text.Spec([]);
        long limit = spec.PromptLimit();
        return Enumerable.Range(0, batch).Select(i => i == 0 ? 0 : rng.NextInt64(limit)).ToArray();
    }

    private static float[] Normal(Random rng, int n)
    {
        var r = new float[n];
        for (int i = 0; i < n; i++)
        {
            double u1 = 1 - rng.NextDouble(), u2 = rng.NextDouble();
            r[i] = (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return r;
    }
}
