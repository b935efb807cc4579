using System.Text.Json;
using System.Text.Json.Nodes;
using OnnxAttribution.Core;
using OnnxAttribution.Core.Models;
using OnnxAttribution.Onnx;
using OnnxAttribution.Onnx.Differentiation;

namespace OnnxAttribution.Training;

/// <summary>What a training run was asked to do and what it measured: <c>run.json</c> beside its checkpoints.</summary>
public sealed record TrainingRunInfo(
    string Dataset,
    string DatasetFingerprint,
    string Subset,
    int ImageSize,
    int Examples,
    ScheduleSettings Schedule,
    int Steps,
    int BatchSize,
    double LearningRate,
    double EmaDecay,
    long Seed,
    double FinalLoss,
    double TrainSeconds,
    double MillisecondsPerStep,
    double ImagesPerSecond,
    int Threads)
{
    public const string FileName = "run.json";

    public void Save(string runDirectory)
    {
        Directory.CreateDirectory(runDirectory);
        var path = Path.Combine(runDirectory, FileName);
        File.WriteAllText(path + ".tmp", JsonSerializer.Serialize(this, ModelMetadata.JsonOptions) + "\n");
        File.Move(path + ".tmp", path, overwrite: true);
    }

    /// <exception cref="ModelFileException">run.json is missing or invalid.</exception>
    public static TrainingRunInfo Load(string runDirectory)
    {
        var path = Path.Combine(runDirectory, FileName);
        if (!File.Exists(path))
        {
            throw new ModelFileException($"{path} not found: --checkpoint must be the --out folder of a finished 'train' run");
        }
        try
        {
            return JsonSerializer.Deserialize<TrainingRunInfo>(File.ReadAllText(path), ModelMetadata.JsonOptions)
                ?? throw new ModelFileException($"{path}: empty");
        }
        catch (JsonException e)
        {
            throw new ModelFileException($"{path}: not a valid run description ({e.Message})", e);
        }
    }
}

/// <summary>From a training run's checkpoints to a model directory: forward.onnx, vjp.onnx and model.json.</summary>
public static class ModelExport
{
    /// <summary>The EMA network of the latest checkpoint in <paramref name="runDirectory"/>.</summary>
    /// <exception cref="ModelFileException">There is no checkpoint, or it is damaged.</exception>
    public static UNet LoadEma(string runDirectory)
    {
        var latest = TrainingCheckpoint.FindLatest(runDirectory)
            ?? throw new ModelFileException($"{runDirectory}: no checkpoint found (expected files named {TrainingCheckpoint.FileName(0)} and so on)");
        var checkpoint = TrainingCheckpoint.Load(latest);
        var config = UNetConfig.FromJson(JsonNode.Parse(checkpoint.ConfigJson)?.AsObject(), latest);
        var weights = checkpoint.Tensors.Where(t => t.Name.StartsWith("ema.", StringComparison.Ordinal))
            .ToDictionary(t => t.Name["ema.".Length..], t => t.Values, StringComparer.Ordinal);
        var net = new UNet(config);
        try
        {
            net.LoadWeights(weights, latest);
        }
        catch
        {
            net.Dispose();
            throw;
        }
        return net;
    }

    /// <summary>The gradient graph of a model's forward graph, for its parameters: per-example gradients and Kronecker factors.</summary>
    public static Onnx.Proto.ModelProto BuildVjp(Onnx.Proto.ModelProto forward, IEnumerable<ParameterInfo> parameters) =>
        VjpBuilder.Build(forward, new VjpOptions
        {
            Parameters = parameters.Select(p => p.Name).ToList(),
            PerExampleGradients = true,
            KroneckerFactors = true,
        });

    /// <summary>Exports the EMA weights of a run into <paramref name="outDirectory"/>.</summary>
    public static ExportedModel Export(string runDirectory, string outDirectory, string name)
    {
        var info = TrainingRunInfo.Load(runDirectory);
        using var ema = LoadEma(runDirectory);
        var training = new TrainingInfo(info.Dataset, info.Subset, info.Steps, info.BatchSize, info.LearningRate, info.EmaDecay,
            info.Seed, info.FinalLoss, info.TrainSeconds);
        var parameters = ema.ParameterInfos();
        return OnnxExporter.Export(ema, info.Schedule, training, outDirectory, name,
            (forward, dir) => OnnxModelFile.Save(BuildVjp(forward, parameters), Path.Combine(dir, "vjp.onnx")));
    }
}
