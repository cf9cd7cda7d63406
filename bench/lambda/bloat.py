#!/usr/bin/env python3
"""Where the bytes of a Lambda binary go: its sections, and its code by crate.

Needs a binary with its symbol table (the release profile strips it). Build it like the
package, from the function's folder, into a target folder of its own (cargo-lambda 1.9.2 rejects
--target-dir; the variable works):

    cd functions/ingest && CARGO_PROFILE_RELEASE_STRIP=false \
        CARGO_TARGET_DIR=../../target/lambda-bloat cargo lambda build --release --x86-64 \
        --lambda-dir ../../target/lambda-bloat/out
    python3 bench/lambda/bloat.py target/lambda-bloat/out/ingest/bootstrap

Symbols are read with `nm -S -C` (binutils) and charged to the crate named first in their
path; `<T as Trait>::f` is charged to T's crate. Generic code is charged to the crate that
defines it (Vec<T> code goes to alloc), as cargo-bloat does. aws-lc's C functions carry the
prefix aws_lc_<version>_ and are charged to aws-lc-sys.
"""
import collections
import re
import subprocess
import sys

TOP = 25


def sections(binary):
    out = subprocess.run(["size", "-A", binary], capture_output=True, text=True, check=True)
    rows = []
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            rows.append((parts[0], int(parts[1])))
    return rows


def crate_of(name):
    if re.match(r"aws_lc_\d+_\d+_\d+_", name):
        return "aws-lc-sys (C)"
    name = name.lstrip("<&*( ")
    name = re.sub(r"^(dyn |mut |const )+", "", name)
    match = re.match(r"([A-Za-z_][A-Za-z0-9_]*)::", name)
    if match:
        return match.group(1)
    return "[C or unknown]"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    binary = sys.argv[1]
    secs = sections(binary)
    print(f"{binary}\n\nsections (bytes):")
    for name, size in sorted(secs, key=lambda r: -r[1])[:10]:
        print(f"  {name:<22} {size:>10,}")
    nm = subprocess.run(
        ["nm", "-S", "-C", "--size-sort", binary], capture_output=True, text=True, check=True
    )
    by_crate = collections.Counter()
    total = 0
    for line in nm.stdout.splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 4 or parts[2].lower() not in "tw":
            continue  # code only (text and weak text symbols)
        size = int(parts[1], 16)
        by_crate[crate_of(parts[3])] += size
        total += size
    text = dict(secs).get(".text", 0)
    print(f"\ncode by crate ({total:,} bytes in symbols; .text is {text:,}):")
    for crate, size in by_crate.most_common(TOP):
        print(f"  {crate:<32} {size:>10,}  {100 * size / total:5.1f} %")


if __name__ == "__main__":
    main()
