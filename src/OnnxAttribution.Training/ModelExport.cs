using System.Text.Json.Nodes;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Onnx;
using OnnxAttribution.Onnx.Differentiation;

namespace OnnxAttribution.Training;

/// <summary>From a training run's checkpoints to a model directory: forward.onnx, vjp.onnx and model.json.</summary>
public static class ModelExport
{
    /// <summary>The EMA network of the latest checkpoint in <paramref name="runDirectory"/>.</summary>
    /// <exception cref="ModelFileException">There is no checkpoint, or it is damaged.</exception>
    public static UNet LoadEma(string runDirectory)
    {
        var latest = TrainingCheckpoint.FindLatest(runDirectory)
            ?? throw new ModelFileException($"{runDirectory}: no checkpoint found (expected files named {TrainingCheckpoint.FileName(0)} and so on)");
        return Load(latest, "ema.");
    }

    /// <summary>One network of a checkpoint file: the tensors named <paramref name="prefix"/> + parameter name.</summary>
    private static UNet Load(string path, string prefix)
    {
        var checkpoint = TrainingCheckpoint.Load(path);
        var config = UNetConfig.FromJson(JsonNode.Parse(checkpoint.ConfigJson)?.AsObject(), path);
        var weights = checkpoint.Tensors.Where(t => t.Name.StartsWith(prefix, StringComparison.Ordinal))
            .ToDictionary(t => t.Name[prefix.Length..], t => t.Values, StringComparer.Ordinal);
        var net = new UNet(config);
        try
        {
            net.LoadWeights(weights, path);
        }
        catch
        {
            net.Dispose();
            throw;
        }
        return net;
    }

    /// <summary>The gradient graph of a model's forward graph, for its parameters (of a LoRA fine-tune: the adapters'):
    /// per-example gradients and Kronecker factors.</summary>
    public static Onnx.Proto.ModelProto BuildVjp(Onnx.Proto.ModelProto forward, IEnumerable<ParameterInfo> parameters) =>
        VjpBuilder.Build(forward, new VjpOptions
        {
            Parameters = parameters.Select(p => p.Name).ToList(),
            PerExampleGradients = true,
            KroneckerFactors = true,
        });

    /// <summary>Exports the EMA weights of a run into <paramref name="outDirectory"/> (with <paramref name="withVjp"/>, also vjp.onnx).</summary>
    public static ExportedModel Export(string runDirectory, string outDirectory, string name, bool withVjp = true)
    {
        var info = TrainingRunInfo.Load(runDirectory);
        using var ema = LoadEma(runDirectory);
        var parameters = ema.ParameterInfos();
        return OnnxExporter.Export(ema, info.Schedule, Training(info, info.Steps), outDirectory, name,
            withVjp ? (forward, dir) => OnnxModelFile.Save(BuildVjp(forward, parameters), Path.Combine(dir, "vjp.onnx")) : null,
            classNames: Core.Data.DatasetLocator.ClassNamesOf(info.Dataset), lora: LoraOf(info, ema.Config));
    }

    /// <summary>
    /// Exports the raw (non-EMA) weights of the checkpoint saved after <paramref name="step"/> steps — the weights training
    /// actually had, which TracIn needs — as forward.onnx and model.json, with the step and its learning rate in model.json
    /// (<see cref="ModelMetadata.Checkpoint"/>). No vjp.onnx: the gradient graph is built from forward.onnx where needed.
    /// </summary>
    /// <exception cref="ModelFileException">The run has no checkpoint of that step (the message lists those it has).</exception>
    public static ExportedModel ExportStep(string runDirectory, int step, string outDirectory, string name)
    {
        var info = TrainingRunInfo.Load(runDirectory);
        var checkpoints = TrainingCheckpoint.List(runDirectory);
        var path = checkpoints.Where(c => c.Step == step).Select(c => c.Path).FirstOrDefault()
            ?? throw new ModelFileException($"{runDirectory}: no checkpoint of step {step} ({TrainingCheckpoint.FileName(step)}); " +
                $"it has steps {string.Join(", ", checkpoints.Select(c => c.Step))} (keep more with 'train --keep-checkpoints-every N')");
        using var model = Load(path, "model.");
        // The run's loss and time are not those of this step: left out (NaN) rather than misreported.
        var training = Training(info, step) with { FinalLoss = double.NaN, TrainSeconds = double.NaN };
        return OnnxExporter.Export(model, info.Schedule, training, outDirectory, name,
            checkpoint: new CheckpointInfo(step, DdpmTrainer.LearningRateAt(info.LearningRate, info.WarmupSteps, step)),
            classNames: Core.Data.DatasetLocator.ClassNamesOf(info.Dataset), lora: LoraOf(info, model.Config));
    }

    /// <summary>model.json's <c>lora</c> record of a run: its base and adapters, or null for a run without adapters.</summary>
    /// <exception cref="ModelFileException">The network has adapters but run.json names no base.</exception>
    private static LoraSpec? LoraOf(TrainingRunInfo info, UNetConfig config) => config.Lora is not { } settings ? null
        : info.Base is { } baseModel && info.BaseSha256 is { } sha ? LoraBase.Spec(baseModel, sha, settings)
        : throw new ModelFileException($"{TrainingRunInfo.FileName}: the network has LoRA adapters but fields 'base' and 'baseSha256' are missing");

    private static TrainingInfo Training(TrainingRunInfo info, int steps) =>
        new(info.Dataset, info.Subset, steps, info.BatchSize, info.LearningRate, info.EmaDecay, info.Seed, info.FinalLoss, info.TrainSeconds);
}
