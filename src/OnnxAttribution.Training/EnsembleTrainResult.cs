using OnnxAttribution.Core.Attribution.Ensembles;
using OnnxAttribution.Core.Attribution.Methods;

namespace OnnxAttribution.Training;

/// <summary>What an ensemble run wrote.</summary>
public sealed record EnsembleTrainResult(string Directory, EnsembleDesign Design, EnsembleScoring Scoring, IReadOnlyList<EnsembleMemberResult> Members);
