using System.Globalization;
using OnnxAttribution.Onnx.Differentiation;
using OnnxAttribution.Onnx.Proto;
using OnnxAttribution.Onnx;
using OnnxAttribution.Primitives;
using OnnxAttribution.Store;

namespace OnnxAttribution.Runtime.Models;

/// <summary>
/// Makes a model folder from a diffusion model not trained here — an ε-prediction ONNX model as PyTorch's exporter
/// writes it — so that generate, featurize, attribute and the server take it unchanged. The graph is wired to the
/// engine's contract (inputs <c>x_t</c> [batch, C, H, W] float and <c>t</c> [batch] int64, the engine's 0-based step;
/// output <c>eps</c>): its image input and output are renamed, and its timestep input is fed from <c>t</c> through a
/// Cast and the given scale and offset. Then the result is run in ONNX Runtime on a batch of two, its trainable
/// parameters are found (<see cref="VjpBuilder.DefaultParameters"/>) and its gradient graph is derived.
/// </summary>
public static partial class ModelImport
{
    /// <summary>Imports the model; the folder is written to a temporary name and renamed, so it is complete or absent.</summary>
    /// <param name="options">The model and what the engine needs to know about it.</param>
    /// <returns>The model folder's metadata, as written to model.json.</returns>
    /// <exception cref="SettingException">An option does not fit the model (the message names the option and what the model has).</exception>
    /// <exception cref="ModelFileException">The file is not an ONNX model, ONNX Runtime cannot run the wired graph, or it cannot be differentiated (naming the node that blocks).</exception>
    /// <exception cref="UserInputException">The output folder already holds a model.</exception>
    public static ModelMetadata Import(ModelImportOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Schedule.CheckError() is { } scheduleError)
        {
            throw new SettingException("Schedule", options.Schedule, scheduleError);
        }
        if (File.Exists(Path.Combine(options.OutDirectory, ModelMetadata.FileName)))
        {
            throw new UserInputException($"{options.OutDirectory} already holds a model ({ModelMetadata.FileName}); import into another folder");
        }
        ModelProto model;
        try
        {
            model = OnnxModelFile.Load(options.ModelPath);
        }
        catch (Exception e) when (e is OnnxGraphException or FileNotFoundException)
        {
            throw new ModelFileException(e.Message, e);
        }
        var wiring = ImportWiring.Wire(model, options);
        var text = TextOf(model, options);
        var parameters = FindParameters(model, options);
        // A text model's gradient graph is derived from the graph the engine runs: the caption encoder composed in front.
        var differentiated = text is var (encoder, spec) ? PromptGraph.Compose(model, encoder, spec, options.ModelPath) : model;
        var (vjp, factors) = Differentiate(differentiated, parameters.Select(p => p.Name).ToList(), options.ModelPath);
        var meta = new ModelMetadata
        {
            Name = options.Name ?? Path.GetFileNameWithoutExtension(options.ModelPath),
            ImageSize = wiring.ImageSize,
            Channels = wiring.Channels,
            Schedule = options.Schedule,
            Parameters = parameters,
            Condition = text?.Condition ?? ConditionOf(options),
            Import = new ImportInfo(options.ModelPath, StoreMeta.FingerprintFile(options.ModelPath), wiring.ImageInput, wiring.TimestepInput, wiring.TimestepType,
                options.TimestepScale, options.TimestepOffset, wiring.Output, OpsetAdapter.OpsetOf(model), factors,
                options.Parameters?.ToList(), options.ExcludeParameters?.ToList()),
        };
        var temporary = options.OutDirectory.TrimEnd('/') + ".importing";
        if (Directory.Exists(temporary))
        {
            Directory.Delete(temporary, recursive: true);
        }
        Directory.CreateDirectory(temporary);
        try
        {
            OnnxModelFile.Save(model, Path.Combine(temporary, meta.Forward));
            OnnxModelFile.Save(vjp, Path.Combine(temporary, meta.Vjp));
            if (text is var (textEncoder, textCondition))
            {
                OnnxModelFile.Save(textEncoder, Path.Combine(temporary, textCondition.Encoder!));
            }
            CheckRuns(Path.Combine(temporary, meta.Forward), meta, wiring, options.ModelPath);
            meta.Save(temporary);
        }
        catch
        {
            Directory.Delete(temporary, recursive: true);
            throw;
        }
        if (Directory.Exists(options.OutDirectory))
        {
            if (Directory.EnumerateFileSystemEntries(options.OutDirectory).Any())
            {
                Directory.Delete(temporary, recursive: true);
                throw new UserInputException($"{options.OutDirectory} is not empty; import into a new or empty folder");
            }
            Directory.Delete(options.OutDirectory);
        }
        Directory.Move(temporary, options.OutDirectory);
        return meta;
    }

    /// <summary>The initializers that act as trainable parameters, with their shapes: the graph's default choice, or the patterns given.</summary>
    private static List<ParameterInfo> FindParameters(ModelProto model, ModelImportOptions options)
    {
        string source = options.ModelPath;
        var inits = model.Graph.Initializer.ToDictionary(i => i.Name, StringComparer.Ordinal);
        IReadOnlyList<string> names;
        if (options.Parameters is { } patterns)
        {
            var floats = model.Graph.Initializer.Where(i => i.DataType == TensorData.Float).Select(i => i.Name).ToList();
            foreach (var pattern in patterns)
            {
                if (!floats.Any(n => NamePattern.Matches(pattern, n)))
                {
                    throw new SettingException("Parameters", pattern, $"no float initializer of {source} matches it; its float initializers: {Sample(floats)}");
                }
            }
            names = floats.Where(n => patterns.Any(p => NamePattern.Matches(p, n))).ToList();
        }
        else
        {
            try
            {
                names = VjpBuilder.DefaultParameters(model);
            }
            catch (OnnxGraphException e)
            {
                throw new ModelFileException($"{source}: {e.Message}", e);
            }
        }
        if (options.ExcludeParameters is { } excluded)
        {
            foreach (var pattern in excluded)
            {
                if (!names.Any(n => NamePattern.Matches(pattern, n)))
                {
                    throw new SettingException("ExcludeParameters", pattern, $"it matches none of the parameters: {Sample(names)}");
                }
            }
            names = names.Where(n => !excluded.Any(p => NamePattern.Matches(p, n))).ToList();
        }
        if (names.Count == 0)
        {
            throw new ModelFileException($"{source}: no initializer acts as a trainable parameter (Conv/Gemm/MatMul weights, normalisation scales): nothing to attribute through");
        }
        return names.Select(n => new ParameterInfo(n, inits[n].Dims.ToArray())).ToList();
    }

    private static string Sample(IReadOnlyList<string> names) =>
        string.Join(", ", names.Take(12)) + (names.Count > 12 ? $", … ({names.Count} in all)" : "");

    /// <summary>The gradient graph with per-example gradients and, where every layer has them, Kronecker factors.</summary>
    private static (ModelProto Vjp, bool Factors) Differentiate(ModelProto forward, IReadOnlyList<string> parameters, string source)
    {
        var options = new VjpOptions { Parameters = parameters, PerExampleGradients = true, KroneckerFactors = true };
        try
        {
            return (VjpBuilder.Build(forward, options), true);
        }
        catch (OnnxGraphException)
        {
            // Factors are defined for plain Conv/Gemm/MatMul weights only; per-example gradients for every rule.
        }
        try
        {
            return (VjpBuilder.Build(forward, options with { KroneckerFactors = false }), false);
        }
        catch (OnnxGraphException e)
        {
            throw new ModelFileException($"{source}: cannot be differentiated: {e.Message}", e);
        }
    }

    /// <summary>model.json's condition for the options' label input, checked; null without one.</summary>
    /// <exception cref="SettingException">A label input without its class count, or a class count or null label without a label input.</exception>
    private static ConditionSpec? ConditionOf(ModelImportOptions o)
    {
        if (o.ConditionInput is null)
        {
            return o.Classes is null && o.NullLabel is null ? null
                : throw new SettingException(o.Classes is null ? "NullLabel" : "Classes", (object?)o.Classes ?? o.NullLabel, "goes with a class-label input: name it (--condition-input)");
        }
        var condition = new ConditionSpec
        {
            Input = o.ConditionInput,
            Classes = o.Classes ?? throw new SettingException("Classes", null, $"the label input '{o.ConditionInput}' needs the number of classes (--classes)"),
            NullLabel = o.NullLabel,
        };
        return condition.CheckError() is { } error ? throw new SettingException("Classes", o.Classes, error) : condition;
    }

    /// <summary>Runs the wired forward graph on two images at the first and last step; its ε̂ must be finite.</summary>
    private static void CheckRuns(string forwardPath, ModelMetadata meta, ImportWiring wiring, string source)
    {
        int batch = 2;
        int d = meta.Channels * meta.ImageSize * meta.ImageSize;
        var x = new float[batch * d];
        var random = new Random(1);
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = (float)(random.NextDouble() * 2 - 1);
        }
        var eps = new float[x.Length];
        try
        {
            using var denoiser = new OnnxDenoiser(forwardPath, meta.Channels, meta.ImageSize, null, meta.Condition);
            long[] conditions = meta.Condition switch
            {
                null => [],
                { Kind: ConditionKind.Text } => [1, 0], // the first word alone, and the empty prompt
                var c => [0, c.Classes - 1],
            };
            denoiser.Predict(x, [0, meta.Schedule.Timesteps - 1], conditions, batch, eps);
        }
        catch (Exception e) when (e is ArgumentException or AttributionException or Microsoft.ML.OnnxRuntime.OnnxRuntimeException)
        {
            string hint = wiring.BatchWasFixed
                ? $" The model's batch axis was fixed at {wiring.FixedBatch}; export it with a dynamic batch axis (torch.onnx.export(..., dynamic_axes=" +
                  "{input: {0: 'batch'}, ...}) or dynamo=True) so that shapes inside the graph follow the batch."
                : "";
            throw new ModelFileException($"{source}: ONNX Runtime cannot run the model on a batch of {batch}: {e.Message}.{hint}", e);
        }
        int bad = Array.FindIndex(eps, v => !float.IsFinite(v));
        if (bad >= 0)
        {
            throw new ModelFileException($"{source}: the output is not finite at element {bad.ToString(CultureInfo.InvariantCulture)} for x_t in [-1, 1] at t = 0 and T − 1");
        }
    }
}
