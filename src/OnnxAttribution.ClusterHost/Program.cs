using CommandLine;
using OnnxAttribution.ClusterHost;

using var parser = new Parser(s =>
{
    s.CaseInsensitiveEnumValues = true;
    s.HelpWriter = Console.Error;
});
return await parser.ParseArguments<SiloVerb, FeaturizeClusterVerb, QueryVerb>(args)
    .MapResult(
        (SiloVerb o) => HostCommands.RunSiloAsync(o),
        (FeaturizeClusterVerb o) => HostCommands.FeaturizeAsync(o),
        (QueryVerb o) => HostCommands.QueryAsync(o),
        _ => Task.FromResult(2));
