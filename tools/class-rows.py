#!/usr/bin/env python3
"""Writes the row indices of an IDX label file whose label is in a given set, one per line (a --subset @file).

usage: class-rows.py LABELS.idx[.gz] CLASSES [LIMIT] > rows.txt
CLASSES is a comma list or a range, e.g. 0-4 or 5,6,7; LIMIT keeps the first LIMIT matching rows.
"""
import gzip
import struct
import sys


def main() -> None:
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    path, classes = sys.argv[1], sys.argv[2]
    limit = int(sys.argv[3]) if len(sys.argv) == 4 else None
    wanted = set()
    for part in classes.split(","):
        lo, _, hi = part.partition("-")
        wanted.update(range(int(lo), int(hi or lo) + 1))
    data = open(path, "rb").read()
    if path.endswith(".gz"):
        data = gzip.decompress(data)
    magic, count = struct.unpack(">II", data[:8])
    if magic != 0x801:
        sys.exit(f"{path}: not an IDX label file (magic {magic:#x})")
    rows = [i for i, label in enumerate(data[8:8 + count]) if label in wanted]
    if limit is not None:
        if len(rows) < limit:
            sys.exit(f"{path}: only {len(rows)} rows of classes {classes}, {limit} asked")
        rows = rows[:limit]
    sys.stdout.write("".join(f"{r}\n" for r in rows))


if __name__ == "__main__":
    main()
