"""Generate the benchmark logs: ``python benchmarks/generate.py --sizes 1M,50M,100M,200M``.

Each size goes to ``benchmarks/data/<lines>/`` (git-ignored) as ``part-NNNNN.parquet`` files of
``CHUNK_LINES`` lines, written by ``insiders_spark.storage.synthetic.write_parquet``. The generator's
invoice numbers depend on the chunk size, so the benchmarks fix it. A folder is complete when its
``manifest.json`` names the same spec (by hash) and the part files it lists are all there; a
complete folder is left alone, anything else is regenerated.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from pathlib import Path

from insiders_spark.storage.synthetic import SyntheticLogSpec, chunk_count, write_parquet

BENCHMARKS = Path(__file__).resolve().parent
DEFAULT_DATA_DIR = BENCHMARKS / "data"
CHUNK_LINES = 1_000_000  # one part file per chunk; invoice numbers depend on it
SEED = 42
MANIFEST = "_manifest.json"  # "_" files are skipped by Spark, pyarrow and DuckDB globs alike
_UNITS = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}


def parse_size(text: str) -> int:
    """'1M' -> 1_000_000, '250k' -> 250_000, '30000' -> 30_000."""
    cleaned = text.strip().lower().replace("_", "")
    try:
        if cleaned and cleaned[-1] in _UNITS:
            return int(float(cleaned[:-1]) * _UNITS[cleaned[-1]])
        return int(cleaned)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 1M, 50M, 250k)") from None


def size_label(lines: int) -> str:
    """1_000_000 -> '1M', 250_000 -> '250k', 1_500 -> '1500'."""
    for unit, factor in (("M", 1_000_000), ("k", 1_000)):
        if lines % factor == 0:
            return f"{lines // factor}{unit}"
    return str(lines)


def spec_for(lines: int, seed: int = SEED) -> SyntheticLogSpec:
    """The benchmark log of ``lines`` lines: the generator's calibrated defaults."""
    return SyntheticLogSpec(lines=lines, seed=seed)


def spec_manifest(spec: SyntheticLogSpec, chunk_lines: int) -> dict:
    described = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in dataclasses.asdict(spec).items()}
    text = json.dumps({"spec": described, "chunk_lines": chunk_lines}, sort_keys=True)
    return {
        "spec": described,
        "chunk_lines": chunk_lines,
        "files": chunk_count(spec, chunk_lines),
        "spec_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
    }


def data_dir_for(lines: int, root: Path = DEFAULT_DATA_DIR) -> Path:
    return root / str(lines)


def is_complete(folder: Path, expected: dict) -> bool:
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return False
    try:
        found = json.loads(manifest_path.read_text())
    except json.JSONDecodeError:
        return False
    if found.get("spec_sha256") != expected["spec_sha256"]:
        return False
    parts = found.get("part_files", [])
    return len(parts) == expected["files"] and all((folder / name).is_file() for name in parts)


def ensure_log(
    lines: int,
    root: Path = DEFAULT_DATA_DIR,
    *,
    seed: int = SEED,
    chunk_lines: int = CHUNK_LINES,
    force: bool = False,
    quiet: bool = False,
) -> Path:
    """The folder of the ``lines``-line benchmark log, generated unless already complete."""
    spec = spec_for(lines, seed)
    expected = spec_manifest(spec, chunk_lines)
    folder = data_dir_for(lines, root)
    if not force and is_complete(folder, expected):
        if not quiet:
            print(f"{size_label(lines)}: complete, kept ({folder})")
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)  # incomplete until the manifest is written last
    started = time.perf_counter()
    paths = write_parquet(spec, folder, chunk_lines=chunk_lines, overwrite=True)
    elapsed = time.perf_counter() - started
    manifest = {
        **expected,
        "part_files": [os.path.basename(p) for p in paths],
        "bytes": sum(os.path.getsize(p) for p in paths),
        "generated_s": round(elapsed, 3),
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    if not quiet:
        print(
            f"{size_label(lines)}: generated {len(paths)} files, {manifest['bytes'] / 2**20:,.0f} MiB "
            f"in {elapsed:.1f} s ({folder})"
        )
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1M", help="comma-separated line counts, e.g. 1M,50M,100M,200M")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="root of the data folders")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--force", action="store_true", help="regenerate even complete folders")
    args = parser.parse_args(argv)
    for size in [parse_size(s) for s in args.sizes.split(",") if s.strip()]:
        ensure_log(size, args.data_dir, seed=args.seed, force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
