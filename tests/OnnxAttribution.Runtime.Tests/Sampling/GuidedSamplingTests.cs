using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Runtime.Sampling;

namespace OnnxAttribution.Runtime.Tests.Sampling;

/// <summary>Class-conditional sampling: each image's label reaches the model, and classifier-free guidance combines the
/// label's and the null label's predictions as ε̂(∅) + w·(ε̂(y) − ε̂(∅)).</summary>
[TestFixture]
public sealed class GuidedSamplingTests
{
    private static readonly ConditionSpec ThreeClasses = new() { Classes = 3, NullLabel = 3 };

    /// <summary>ε̂ = 0.3·x + offset(y), offset(y) = 0.05·(y + 1): the label shifts the prediction.</summary>
    private sealed class LabelledDenoiser(ConditionSpec condition) : IDenoiser
    {
        public int Channels => 1;

        public int ImageSize => 2;

        public ConditionSpec? Condition => condition;

        public List<long[]> Seen { get; } = [];

        public void Predict(ReadOnlySpan<float> xt, ReadOnlySpan<long> t, int batch, Span<float> eps) =>
            throw new InvalidOperationException("a conditional denoiser is always given labels");

        public void Predict(ReadOnlySpan<float> xt, ReadOnlySpan<long> t, ReadOnlySpan<long> conditions, int batch, Span<float> eps)
        {
            Seen.Add(conditions.ToArray());
            for (int i = 0; i < xt.Length; i++)
            {
                eps[i] = (0.3f * xt[i]) + Offset(conditions[i / 4]);
            }
        }

        public static float Offset(long y) => 0.05f * (y + 1);
    }

    /// <summary>What guidance should compute, as a model of its own run at w = 1.</summary>
    private sealed class CombinedDenoiser(double guidance) : IDenoiser
    {
        public int Channels => 1;

        public int ImageSize => 2;

        public ConditionSpec? Condition => ThreeClasses;

        public void Predict(ReadOnlySpan<float> xt, ReadOnlySpan<long> t, int batch, Span<float> eps) => throw new InvalidOperationException();

        public void Predict(ReadOnlySpan<float> xt, ReadOnlySpan<long> t, ReadOnlySpan<long> conditions, int batch, Span<float> eps)
        {
            for (int i = 0; i < xt.Length; i++)
            {
                float labelled = (0.3f * xt[i]) + LabelledDenoiser.Offset(conditions[i / 4]);
                float unconditional = (0.3f * xt[i]) + LabelledDenoiser.Offset(3);
                eps[i] = (float)(unconditional + (guidance * (labelled - unconditional)));
            }
        }
    }

    private static readonly NoiseSchedule Schedule = new(new ScheduleSettings(ScheduleKind.Linear, 100));

    [Test]
    public void Sample_LabelsPerSeed_ReachTheModel()
    {
        var model = new LabelledDenoiser(ThreeClasses);
        new DiffusionSampler(model, Schedule).Sample([1, 2], new SamplerOptions(Steps: 3) { Labels = [2, 0] });
        Assert.That(model.Seen, Has.Count.EqualTo(3).And.All.EqualTo(new long[] { 2, 0 }));
    }

    [TestCase(0.0)]
    [TestCase(3.0)]
    public void Sample_Guidance_CombinesTheLabelAndTheNullLabel(double guidance)
    {
        var options = new SamplerOptions(Steps: 4) { Labels = [1, 2] };
        var guided = new DiffusionSampler(new LabelledDenoiser(ThreeClasses), Schedule).Sample([5, 6], options with { Guidance = guidance });
        var expected = new DiffusionSampler(new CombinedDenoiser(guidance), Schedule).Sample([5, 6], options);
        var plain = new DiffusionSampler(new LabelledDenoiser(ThreeClasses), Schedule).Sample([5, 6], options);
        Assert.That(guided.Images, Is.EqualTo(expected.Images).Within(1e-6f));
        Assert.That(guided.Images, Is.Not.EqualTo(plain.Images).Within(1e-4f));
    }

    [Test]
    public void Sample_BadLabels_RefusedNamingTheProblem()
    {
        var sampler = new DiffusionSampler(new LabelledDenoiser(ThreeClasses), Schedule);
        Assert.Multiple(() =>
        {
            Assert.That(() => sampler.Sample([1], new SamplerOptions(Steps: 2)), Throws.TypeOf<UserInputException>().With.Message.Contains("--label"));
            Assert.That(() => sampler.Sample([1], new SamplerOptions(Steps: 2) { Labels = [3] }),
                Throws.TypeOf<UserInputException>().With.Message.Contains("--label is 3"));
            Assert.That(() => sampler.Sample([1, 2, 3], new SamplerOptions(Steps: 2) { Labels = [0, 1] }),
                Throws.TypeOf<UserInputException>().With.Message.Contains("one per seed (3)"));
        });
        var noNull = new DiffusionSampler(new LabelledDenoiser(ThreeClasses with { NullLabel = null }), Schedule);
        Assert.That(() => noNull.Sample([1], new SamplerOptions(Steps: 2) { Labels = [0], Guidance = 2 }),
            Throws.TypeOf<UserInputException>().With.Message.Contains("null label"));
        var unconditional = new DiffusionSampler(new ConstantDenoiser(0.1f, 1, 2), Schedule);
        Assert.That(() => unconditional.Sample([1], new SamplerOptions(Steps: 2) { Labels = [0] }),
            Throws.TypeOf<UserInputException>().With.Message.Contains("unconditional"));
    }
}
