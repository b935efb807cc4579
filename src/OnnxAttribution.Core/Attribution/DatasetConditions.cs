using System.Globalization;
using System.Security.Cryptography;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Attribution;

/// <summary>
/// Each training row's condition value for a conditional model (its class label, from the dataset; for a text model its
/// caption, "a dark sneaker", made from the label and the image and packed: <see cref="Captions"/>), and how a store
/// records them: meta.json settings <c>condition</c> (the kind and input) and <c>condition.sha256</c> (SHA-256 of the
/// rows' labels as little-endian int64), so a store is tied to the labels its rows were featurized with.
/// </summary>
internal static class DatasetConditions
{
    /// <summary>The meta.json setting naming the condition kind and input, e.g. <c>label:y</c>.</summary>
    public const string ConditionSetting = "condition";

    /// <summary>The meta.json setting holding the SHA-256 of the rows' labels.</summary>
    public const string FingerprintSetting = "condition.sha256";

    /// <summary>The rows' labels for a conditional model, null for an unconditional one.</summary>
    /// <param name="condition">The model's condition (model.json), or null.</param>
    /// <param name="data">The training rows.</param>
    /// <param name="model">The model folder, for messages.</param>
    /// <exception cref="UserInputException">The dataset has no labels, or one is not a class of the model.</exception>
    public static long[]? Of(ConditionSpec? condition, ImageDataset data, string model)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (condition is null)
        {
            return null;
        }
        if (condition.Kind == ConditionKind.Text)
        {
            return condition.ClassNames.Count > 0 ? Captions.Packed(condition, data, condition.ClassNames, model)
                : throw new UserInputException($"model {model} is conditioned on a prompt but model.json's condition records no class names: " +
                    "featurize makes each row's caption from its label's class name");
        }
        if (data.Labels is not { } labels)
        {
            throw new UserInputException($"dataset '{data.Name}' has no labels, and model {model} is conditioned on a class label (model.json " +
                $"field 'condition', input '{condition.Input}'): featurize needs each row's label");
        }
        var result = new long[labels.Count];
        for (int i = 0; i < result.Length; i++)
        {
            result[i] = labels[i];
            if (result[i] < 0 || result[i] >= condition.Classes)
            {
                throw new UserInputException($"dataset '{data.Name}' row {i} has label {labels[i]}; model {model} takes class labels 0 … {condition.Classes - 1}");
            }
        }
        return result;
    }

    /// <summary><paramref name="settings"/> with the condition settings added for a conditional model (unchanged otherwise).</summary>
    public static SortedDictionary<string, string> WithSettings(SortedDictionary<string, string> settings, ConditionSpec? condition, long[]? labels)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (condition is null || labels is null)
        {
            return settings;
        }
        settings[ConditionSetting] = Describe(condition);
        settings[FingerprintSetting] = Fingerprint(labels);
        return settings;
    }

    /// <summary>
    /// What identifies a training set for state derived from its rows (K-FAC's factors): the images' fingerprint, and for a
    /// conditional model the labels' too — the same images under other labels give other gradients.
    /// </summary>
    public static string DataIdentity(string datasetFingerprint, long[]? labels) =>
        labels is null ? datasetFingerprint : datasetFingerprint + ":" + Fingerprint(labels);

    /// <summary><see cref="DataIdentity(string, long[])"/> as a store's meta.json records it.</summary>
    public static string DataIdentity(StoreMeta meta)
    {
        ArgumentNullException.ThrowIfNull(meta);
        return meta.Settings.TryGetValue(FingerprintSetting, out var labels) ? meta.DatasetFingerprint + ":" + labels : meta.DatasetFingerprint;
    }

    /// <summary>How meta.json names a model's condition: <c>label:INPUT</c>.</summary>
    public static string Describe(ConditionSpec condition)
    {
        ArgumentNullException.ThrowIfNull(condition);
        return condition.Kind.ToString().ToLowerInvariant() + ":" + condition.Input;
    }

    /// <summary>SHA-256 (hex) of the labels as little-endian int64.</summary>
    public static string Fingerprint(ReadOnlySpan<long> labels)
    {
        var bytes = new byte[labels.Length * sizeof(long)];
        for (int i = 0; i < labels.Length; i++)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(i * sizeof(long)), labels[i]);
        }
        return Convert.ToHexStringLower(SHA256.HashData(bytes));
    }

    /// <summary>
    /// Checks that a store's recorded condition matches the model it is queried or extended with: a conditional model needs
    /// a store featurized with its condition, an unconditional one a store without.
    /// </summary>
    /// <exception cref="UserInputException">They differ; the message names the store and the model.</exception>
    public static void RequireMatch(IReadOnlyDictionary<string, string> storeSettings, ConditionSpec? condition, string store, string model)
    {
        ArgumentNullException.ThrowIfNull(storeSettings);
        storeSettings.TryGetValue(ConditionSetting, out var recorded);
        string? expected = condition is null ? null : Describe(condition);
        if (!string.Equals(recorded, expected, StringComparison.Ordinal))
        {
            throw new UserInputException(string.Create(CultureInfo.InvariantCulture,
                $"{store}: the store's rows were featurized with condition '{recorded ?? "none"}' (meta.json settings.condition), " +
                $"but model {model} takes '{expected ?? "none"}'"));
        }
    }
}
