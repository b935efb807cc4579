using OnnxAttribution.Core.Attribution.Ensembles;
using OnnxAttribution.Core.Data;

namespace OnnxAttribution.Training;

/// <summary>The settings of an encoded-ensemble training run (<see cref="EnsembleTrainer.Train"/>).</summary>
public sealed record EnsembleTrainOptions
{
    /// <summary>The training images, already subset: row i of the ensemble is image i of this dataset.</summary>
    public required ImageDataset Data { get; init; }

    /// <summary>The dataset as the user named it (source.json).</summary>
    public required string DataName { get; init; }

    /// <summary>The subset as the user wrote it (source.json).</summary>
    public string Subset { get; init; } = "all";

    /// <summary>The ensemble folder: the design, the member model folders, and the method store files.</summary>
    public required string OutDirectory { get; init; }

    /// <summary>M, the number of members (at least 2).</summary>
    public int Members { get; init; } = 8;

    /// <summary>G; null for <see cref="EnsembleTrainer.DefaultGroups"/>.</summary>
    public int? Groups { get; init; }

    public GroupingKind Grouping { get; init; } = GroupingKind.Random;

    public long GroupingSeed { get; init; }

    public long EncodingSeed { get; init; }

    /// <summary>The seed the members' training seeds are drawn from (<see cref="EnsembleDesign.MemberSeed"/>).</summary>
    public long Seed { get; init; }

    /// <summary>
    /// Every member's training settings; <see cref="TrainOptions.Data"/>, <see cref="TrainOptions.Indices"/>,
    /// <see cref="TrainOptions.Seed"/>, <see cref="TrainOptions.CheckpointDirectory"/> and <see cref="TrainOptions.Resume"/>
    /// are set per member.
    /// </summary>
    public required TrainOptions Training { get; init; }

    /// <summary>Timesteps K of the scoring plan (evenly spaced, as every method's plan).</summary>
    public int ScoringTimesteps { get; init; } = 20;

    /// <summary>Noise draws per timestep of the scoring plan.</summary>
    public int ScoringNoiseDraws { get; init; } = 2;

    public long ScoringNoiseSeed { get; init; }

    /// <summary>Keep each member's training checkpoints after its export (by default they are deleted: a member folder
    /// is then forward.onnx + model.json).</summary>
    public bool KeepCheckpoints { get; init; }
}
