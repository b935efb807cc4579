using OnnxAttribution.Core.Data;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Core.Tests.Data;

public sealed class SubsetSpecTests : TempDirectoryTest
{
    [Test]
    public void Parse_Range_IsHalfOpen()
    {
        Assert.That(SubsetSpec.Parse("2:5").Resolve(10), Is.EqualTo(new[] { 2, 3, 4 }));
        Assert.That(SubsetSpec.Parse(":3").Resolve(10), Is.EqualTo(new[] { 0, 1, 2 }));
        Assert.That(SubsetSpec.Parse("8:").Resolve(10), Is.EqualTo(new[] { 8, 9 }));
    }

    [TestCase("all")]
    [TestCase("ALL")]
    [TestCase("")]
    public void Parse_All_SelectsEverything(string text)
    {
        var spec = SubsetSpec.Parse(text);
        Assert.That(spec.IsAll, Is.True);
        Assert.That(spec.Resolve(3), Is.EqualTo(new[] { 0, 1, 2 }));
    }

    [Test]
    public void Parse_CommaList_KeepsOrder()
    {
        Assert.That(SubsetSpec.Parse("3, 5,9,0").Resolve(10), Is.EqualTo(new[] { 3, 5, 9, 0 }));
    }

    [Test]
    public void Parse_File_ReadsOneIndexPerLine()
    {
        var path = Path.Combine(TempDir, "idx.txt");
        File.WriteAllText(path, "# chosen\n4\n\n 1 \n7\n");
        Assert.That(SubsetSpec.Parse("@" + path).Resolve(8), Is.EqualTo(new[] { 4, 1, 7 }));
    }

    [Test]
    public void Parse_FileWithBadLine_NamesFileAndLine()
    {
        var path = Path.Combine(TempDir, "idx.txt");
        File.WriteAllText(path, "4\nfive\n");
        Assert.That(() => SubsetSpec.Parse("@" + path),
            Throws.TypeOf<UserInputException>().With.Message.Contains(path + ":2"));
    }

    [Test]
    public void Parse_MissingFile_Throws()
    {
        Assert.That(() => SubsetSpec.Parse("@" + Path.Combine(TempDir, "none.txt")), Throws.TypeOf<UserInputException>());
    }

    [TestCase("a:b")]
    [TestCase("1,x")]
    [TestCase("-1")]
    [TestCase("5:2")]
    [TestCase("4:4")]
    public void Parse_Invalid_Throws(string text)
    {
        Assert.That(() => SubsetSpec.Parse(text), Throws.TypeOf<UserInputException>().With.Message.Contains(text));
    }

    [Test]
    public void Resolve_IndexOutOfRange_NamesIndexAndCount()
    {
        Assert.That(() => SubsetSpec.Parse("1,10").Resolve(10),
            Throws.TypeOf<UserInputException>().With.Message.Contains("index 10").And.Message.Contains("10 images"));
        Assert.That(() => SubsetSpec.Parse("0:2000").Resolve(100),
            Throws.TypeOf<UserInputException>().With.Message.Contains("100 images"));
    }

    [Test]
    public void Apply_List_SelectsImagesAndLabels()
    {
        var ds = new ImageDataset("d", 4, 1, 1, 2, [0, 0.1f, 1, 1.1f, 2, 2.1f, 3, 3.1f], [10, 11, 12, 13]);
        var sub = SubsetSpec.Parse("3,1").Apply(ds);
        Assert.That(sub.Count, Is.EqualTo(2));
        Assert.That(sub.Pixels.ToArray(), Is.EqualTo(new[] { 3, 3.1f, 1, 1.1f }));
        Assert.That(sub.Labels, Is.EqualTo(new[] { 13, 11 }));
    }

    [TestCase("10:")]
    [TestCase("@empty")]
    public void Resolve_SelectsNothing_RefusedSayingSo(string text)
    {
        File.WriteAllText(Path.Combine(TempDir, "empty"), "# no indices\n");
        var spec = SubsetSpec.Parse(text.Replace("@empty", "@" + Path.Combine(TempDir, "empty"), StringComparison.Ordinal));

        Assert.That(() => spec.Resolve(10), Throws.TypeOf<UserInputException>().With.Message.Contains("selects no images"));
    }
}
