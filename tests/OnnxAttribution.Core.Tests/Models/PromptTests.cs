using OnnxAttribution.Core.Data;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Models;

namespace OnnxAttribution.Core.Tests.Models;

/// <summary>A text model's prompts as packed int64 condition values, the checks of its condition spec, and the captions of rows.</summary>
[TestFixture]
public sealed class PromptTests
{
    private static readonly ConditionSpec Spec = new()
    {
        Kind = ConditionKind.Text,
        Input = "prompt",
        NullLabel = 0,
        ClassNames = DatasetLocator.FashionMnistClasses.ToArray(),
        Encoder = "text-encoder.onnx",
        EncoderInput = "tokens",
        EncoderOutput = "context",
        EmbeddingInput = "context",
        Length = Captions.Length(DatasetLocator.FashionMnistClasses),
        Width = 16,
        Vocabulary = Captions.Vocabulary(DatasetLocator.FashionMnistClasses).ToArray(),
    };

    [Test]
    public void EncodePrompt_PacksWordsAsBaseVDigits_AndDecodesBack()
    {
        Assert.That(Spec.CheckError(), Is.Null);
        Assert.That(Spec.Length, Is.EqualTo(5), "a, the shade, and 't shirt top'");
        long v = Spec.Vocabulary!.Count;
        long packed = Spec.EncodePrompt("a dark sneaker", "--prompt");
        long a = 1, dark = 2, sneaker = Spec.Vocabulary.ToList().IndexOf("sneaker");
        Assert.That(packed, Is.EqualTo(a + (dark * v) + (sneaker * v * v)));
        Assert.That(Spec.Tokens(packed), Is.EqualTo(new[] { a, dark, sneaker, 0, 0 }));
        Assert.That(Spec.DecodePrompt(packed), Is.EqualTo("a dark sneaker"));
        Assert.That(Spec.NameOf(packed), Is.EqualTo("\"a dark sneaker\""));
        Assert.That(Spec.EncodePrompt("  A Dark, SNEAKER! ", "--prompt"), Is.EqualTo(packed), "case and punctuation are ignored");
        Assert.That(Spec.EncodePrompt("sneaker dark a", "--prompt"), Is.Not.EqualTo(packed), "word order counts");
        Assert.That(Spec.Accepts(packed) && Spec.Accepts(0) && !Spec.Accepts(-1) && !Spec.Accepts(Spec.PromptLimit()), Is.True);
        Assert.That(Spec.DecodePrompt(0), Is.Empty);
    }

    [TestCase("a red sneaker", "the word 'red' is not in the model's vocabulary")]
    [TestCase("", "--prompt is empty")]
    [TestCase(" ,.; ", "--prompt is empty")]
    [TestCase("a dark t shirt top sneaker", "--prompt has 6 words; the model reads at most 5")]
    public void EncodePrompt_BadPrompt_RefusedNamingTheOption(string prompt, string message) =>
        Assert.That(() => Spec.EncodePrompt(prompt, "--prompt"), Throws.TypeOf<UserInputException>().With.Message.Contains(message));

    [Test]
    public void Query_TakesTheConditionTheModelNeeds_AndRefusesTheOther()
    {
        var label = new ConditionSpec { Input = "y", Classes = 10, NullLabel = 10 };
        Assert.That(ConditionSpec.Query(Spec, null, "a bag", "--label", "--prompt"), Is.EqualTo(Spec.EncodePrompt("a bag", "x")));
        Assert.That(ConditionSpec.Query(label, 3, null, "--label", "--prompt"), Is.EqualTo(3));
        Assert.That(ConditionSpec.Query(null, null, null, "--label", "--prompt"), Is.Null);
        Assert.That(() => ConditionSpec.Query(Spec, 3, null, "--label", "--prompt"), Throws.TypeOf<UserInputException>().With.Message.Contains("--label: the model is conditioned on a prompt"));
        Assert.That(() => ConditionSpec.Query(Spec, null, null, "--label", "--prompt"), Throws.TypeOf<UserInputException>().With.Message.Contains("--prompt is required"));
        Assert.That(() => ConditionSpec.Query(label, null, "a bag", "--label", "--prompt"),
            Throws.TypeOf<UserInputException>().With.Message.Contains("--prompt: the model is conditioned on a class label"));
        Assert.That(() => ConditionSpec.Query(null, null, "a bag", "--label", "--prompt"), Throws.TypeOf<UserInputException>().With.Message.Contains("--prompt: the model is unconditional"));
        Assert.That(() => Spec.RequireValue(0, "labels[0]"), Throws.TypeOf<UserInputException>().With.Message.Contains("labels[0] is 0"), "the empty prompt is not a query's");
    }

    [Test]
    public void CheckError_ImpossibleTextConditions_NameTheField()
    {
        Assert.That((Spec with { Vocabulary = ["a", "b"] }).CheckError(), Does.Contain("padding"));
        Assert.That((Spec with { Vocabulary = ["", "a", "a"] }).CheckError(), Does.Contain("has 'a' twice"));
        Assert.That((Spec with { Vocabulary = ["", "Bag"] }).CheckError(), Does.Contain("lower-case"));
        Assert.That((Spec with { Length = 40 }).CheckError(), Does.Contain("does not pack into an int64"));
        Assert.That((Spec with { Encoder = "../x.onnx" }).CheckError(), Does.Contain("condition.encoder"));
        Assert.That((Spec with { EmbeddingInput = "prompt" }).CheckError(), Does.Contain("condition.embeddingInput"));
        Assert.That((Spec with { NullLabel = 3 }).CheckError(), Does.Contain("condition.nullLabel"));
        Assert.That((Spec with { Classes = 10 }).CheckError(), Does.Contain("condition.classes"));
    }

    [Test]
    public void Captions_DependOnTheRowAlone_ShadeByItsForeground()
    {
        var dark = Enumerable.Repeat(-1f, 256).ToArray();
        var light = (float[])dark.Clone();
        dark.AsSpan(0, 40).Fill(-0.3f);
        light.AsSpan(0, 40).Fill(0.6f);
        Assert.That(Captions.Of(dark, "Sneaker"), Is.EqualTo("a dark Sneaker"));
        Assert.That(Captions.Of(light, "Ankle boot"), Is.EqualTo("a light Ankle boot"));
        var locator = new DatasetLocator();
        var all = Captions.Packed(Spec, locator.Load("embedded", "0:40", 16), DatasetLocator.FashionMnistClasses, "test");
        var part = Captions.Packed(Spec, locator.Load("embedded", "20:40", 16), DatasetLocator.FashionMnistClasses, "test");
        Assert.That(part, Is.EqualTo(all[20..]), "a row's caption is the same in every subset");
        Assert.That(all.Select(Spec.DecodePrompt), Has.Some.Contains("dark").And.Some.Contains("light"));
    }
}
