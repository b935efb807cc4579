// Attributes one PNG to the training images of a store with the OnnxAttribution.Core package, building a small D-TRAK
// store first when the folder holds none. Usage: AttributeOnePng MODEL_DIR STORE_DIR [image.png]
using OnnxAttribution;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Imaging;
using OnnxAttribution.Store;

if (args.Length is < 2 or > 3)
{
    Console.Error.WriteLine("usage: AttributeOnePng MODEL_DIR STORE_DIR [image.png]");
    return 2;
}
string model = args[0], store = args[1];
if (!File.Exists(Path.Combine(store, StoreFiles.Method)))
{
    // 200 rows of the embedded Fashion-MNIST, D-TRAK with 2 timesteps and k = 512: seconds on a laptop.
    Attributor.BuildStore(new StoreBuildOptions
    {
        Method = "d-trak", ModelDirectory = model, Data = "embedded", Subset = "0:200", StoreDirectory = store,
        Settings = new MethodSettings { Timesteps = 2, Dim = 512 },
    }, new Progress<MethodProgress>(p => Console.Error.Write($"\r{p.Stage} {p.Done}/{p.Total}   ")));
    Console.Error.WriteLine();
}

using var attributor = Attributor.Open(model, store);
string png = args.Length == 3 ? args[2] : Path.Combine(store, "row-7.png");
if (args.Length == 2)
{
    // No image given: training image 7, which should rank its own row first.
    PngImage.Write(png, attributor.TrainingData.Image(7), attributor.Channels, attributor.ImageSize, attributor.ImageSize);
}
var ranking = attributor.AttributePng(png, top: 5);
foreach (var row in ranking.Top)
{
    Console.WriteLine($"{row.Rank}. training image #{row.Index}  score {row.Score:G4}");
}
return 0;
