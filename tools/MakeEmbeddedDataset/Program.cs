// Builds the embedded dataset: the first N Fashion-MNIST training images, resized by area averaging,
// quantised to 8 bits and written as gzip IDX, with a README giving provenance, license, transform and hashes.
// Usage: MakeEmbeddedDataset <fashion-mnist dir> <output dir> <count> <size> <debian package version>
using System.Globalization;
using System.Security.Cryptography;
using OnnxAttribution.Core.Data;

if (args.Length != 5)
{
    Console.Error.WriteLine("usage: MakeEmbeddedDataset <fashion-mnist dir> <output dir> <count> <size> <debian package version>");
    return 2;
}
string source = args[0], output = args[1], packageVersion = args[4];
int count = int.Parse(args[2], CultureInfo.InvariantCulture), size = int.Parse(args[3], CultureInfo.InvariantCulture);

var full = new DatasetLocator(FashionMnistDirectory: source).Load("fashion-mnist");
var subset = SubsetSpec.Parse($"0:{count}").Apply(full);
// Area averaging in float64 on the [-1, 1] pixels, rounded to float32, then quantised back to 8 bits.
var resized = subset.Resize(size, size);
var bytes = resized.ToBytes();

Directory.CreateDirectory(output);
var imagesPath = Path.Combine(output, DatasetLocator.EmbeddedImagesFile);
var labelsPath = Path.Combine(output, DatasetLocator.EmbeddedLabelsFile);
IdxFile.WriteImages(imagesPath, resized.Count, size, size, bytes, gzip: true);
IdxFile.WriteLabels(labelsPath, resized.Labels!, gzip: true);

// What the library reads back is what the fingerprint covers.
var shipped = IdxFile.ReadDataset(imagesPath, labelsPath, DatasetLocator.EmbeddedName);
string Sha(string p) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(p)));
var counts = new int[10];
foreach (var l in shipped.Labels!)
{
    counts[l]++;
}
long total = new FileInfo(imagesPath).Length + new FileInfo(labelsPath).Length;

var readme = $"""
# fashion-mnist-16: the embedded demo dataset

The first {count} images of the Fashion-MNIST **training** split, resized from 28×28 to {size}×{size}, with their labels.
It lets the demo and the tests run without downloading anything.

| file | bytes | SHA-256 |
| --- | --- | --- |
| `{DatasetLocator.EmbeddedImagesFile}` | {new FileInfo(imagesPath).Length} | `{Sha(imagesPath)}` |
| `{DatasetLocator.EmbeddedLabelsFile}` | {new FileInfo(labelsPath).Length} | `{Sha(labelsPath)}` |

- Format: IDX (`idx3-ubyte` images [{count}, {size}, {size}], `idx1-ubyte` labels [{count}]), gzip-compressed; {total} bytes in all.
- Pixel fingerprint (`ImageDataset.Fingerprint`: SHA-256 of int32 LE N, C, H, W then the float32 LE pixels in [-1, 1]
  as the reader produces them): `{shipped.Fingerprint}`. `DatasetLocator.EmbeddedFingerprint` holds the same value and a test checks it.
  The gzip bytes depend on the .NET compressor version; the fingerprint does not.
- Labels per class 0..9: {string.Join(", ", counts)}.

## Provenance

- Source: Fashion-MNIST by Zalando Research (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747),
  https://github.com/zalandoresearch/fashion-mnist.
- Taken from the Debian package `dataset-fashion-mnist`, version `{packageVersion}`, files
  `/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz` and `train-labels-idx1-ubyte.gz`, images 0..{count - 1}.

## Transform (exact)

1. Read the 8-bit pixels v and map them to x = v / 127.5 − 1 (float64 division, rounded to float32).
2. Resize 28 → {size} by area averaging (`OnnxAttribution.Imaging.AreaResize`): each output pixel is the mean over the
   source area it covers, with exact overlap weights (28/{size} is not an integer), separable, summed in float64 and rounded to float32.
3. Quantise back to 8 bits: v' = round((x + 1) · 127.5), halves away from zero, clamped to 0..255.
4. Write images and labels as gzip IDX (`IdxFile.WriteImages`/`WriteLabels`, `CompressionLevel.SmallestSize`).

Rebuild with `tools/make-embedded-dataset.sh` (needs `apt-get install dataset-fashion-mnist`).

## License

Fashion-MNIST is released under the MIT License (Debian: Expat), Copyright (c) 2017 Zalando SE:

> Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated documentation
> files (the "Software"), to deal in the Software without restriction, including without limitation the rights to use, copy,
> modify, merge, publish, distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the Software
> is furnished to do so, subject to the following conditions:
>
> The above copyright notice and this permission notice shall be included in all copies or substantial portions of the Software.
>
> THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES
> OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE
> LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR
> IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.

""";
File.WriteAllText(Path.Combine(output, "README.md"), readme);
Console.WriteLine($"wrote {shipped.Count} images of {size}×{size} ({total} bytes) to {output}");
Console.WriteLine($"fingerprint {shipped.Fingerprint}");
return 0;
