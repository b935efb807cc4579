using OnnxAttribution.Core.Attribution.Ensembles;
using OnnxAttribution.Primitives;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Tests.Attribution;

public sealed class EnsembleDesignTests : TempDirectoryTest
{
    [TestCase(8, 1000)]
    [TestCase(4, 8)]
    [TestCase(5, 101)]
    [TestCase(2, 7)]
    public void Encode_AnySize_EveryGroupSeenByHalfAndMembersBalanced(int members, int groups)
    {
        var e = EnsembleDesign.Encode(members, groups, seed: 3);
        Assert.That(e, Has.Length.EqualTo(members));
        Assert.That(e, Has.All.Length.EqualTo(groups));
        for (int g = 0; g < groups; g++)
        {
            int seen = e.Count(code => code[g] == '1');
            Assert.That(seen, Is.EqualTo(members / 2 + (members % 2 == 1 && g % 2 == 1 ? 1 : 0)), $"group {g}");
        }
        var loads = e.Select(code => code.Count(c => c == '1')).ToArray();
        Assert.That(loads.Max() - loads.Min(), Is.LessThanOrEqualTo(1), string.Join(",", loads));
    }

    [Test]
    public void Encode_EightMembers_CodesAreVariedNotPairedComplements()
    {
        var e = EnsembleDesign.Encode(8, 1000, seed: 0);
        var codes = Enumerable.Range(0, 1000).Select(g => new string(e.Select(code => code[g]).ToArray())).ToList();
        // C(8,4) = 70 possible columns; a uniformly random draw of 1000 hits nearly all of them.
        Assert.That(codes.Distinct().Count(), Is.GreaterThanOrEqualTo(65));
        // A greedy balancing would make every odd column the complement of the one before it (then scores come in ± pairs).
        int complements = Enumerable.Range(0, 500).Count(p => codes[2 * p + 1] == new string(codes[2 * p].Select(c => c == '1' ? '0' : '1').ToArray()));
        Assert.That(complements, Is.LessThan(50));
    }

    [Test]
    public void Encode_SameSeed_SameMatrix_OtherSeed_Differs()
    {
        var first = EnsembleDesign.Encode(6, 50, 11);
        var again = EnsembleDesign.Encode(6, 50, 11);
        Assert.That(again, Is.EqualTo(first));
        Assert.That(EnsembleDesign.Encode(6, 50, 12), Is.Not.EqualTo(first));
    }

    [Test]
    public void Encode_OneMember_ThrowsUserInput()
    {
        Assert.That(() => EnsembleDesign.Encode(1, 10, 0), Throws.TypeOf<UserInputException>().With.Message.Contains("2 members"));
    }

    [Test]
    public void AssignGroups_Random_EqualSizesSeededAndNotInOrder()
    {
        var groups = EnsembleDesign.AssignGroups(1000, 64, GroupingKind.Random, seed: 5);
        var sizes = groups.GroupBy(g => g).Select(x => x.Count()).ToArray();
        Assert.Multiple(() =>
        {
            Assert.That(sizes, Has.Length.EqualTo(64));
            Assert.That(sizes, Has.All.InRange(15, 16));
            Assert.That(EnsembleDesign.AssignGroups(1000, 64, GroupingKind.Random, seed: 5), Is.EqualTo(groups));
            Assert.That(groups, Is.Not.EqualTo(EnsembleDesign.AssignGroups(1000, 64, GroupingKind.Random, seed: 6)));
            Assert.That(groups, Is.Not.EqualTo(EnsembleDesign.AssignGroups(1000, 64, GroupingKind.Contiguous, seed: 5)));
        });
    }

    [Test]
    public void AssignGroups_ContiguousOrOneRowPerGroup_InOrder()
    {
        Assert.That(EnsembleDesign.AssignGroups(10, 4, GroupingKind.Contiguous, 0), Is.EqualTo(new[] { 0, 0, 0, 1, 1, 2, 2, 2, 3, 3 }));
        Assert.That(EnsembleDesign.AssignGroups(6, 6, GroupingKind.Random, 9), Is.EqualTo(new[] { 0, 1, 2, 3, 4, 5 }));
        Assert.That(() => EnsembleDesign.AssignGroups(6, 7, GroupingKind.Random, 9), Throws.TypeOf<UserInputException>().With.Message.Contains("groups"));
    }

    [Test]
    public void MemberSeed_Members_DistinctNonNegativeAndSeeded()
    {
        var seeds = Enumerable.Range(0, 100).Select(m => EnsembleDesign.MemberSeed(7, m)).ToArray();
        Assert.That(seeds.Distinct().Count(), Is.EqualTo(100));
        Assert.That(seeds, Has.All.GreaterThanOrEqualTo(0));
        Assert.That(EnsembleDesign.MemberSeed(8, 0), Is.Not.EqualTo(seeds[0]));
    }

    [Test]
    public void SaveLoad_RoundTrip_EqualAndRowsOfFollowEncoding()
    {
        var design = EnsembleDesign.Create(12, 4, 4, GroupingKind.Random, 1, 2, 3, "abc");
        design.Save(TempDir);
        var loaded = EnsembleDesign.Load(TempDir);
        Assert.That(loaded.FirstDifference(design), Is.Null);
        for (int m = 0; m < 4; m++)
        {
            var expected = Enumerable.Range(0, 12).Where(i => design.Encoding[m][design.GroupOfRow[i]] == '1').ToArray();
            Assert.That(loaded.RowsOf(m), Is.EqualTo(expected));
            Assert.That(expected, Has.Length.EqualTo(6)); // 2 of 4 groups of 3 rows
        }
        Assert.That(loaded.FirstDifference(design with { EncodingSeed = 9 }), Is.EqualTo("encodingSeed"));
    }

    [Test]
    public void Load_GroupSeenByEveryMember_ThrowsNamingField()
    {
        var design = EnsembleDesign.Create(4, 4, 2, GroupingKind.Contiguous, 0, 0, 0, "abc");
        (design with { Encoding = ["1100", "1011"] }).Save(TempDir);
        Assert.That(() => EnsembleDesign.Load(TempDir), Throws.TypeOf<UserInputException>()
            .With.Message.Contains("'encoding'").And.Message.Contains("group 0").And.Message.Contains(StoreFiles.Ensemble));
    }

    [Test]
    public void Load_Missing_SaysTrainEnsemble()
    {
        Assert.That(() => EnsembleDesign.Load(TempDir), Throws.TypeOf<UserInputException>().With.Message.Contains("train-ensemble"));
    }
}
