using OnnxAttribution.Primitives;

namespace OnnxAttribution.Runtime.Tests;

public sealed class SettingExceptionTests
{
    [Test]
    public void Message_NamesTheSettingAndTheSuggestion_InTheLibrarysWords()
    {
        var e = new SettingException("Device", ExecutionDevice.Cuda, "cannot load libcudart.so.13", ExecutionDevice.Cpu);

        Assert.That(e.Message, Is.EqualTo("Device = cuda: cannot load libcudart.so.13; use Device = cpu"));
        Assert.That(e, Is.InstanceOf<UserInputException>(), "a bad setting is bad input: exit 2, HTTP 400");
    }

    [Test]
    public void Describe_LetsAFrontEndNameItsOwnFlag()
    {
        var e = new SettingException("NoiseDraws", 0, "must be at least 1");

        Assert.That(e.KebabName, Is.EqualTo("noise-draws"));
        Assert.That(e.Describe((_, v) => $"--{e.KebabName} {v}"), Is.EqualTo("--noise-draws 0: must be at least 1"));
    }

    [Test]
    public void Show_WritesNumbersInTheInvariantCulture()
    {
        var previous = System.Globalization.CultureInfo.CurrentCulture;
        try
        {
            var comma = (System.Globalization.CultureInfo)System.Globalization.CultureInfo.InvariantCulture.Clone();
            comma.NumberFormat.NumberDecimalSeparator = ",";
            System.Globalization.CultureInfo.CurrentCulture = comma;
            Assert.That(new SettingException("Alpha", 1.5, "must be below 1").Message, Is.EqualTo("Alpha = 1.5: must be below 1"));
        }
        finally
        {
            System.Globalization.CultureInfo.CurrentCulture = previous;
        }
    }
}
