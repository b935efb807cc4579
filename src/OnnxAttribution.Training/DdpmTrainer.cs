using System.Diagnostics;
using System.Text.Json;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace OnnxAttribution.Training;

/// <summary>
/// Trains a <see cref="UNet"/> as a DDPM noise predictor (Ho et al. 2020, Algorithm 1): x₀ from the training subset,
/// t uniform in 0..T−1, ε ~ N(0, I), x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε, loss ‖ε − ε_θ(x_t, t)‖² (mean over pixels), Adam, and an
/// exponential moving average of the weights.
/// </summary>
/// <remarks>
/// Runs on the CPU. Everything random in step s is drawn from a generator seeded with <see cref="StepSeed"/>(seed, s), so a
/// run resumed from a checkpoint continues with the same batches and ends with bit-identical weights to an uninterrupted run
/// (given the same thread count). Adam is written out in tensor operations (PyTorch's formula) so its state is checkpointed exactly.
/// </remarks>
public static class DdpmTrainer
{
    private const double AdamBeta1 = 0.9;
    private const double AdamBeta2 = 0.999;
    private const double AdamEpsilon = 1e-8;

    /// <summary>The checkpoints kept in the checkpoint directory for resuming; older ones are deleted unless kept by
    /// <see cref="TrainingRecipe.KeepCheckpointsEvery"/>.</summary>
    private const int CheckpointsKept = 2;

    /// <summary>Trains as <paramref name="options"/> say, resuming from the newest checkpoint when asked to.</summary>
    /// <param name="options">The run's settings.</param>
    /// <param name="progress">Receives the loss and throughput every <see cref="TrainingRecipe.ProgressEvery"/> steps.</param>
    /// <param name="cancellationToken">Cancelling writes a checkpoint (when a directory is set) and throws.</param>
    /// <returns>The trained and EMA networks; the caller disposes them.</returns>
    /// <exception cref="UserInputException">The options are inconsistent (data geometry, sizes, ranges).</exception>
    /// <exception cref="ModelFileException">The checkpoint to resume from is damaged or belongs to another configuration.</exception>
    /// <exception cref="OperationCanceledException">The run was cancelled.</exception>
    /// <exception cref="AttributionException">The loss became NaN or infinite.</exception>
    public static TrainResult Train(TrainOptions options, IProgress<TrainProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        Validate(options);
        if (options.Recipe.Threads > 0)
        {
            torch.set_num_threads(options.Recipe.Threads);
        }
        var config = options.Model;
        var configJson = config.ToJson().ToJsonString();
        var schedule = new NoiseSchedule(options.Recipe.ScheduleOrDefault);

        var (model, ema, baseWeights) = NewNetworks(options);
        // What the optimizer updates: every parameter, or a LoRA network's adapters alone (the base stays frozen).
        var parameters = model.TrainableParameters().Select(p => p.Parameter).ToArray();
        var emaParameters = ema.TrainableParameters().Select(p => p.Parameter).ToArray();
        var adamM = parameters.Select(p => torch.zeros_like(p)).ToArray();
        var adamV = parameters.Select(p => torch.zeros_like(p)).ToArray();
        bool done = false;
        try
        {
            using (torch.no_grad())
            {
                for (int i = 0; i < parameters.Length; i++)
                {
                    emaParameters[i].copy_(parameters[i]);
                }
            }
            int step = 0;
            if (options.Resume && options.CheckpointDirectory is { } dir && TrainingCheckpoint.FindLatest(dir) is { } latest)
            {
                step = Restore(latest, options.Seed, configJson, model, ema, adamM, adamV);
                if (baseWeights is not null)
                {
                    LoraBase.RequireSameBase(model, baseWeights, options.BaseModel!, dir);
                }
            }

            using var data = SubsetTensor(options);
            using var labels = LabelTensor(options);
            using var sqrtAlphaBar = torch.tensor(schedule.AlphaBars.Select(a => (float)Math.Sqrt(a)).ToArray());
            using var sqrtOneMinusAlphaBar = torch.tensor(schedule.AlphaBars.Select(a => (float)Math.Sqrt(1 - a)).ToArray());

            var losses = new List<double>();
            var clock = Stopwatch.StartNew();
            var window = Stopwatch.StartNew();
            double windowLoss = 0;
            int windowSteps = 0;
            model.train();
            while (step < options.Recipe.Steps)
            {
                if (cancellationToken.IsCancellationRequested)
                {
                    if (options.CheckpointDirectory is not null)
                    {
                        SaveCheckpoint(options, step, configJson, model, ema, adamM, adamV);
                    }
                    cancellationToken.ThrowIfCancellationRequested();
                }
                double loss = Step(options, step, schedule.Timesteps, data, labels, sqrtAlphaBar, sqrtOneMinusAlphaBar, model, parameters, emaParameters, adamM, adamV);
                step++;
                losses.Add(loss);
                windowLoss += loss;
                windowSteps++;
                if (progress is not null && (step % options.Recipe.ProgressEvery == 0 || step == options.Recipe.Steps))
                {
                    double seconds = window.Elapsed.TotalSeconds;
                    progress.Report(new TrainProgress(step, options.Recipe.Steps, windowLoss / windowSteps,
                        windowSteps * options.Recipe.BatchSize / seconds, 1000 * seconds / windowSteps, clock.Elapsed));
                    windowLoss = 0;
                    windowSteps = 0;
                    window.Restart();
                }
                if (options.CheckpointDirectory is not null && (step % options.Recipe.CheckpointEvery == 0 || step == options.Recipe.Steps || IsKept(options, step)))
                {
                    SaveCheckpoint(options, step, configJson, model, ema, adamM, adamV);
                }
            }
            double finalLoss = losses.Count == 0 ? double.NaN : losses.Skip(Math.Max(0, losses.Count - 100)).Average();
            done = true;
            return new TrainResult(model, ema, step, finalLoss, clock.Elapsed, losses);
        }
        finally
        {
            foreach (var t in adamM.Concat(adamV))
            {
                t.Dispose();
            }
            if (!done)
            {
                model.Dispose();
                ema.Dispose();
            }
        }
    }

    /// <summary>The network to train and its moving average, both with the base's frozen weights for a LoRA fine-tune (and
    /// those weights, to check a resumed run against).</summary>
    private static (UNet Model, UNet Ema, Dictionary<string, float[]>? BaseWeights) NewNetworks(TrainOptions options)
    {
        var model = new UNet(options.Model, options.Seed);
        var ema = new UNet(options.Model);
        if (options.BaseModel is not { } baseDirectory)
        {
            return (model, ema, null);
        }
        try
        {
            var baseWeights = LoraBase.Weights(baseDirectory, options.Model);
            model.LoadBaseWeights(baseWeights, baseDirectory);
            ema.LoadBaseWeights(baseWeights, baseDirectory);
            return (model, ema, baseWeights);
        }
        catch
        {
            model.Dispose();
            ema.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The seed of step <paramref name="step"/>'s generator: SplitMix64 (Steele et al. 2014) of the run seed and the step,
    /// so steps draw independent streams and a resumed run draws what an uninterrupted one would.
    /// </summary>
    public static long StepSeed(long seed, int step)
    {
        ulong z = unchecked((ulong)seed + 0x9E3779B97F4A7C15UL * (ulong)(step + 1));
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        z ^= z >> 31;
        // A non-negative value: TorchSharp's generator takes the seed as a signed 64-bit number.
        return (long)(z >> 1);
    }

    /// <summary>
    /// The learning rate of the optimizer step taken after <paramref name="stepsDone"/> steps: linear warm-up from 0 over
    /// <paramref name="warmupSteps"/> steps, then <paramref name="learningRate"/>. For a checkpoint saved after S steps this is
    /// the η that TracIn pairs with its weights.
    /// </summary>
    public static double LearningRateAt(double learningRate, int warmupSteps, int stepsDone)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(stepsDone);
        return warmupSteps > 0 ? learningRate * Math.Min(1.0, (stepsDone + 1.0) / warmupSteps) : learningRate;
    }

    private static bool IsKept(TrainOptions o, int step) => o.Recipe.KeepCheckpointsEvery > 0 && step % o.Recipe.KeepCheckpointsEvery == 0;

    private static double Step(TrainOptions o, int step, int timesteps, Tensor data, Tensor? labels, Tensor sqrtAb, Tensor sqrtOneMinusAb,
        UNet model, Parameter[] parameters, Parameter[] emaParameters, Tensor[] adamM, Tensor[] adamV)
    {
        using var scope = torch.NewDisposeScope();
        using var gen = new Generator((ulong)StepSeed(o.Seed, step));
        int b = o.Recipe.BatchSize;
        var idx = torch.randint(data.shape[0], [b], generator: gen);
        var x0 = data.index_select(0, idx);
        var t = torch.randint(timesteps, [b], generator: gen);
        var noise = torch.randn(x0.shape, generator: gen);
        var xt = (sqrtAb.index_select(0, t).view(b, 1, 1, 1) * x0).add(sqrtOneMinusAb.index_select(0, t).view(b, 1, 1, 1) * noise, KeptScalars.One);
        Tensor? y = null;
        if (labels is not null)
        {
            // Drawn after the images, timesteps and noise, so an unconditional run's draws are those it always made.
            var dropped = torch.rand([b], generator: gen).lt(o.ConditionDropout);
            y = labels.index_select(0, idx).masked_fill(dropped, o.Model.NullLabel);
        }
        var pred = model.Forward(xt, t, y);
        var loss = nn.functional.mse_loss(pred, noise);
        model.zero_grad();
        loss.backward();
        // Checked before the update, so no weight, Adam moment or EMA ever holds a NaN: the last checkpoint stays usable.
        float lossValue = loss.item<float>();
        bool finiteGradients = parameters.All(p => p.grad!.isfinite().all().item<bool>());
        if (!float.IsFinite(lossValue) || !finiteGradients)
        {
            string what = float.IsFinite(lossValue) ? $"the gradient of step {step + 1} is not finite (batch loss {lossValue})" : $"the batch loss of step {step + 1} is {lossValue}";
            throw new AttributionException($"training diverged: {what} (learning rate {LearningRateAt(o.Recipe.LearningRate, o.Recipe.WarmupStepsOrDefault, step):G3}); " +
                (o.CheckpointDirectory is { } d ? $"the checkpoints in {d} hold the weights before it; " : "") +
                "a lower learning rate, a longer warm-up or gradient clipping may help");
        }
        if (o.Recipe.GradientClipNormOrDefault > 0)
        {
            nn.utils.clip_grad_norm_(parameters, o.Recipe.GradientClipNormOrDefault);
        }
        int n = step + 1;
        double lr = LearningRateAt(o.Recipe.LearningRate, o.Recipe.WarmupStepsOrDefault, step);
        double bc1 = 1 - Math.Pow(AdamBeta1, n);
        double bc2 = 1 - Math.Pow(AdamBeta2, n);
        double emaDecay = Math.Min(o.Recipe.EmaDecay, (1.0 + step) / (10.0 + step));
        // Explicit scalars, alive until the step ends (see KeptScalars), not implicit conversions of these doubles.
        using Scalar beta1 = AdamBeta1, rest1 = 1 - AdamBeta1, beta2 = AdamBeta2, rest2 = 1 - AdamBeta2, epsilon = AdamEpsilon;
        using Scalar sqrtBc2 = Math.Sqrt(bc2), stepSize = -lr / bc1, decay = emaDecay, restDecay = 1 - emaDecay;
        using (torch.no_grad())
        {
            for (int i = 0; i < parameters.Length; i++)
            {
                var p = parameters[i];
                var g = p.grad!;
                adamM[i].mul_(beta1).add_(g, rest1);
                adamV[i].mul_(beta2).addcmul_(g, g, rest2);
                var denom = adamV[i].sqrt().div_(sqrtBc2).add_(epsilon);
                p.addcdiv_(adamM[i], denom, stepSize);
                emaParameters[i].mul_(decay).add_(p, restDecay);
            }
        }
        return lossValue;
    }

    private static Tensor SubsetTensor(TrainOptions o)
    {
        var d = o.Data;
        var subset = o.Indices is null ? d : d.Select(o.Indices);
        return torch.tensor(subset.Pixels.ToArray(), [subset.Count, subset.Channels, subset.Height, subset.Width]);
    }

    /// <summary>The training rows' condition values [N] int64: labels for a class-conditional model, packed captions for a
    /// text-conditioned one (<see cref="Core.Data.Captions"/>); null for an unconditional one.</summary>
    private static Tensor? LabelTensor(TrainOptions o)
    {
        if (!o.Model.Conditional)
        {
            return null;
        }
        var subset = o.Indices is null ? o.Data : o.Data.Select(o.Indices);
        return o.Model.Text is { } text
            ? torch.tensor(Core.Data.Captions.Packed(text.Spec([]), subset, text.ClassNames, "being trained"), [subset.Count])
            : torch.tensor(subset.Labels!.Select(l => (long)l).ToArray(), [subset.Count]);
    }

    /// <summary>Checks the options without training.</summary>
    /// <exception cref="UserInputException">The options are inconsistent (data geometry, sizes, ranges).</exception>
    internal static void Validate(TrainOptions o)
    {
        ArgumentNullException.ThrowIfNull(o.Data);
        ArgumentNullException.ThrowIfNull(o.Model);
        ArgumentNullException.ThrowIfNull(o.Recipe);
        o.Model.Validate();
        if ((o.Model.Lora is null) != (o.BaseModel is null))
        {
            throw new UserInputException(o.BaseModel is null
                ? "training options: a network with LoRA adapters is fine-tuned from a base model; none is set"
                : $"training options: base model {o.BaseModel} is set, but the network has no LoRA adapters to train on it");
        }
        if (o.Model.Conditional)
        {
            if (o.Data.Labels is not { } labels)
            {
                throw new UserInputException($"dataset '{o.Data.Name}' has no labels: a conditional model needs each training image's label (or its caption's class)");
            }
            int classes = o.Model.Text?.ClassNames.Count ?? o.Model.Classes;
            int bad = labels.ToList().FindIndex(l => l < 0 || l >= classes);
            if (bad >= 0)
            {
                throw new UserInputException($"dataset '{o.Data.Name}' row {bad} has label {labels[bad]}; the model has {classes} classes (0 … {classes - 1})");
            }
            if (!(o.ConditionDropout is >= 0 and < 1))
            {
                throw new UserInputException($"training options: condition dropout is {o.ConditionDropout}; expected a probability in [0, 1)");
            }
        }
        if (o.Recipe.KeepCheckpointsEvery < 0)
        {
            throw new UserInputException($"training options: keepCheckpointsEvery is {o.Recipe.KeepCheckpointsEvery}; expected 0 (keep the newest two) or a positive step count");
        }
        if (o.Recipe.KeepCheckpointsEvery > 0 && o.CheckpointDirectory is null)
        {
            throw new UserInputException($"training options: keepCheckpointsEvery is {o.Recipe.KeepCheckpointsEvery}, but no checkpoint directory is set to keep them in");
        }
        var d = o.Data;
        if (d.Channels != o.Model.Channels || d.Height != o.Model.ImageSize || d.Width != o.Model.ImageSize)
        {
            throw new UserInputException($"dataset '{d.Name}' holds {d.Channels}×{d.Height}×{d.Width} images; the model expects {o.Model.Channels}×{o.Model.ImageSize}×{o.Model.ImageSize}");
        }
        int count = o.Indices?.Count ?? d.Count;
        if (count < 1)
        {
            throw new UserInputException($"dataset '{d.Name}': the training subset is empty");
        }
        if (o.Recipe.Steps < 0 || o.Recipe.BatchSize < 1 || o.Recipe.ProgressEvery < 1 || o.Recipe.CheckpointEvery < 1 || o.Recipe.WarmupStepsOrDefault < 0 || o.Recipe.Threads < 0)
        {
            throw new UserInputException("training options: steps, warmupSteps and threads must be non-negative; batchSize, progressEvery and checkpointEvery positive");
        }
        if (!(o.Recipe.LearningRate > 0) || !(o.Recipe.EmaDecay >= 0 && o.Recipe.EmaDecay < 1) || !(o.Recipe.GradientClipNormOrDefault >= 0))
        {
            throw new UserInputException($"training options: need learningRate > 0 (got {o.Recipe.LearningRate}), " +
                $"0 ≤ emaDecay < 1 (got {o.Recipe.EmaDecay}), gradientClipNorm ≥ 0 (got {o.Recipe.GradientClipNormOrDefault})");
        }
    }

    private static void SaveCheckpoint(TrainOptions o, int step, string configJson, UNet model, UNet ema, Tensor[] adamM, Tensor[] adamV)
    {
        var dir = o.CheckpointDirectory!;
        Directory.CreateDirectory(dir);
        using var scope = torch.NewDisposeScope();
        var tensors = new List<(string, long[], float[])>();
        var all = model.named_parameters().Select(p => p.name).ToArray();
        var trained = model.TrainableParameters().Select(p => p.Name).ToArray();
        Add("model.", all, model.named_parameters().Select(p => (Tensor)p.parameter));
        Add("ema.", all, ema.named_parameters().Select(p => (Tensor)p.parameter));
        Add("adam_m.", trained, adamM);
        Add("adam_v.", trained, adamV);
        var ckpt = new TrainingCheckpoint { Step = step, Seed = o.Seed, ConfigJson = configJson, Tensors = tensors };
        ckpt.Save(Path.Combine(dir, TrainingCheckpoint.FileName(step)));
        var old = TrainingCheckpoint.List(dir).Where(c => !IsKept(o, c.Step)).ToList();
        for (int i = 0; i < old.Count - CheckpointsKept; i++)
        {
            File.Delete(old[i].Path);
        }

        void Add(string prefix, string[] names, IEnumerable<Tensor> values)
        {
            int i = 0;
            foreach (var t in values)
            {
                tensors.Add((prefix + names[i++], t.shape, t.detach().contiguous().data<float>().ToArray()));
            }
        }
    }

    private static int Restore(string path, long seed, string configJson, UNet model, UNet ema, Tensor[] adamM, Tensor[] adamV)
    {
        var ckpt = TrainingCheckpoint.Load(path);
        if (ckpt.Seed != seed)
        {
            throw new ModelFileException($"{path}: the checkpoint was written by a run with seed {ckpt.Seed}; this run has seed {seed}");
        }
        if (!JsonElement.DeepEquals(JsonDocument.Parse(ckpt.ConfigJson).RootElement, JsonDocument.Parse(configJson).RootElement))
        {
            throw new ModelFileException($"{path}: the checkpoint's U-Net config {ckpt.ConfigJson} differs from this run's {configJson}");
        }
        var byName = ckpt.Tensors.ToDictionary(t => t.Name, t => t.Values, StringComparer.Ordinal);
        var all = model.named_parameters().Select(p => p.name).ToArray();
        model.LoadWeights(Pick("model.", all), path);
        ema.LoadWeights(Pick("ema.", all), path);
        var names = model.TrainableParameters().Select(p => p.Name).ToArray();
        var m = Pick("adam_m.", names);
        var v = Pick("adam_v.", names);
        using (torch.no_grad())
        {
            for (int i = 0; i < names.Length; i++)
            {
                using var mt = torch.tensor(m[names[i]], adamM[i].shape);
                using var vt = torch.tensor(v[names[i]], adamV[i].shape);
                adamM[i].copy_(mt);
                adamV[i].copy_(vt);
            }
        }
        return ckpt.Step;

        Dictionary<string, float[]> Pick(string prefix, string[] wanted)
        {
            var result = new Dictionary<string, float[]>(StringComparer.Ordinal);
            foreach (var name in wanted)
            {
                if (!byName.TryGetValue(prefix + name, out var values))
                {
                    throw new ModelFileException($"{path}: tensor '{prefix + name}' is missing from the checkpoint");
                }
                result[name] = values;
            }
            return result;
        }
    }
}
