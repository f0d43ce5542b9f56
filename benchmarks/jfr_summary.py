"""Where the JVM's CPU went: a Java Flight Recorder recording summarised by what the job does.

    python benchmarks/profile_spark.py --input benchmarks/data/10000000 --env bench --jfr /tmp/job.jfr
    python benchmarks/jfr_summary.py /tmp/job.jfr

JFR ships with the JDK (no download, no agent): ``-XX:StartFlightRecording`` samples every thread's
stack every 10-20 ms. This script reads the samples with the JDK's ``jfr`` tool and gives each
sample the category (below) of the innermost frame that matches one, then lists the methods that
use most CPU themselves, and the JIT compilations that took longest (on 2 cores the
compiler threads compete with the tasks: the first pass over the data in a fresh JVM is the slow
one).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys

# category -> substrings of frame names (class.method). A sample counts for the category of its
# innermost matching frame (operators pull their input through their own frames, so "anywhere on
# the stack" would give the aggregation everything under it); so the keys name frames that do the
# category's own work, never a frame that pulls rows from below (a shuffle writer's ``write``).
CATEGORIES: dict[str, tuple[str, ...]] = {
    "timestamp text -> timestamp (shape check, cast)": (
        "java.util.regex",
        "parseTimestamp",
        "stringToTimestamp",
        "substringSQL",
        "UTF8String.translate",
    ),
    "timestamp -> date (to_date, time zone)": ("ZonedDateTime", "LocalDate.ofEpochDay", "microsToDays"),
    "double rounded through BigDecimal": ("BigDecimal.valueOf", "FloatingDecimal"),
    "row accounting (observe)": ("AggregatingAccumulator",),
    "per-customer aggregation (ObjectHashAggregate: the two sets and every other aggregate, interpreted; "
    "sort fallback)": (
        "CollectSet",
        "TypedImperativeAggregate",
        "SortBasedAggregator",
        "UnsafeKVExternalSorter",
        "ObjectAggregationMap",
        "AggregationIterator.$anonfun$generateProcessRow",
        "scala.collection.mutable.HashSet",
    ),
    "strings read from parquet column vectors": ("WritableColumnVector.getUTF8String", "UTF8String.fromBytes"),
    "parquet decoding": (
        "VectorizedParquetRecordReader",
        "VectorizedColumnReader",
        "VectorizedRleValuesReader",
        "org.apache.parquet",
    ),
    "shuffle write (partitioning, sorting, compressing, spilling)": (
        "ShuffleExternalSorter",
        "ShuffleInMemorySorter",
        "insertRecordIntoSorter",
        "DiskBlockObjectWriter",
        "UnsafeRowSerializer",
        "lz4",
        "Lz4",
    ),
    "shuffle read": ("ShuffleBlockFetcherIterator", "BlockStoreShuffleReader"),
    "code generation and class loading": ("org.codehaus.janino", "CodeGenerator", "ClassLoader", "ZipFile"),
}
OTHER = "other: the generated code of the scan stage (parsing, rules, projections, row copies)"

FRAME = re.compile(r"^\s+([\w.$<>]+)\(.*?line:", re.M)


def jfr_print(recording: str, event: str) -> str:
    tool = shutil.which("jfr")
    if tool is None:
        raise SystemExit("the JDK's `jfr` tool is not on PATH (it ships with the JDK, next to `java`)")
    # jfr prints 5 frames per stack unless told otherwise: too few to find the operator
    return subprocess.run(
        [tool, "print", "--stack-depth", "64", "--events", event, recording], check=True, capture_output=True, text=True
    ).stdout


def stacks(recording: str) -> list[list[str]]:
    events = jfr_print(recording, "jdk.ExecutionSample").split("jdk.ExecutionSample")[1:]
    return [frames for frames in (FRAME.findall(event) for event in events) if frames]


def compilations(recording: str) -> list[tuple[float, str]]:
    """(milliseconds, method) of the compilations JFR recorded (those above its threshold)."""
    found = []
    for event in jfr_print(recording, "jdk.Compilation").split("jdk.Compilation")[1:]:
        duration = re.search(r"duration = ([\d.]+) (ms|s)", event)
        method = re.search(r"method = (.+)", event)
        if duration and method:
            ms = float(duration.group(1)) * (1000 if duration.group(2) == "s" else 1)
            found.append((ms, method.group(1)))
    return sorted(found, reverse=True)


def category(frames: list[str]) -> str:
    for frame in frames:  # innermost first
        for name, keys in CATEGORIES.items():
            if any(key in frame for key in keys):
                return name
    return OTHER


def summarise(recording: str, top: int = 15) -> str:
    samples = stacks(recording)
    n = len(samples) or 1
    by_category = collections.Counter(category(frames) for frames in samples)
    lines = [
        f"{len(samples)} CPU samples",
        "",
        "| share of samples | category (innermost matching frame) |",
        "|---:|---|",
    ]
    for name in (*CATEGORIES, OTHER):
        lines.append(f"| {by_category[name] / n:.1%} | {name} |")
    lines += ["", "| share | method (its own CPU) |", "|---:|---|"]
    for method, count in collections.Counter(frames[0] for frames in samples).most_common(top):
        lines.append(f"| {count / n:.1%} | `{method}` |")
    compiled = compilations(recording)
    total_s = sum(ms for ms, _ in compiled) / 1000
    lines += [
        "",
        f"JIT compilations recorded (each over JFR's threshold): {len(compiled)}, {total_s:.1f} s of "
        "compiler-thread time; the longest:",
    ]
    lines += [f"- {ms:.0f} ms `{method}`" for ms, method in compiled[:5]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recording", help="a .jfr file")
    parser.add_argument("--top", type=int, default=15, help="methods listed by their own CPU")
    args = parser.parse_args(argv)
    print(summarise(args.recording, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
