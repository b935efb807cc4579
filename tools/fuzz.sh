#!/usr/bin/env bash
# Fuzzes a reader of untrusted bytes with SharpFuzz and afl++: the .npy header reader (NpyFormat.ReadHeader) or the PNG
# reader (PngImage.Read). Installs afl++ (Debian package) and the sharpfuzz tool when missing, builds
# tools/OnnxAttribution.Fuzz, instruments OnnxAttribution.Core.dll, seeds a corpus and runs afl-fuzz for SECONDS.
# Usage: bash tools/fuzz.sh npy|png [SECONDS=600] [OUT=out/fuzz]
# Findings (inputs that crash or hang) land in OUT/TARGET/findings/default/{crashes,hangs}; replay them in process with
#   dotnet OUT/bin/OnnxAttribution.Fuzz.dll TARGET OUT/TARGET/findings/default/crashes
# afl's own summary (execs_done, execs_per_sec, saved_crashes) is in OUT/TARGET/findings/default/fuzzer_stats.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: bash tools/fuzz.sh npy|png [SECONDS] [OUT]}
seconds=${2:-600}
out=${3:-out/fuzz}
case "$target" in npy|png) ;; *) echo "target must be npy or png, not '$target'" >&2; exit 2 ;; esac

if ! command -v afl-fuzz >/dev/null; then
  echo "installing afl++ (Debian package)" >&2
  apt-get install -y afl++ >&2 || { apt-get update >&2 && apt-get install -y afl++ >&2; }
fi
tools="$out/dotnet-tools"
if [ ! -x "$tools/sharpfuzz" ]; then
  dotnet tool install SharpFuzz.CommandLine --version 2.3.0 --tool-path "$tools" >&2
fi

# Two copies: bin runs outside afl (seeds, replay); bin-afl is instrumented, and runs only under afl-fuzz (its coverage
# hooks write to afl's shared memory).
bin="$out/bin"
rm -rf "$bin"
dotnet publish tools/OnnxAttribution.Fuzz -c Release -o "$bin" >&2
work="$out/$target"
mkdir -p "$work"
rm -rf "$work/seeds" "$work/bin-afl"
dotnet "$bin/OnnxAttribution.Fuzz.dll" seed "$work/seeds"
cp -r "$bin" "$work/bin-afl"
# Coverage feedback for the managed readers, in the assembly that holds them (its name is their namespace); SkiaSharp's
# native PNG decoder runs uninstrumented (afl sees it as a black box).
case "$target" in
  npy) prefix=OnnxAttribution.Store ;;
  png) prefix=OnnxAttribution.Imaging ;;
esac
"$tools/sharpfuzz" "$work/bin-afl/$prefix.dll" "$prefix" >&2
# afl's checks that do not fit a managed target in a container: the binary is `dotnet`, not an instrumented ELF; crashes
# are exceptions, not core dumps; the CPU governor is not ours to set.
export AFL_SKIP_BIN_CHECK=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SKIP_CPUFREQ=1 AFL_NO_UI=1
input=(-i "$work/seeds/$target")
if [ -d "$work/findings/default/queue" ]; then input=(-i -); fi # resume the earlier run's queue
afl-fuzz "${input[@]}" -o "$work/findings" -t 5000 -m none -V "$seconds" \
  -- dotnet "$work/bin-afl/OnnxAttribution.Fuzz.dll" "$target" || true
stats="$work/findings/default/fuzzer_stats"
if [ -f "$stats" ]; then
  grep -E '^(run_time|execs_done|execs_per_sec|corpus_count|saved_crashes|saved_hangs) ' "$stats"
fi
# Replay what afl saved, in process: a finding is any exception other than the reader's documented one.
for kind in crashes hangs; do
  dir="$work/findings/default/$kind"
  if [ -d "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null | grep -v README)" ]; then
    echo "$kind:"; timeout 120 dotnet "$bin/OnnxAttribution.Fuzz.dll" "$target" "$dir" || true
  fi
done
