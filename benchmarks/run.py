"""Run the benchmark: every engine as its own process on the same data, in one run.

    python benchmarks/run.py --sizes 1M,50M,100M,200M --engines spark,spark_aggregate,spark_floor,pandas,duckdb

For each size the log is generated once (``generate.py``, skipped when complete) and read once to
warm the page cache; then each engine runs as a child process. While it runs, the memory (PSS) of
its whole process tree (the JVM and the Python workers included) is sampled (RSS every 100 ms, PSS
every second and at each new high); a run
that passes the memory cap or the timeout is killed (the whole tree) and recorded as
``out_of_memory`` or ``timeout``, and the benchmark goes on. The job on the real log (P4) runs last.
Each engine's own stage durations come from the metrics file it writes. The features of every
engine are compared at each size (the same customers, every feature equal).

Results: ``benchmarks/results/results.json`` and ``results.md`` (the table, the ratios and the
targets P1-P4); logs and outputs of every run under ``benchmarks/results/raw/<run id>/``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import generate  # benchmarks/generate.py: this script's folder is first on sys.path
import psutil

from insiders_spark.core.names import FEATURE_COLUMNS  # stdlib only: no Spark to import

BENCHMARKS = Path(__file__).resolve().parent
PROJECT_ROOT = BENCHMARKS.parent

RESULTS = BENCHMARKS / "results"
DEFAULT_REAL_LOG = PROJECT_ROOT.parent / "shared" / "data" / "online_retail" / "online_retail.parquet"
REAL = "real log"  # the dataset label of the real-log runs
ENGINES = ("spark", "spark_aggregate", "spark_floor", "pandas", "duckdb")
SPARK_STEPS = {"spark_aggregate": "aggregate_spark.py", "spark_floor": "floor_spark.py"}  # a step of Spark alone
SPARK_ENGINES = frozenset({"spark", *SPARK_STEPS})  # they take the Spark profile
GIB = 2**30
ARCHIVE_SAMPLE_LINES = 30_000  # the log the JVM class archive is made from (ensure_class_archive)

# targets of issue 6: (size in lines, threshold)
P1_LINES, P1_MAX_RATIO = 50_000_000, 3.0  # spark read + aggregation / DuckDB's
P2_LINES, P2_MAX_RATIO = 100_000_000, 1.0  # spark whole job / pandas + scikit-learn's
P3_LINES, P3_MAX_GIB = 200_000_000, 6.0  # spark's peak memory, all processes
P4_MAX_S = 15.0  # the real log, end to end, JVM start included

INTEGER_FEATURES = ("recency_days", "qty_invoices", "qty_items", "qty_products", "qty_returns")


# --- one measured process ------------------------------------------------------------------------


@dataclass
class Measurement:
    status: str  # ok | failed | out_of_memory | timeout
    wall_s: float
    peak_bytes: int  # the whole tree's proportional set size (PSS) at its peak
    peak_rss_bytes: int  # the sum of the processes' RSS at their peak (counts shared pages in each)
    peak_by_process: dict[str, int]  # the tree's PSS at its peak, by process name
    cpu_s: float  # user + system CPU seconds of the tree (each process as last sampled)
    returncode: int | None
    detail: str = ""


def tree_processes(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_rss(processes: list[psutil.Process], cpu: dict[int, float] | None = None) -> int:
    """The RSS sum of ``processes`` (cheap: /proc/<pid>/statm); ``cpu[pid]`` updated."""
    total = 0
    for process in processes:
        try:
            with process.oneshot():
                if cpu is not None:
                    times = process.cpu_times()
                    cpu[process.pid] = times.user + times.system
                total += process.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return total


def tree_memory(root: psutil.Process, cpu: dict[int, float] | None = None) -> tuple[int, int, dict[str, int]]:
    """(PSS, RSS, PSS by process name) of ``root`` and all its descendants; ``cpu[pid]`` updated.

    PSS shares each page among the processes that map it, so the sum is the tree's physical memory:
    the JVM's short-lived forks (it spawns helpers) and forked Python workers would otherwise count
    the pages they share with their parent twice. RSS is kept as the plain sum. PSS is expensive to
    read (the kernel walks every mapping: ~15 ms for an idle 4 GiB JVM, more as its heap fills), so
    :func:`measure` reads it at most once a second and at each new RSS high.
    """
    pss_total, rss_total, by_name = 0, 0, {}
    for process in tree_processes(root):
        try:
            with process.oneshot():
                name = process.name()
                if cpu is not None:
                    times = process.cpu_times()
                    cpu[process.pid] = times.user + times.system
                try:
                    info = process.memory_full_info()
                    pss, rss = info.pss, info.rss
                except (psutil.AccessDenied, AttributeError):
                    pss = rss = process.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        pss_total += pss
        rss_total += rss
        by_name[name] = by_name.get(name, 0) + pss
    return pss_total, rss_total, by_name


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL the run's process group and any descendant that left it (all started by this run)."""
    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    for child in descendants:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    process.wait()


def measure(
    command: list[str],
    *,
    log_path: Path,
    env: dict[str, str],
    timeout_s: float,
    cap_bytes: int,
    min_available_bytes: int = GIB // 2,
    interval_s: float = 0.1,
    pss_interval_s: float = 1.0,
) -> Measurement:
    """Run ``command`` in a new session; sample its tree's memory; enforce the cap and the timeout.

    Every ``interval_s``: the tree's RSS and CPU (cheap) and the machine's available memory; the
    tree's PSS every ``pss_interval_s`` and at every new RSS high (see :func:`tree_memory`).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=PROJECT_ROOT,
            start_new_session=True,
        )
        root = psutil.Process(process.pid)
        peak, peak_rss, peak_by, cpu = 0, 0, {}, {}
        status, detail = None, ""
        last_pss_at, rss_at_last_pss = float("-inf"), 0
        while process.poll() is None:
            now = time.perf_counter()
            rss = tree_rss(tree_processes(root), cpu)
            peak_rss = max(peak_rss, rss)
            # PSS <= RSS for every process: read the costly PSS once a second, when the RSS sum
            # passes its level at the last PSS reading by 2% (at most 4 times a second), and
            # before any kill for the cap (the cap is on PSS).
            grew = rss > rss_at_last_pss * 1.02 and now - last_pss_at >= 0.25
            if now - last_pss_at >= pss_interval_s or grew or rss > cap_bytes:
                memory, rss_now, by_name = tree_memory(root, cpu)
                last_pss_at, rss_at_last_pss = now, rss_now
                peak_rss = max(peak_rss, rss_now)
                if memory > peak:
                    peak, peak_by = memory, by_name
            else:
                memory = 0
            elapsed = time.perf_counter() - started
            if elapsed > timeout_s:
                status, detail = "timeout", f"killed after {elapsed:.0f} s (timeout {timeout_s:.0f} s)"
            elif memory > cap_bytes:
                status, detail = "out_of_memory", f"killed at {memory / GIB:.1f} GiB (cap {cap_bytes / GIB:.1f} GiB)"
            elif psutil.virtual_memory().available < min_available_bytes:
                status, detail = (
                    "out_of_memory",
                    (
                        f"killed at {max(memory, peak) / GIB:.1f} GiB: the machine had less than "
                        f"{min_available_bytes / GIB:.1f} GiB available"
                    ),
                )
            if status:
                kill_tree(process)
                break
            time.sleep(interval_s)
        wall = time.perf_counter() - started
    returncode = process.returncode
    if status is None:
        status, detail = _exit_status(returncode, log_path)
    return Measurement(
        status=status,
        wall_s=round(wall, 3),
        peak_bytes=peak,
        peak_rss_bytes=peak_rss,
        peak_by_process=peak_by,
        cpu_s=round(sum(cpu.values()), 2),
        returncode=returncode,
        detail=detail,
    )


def _exit_status(returncode: int, log_path: Path) -> tuple[str, str]:
    if returncode == 0:
        return "ok", ""
    tail = log_path.read_text(errors="replace")[-4000:]
    if "MemoryError" in tail or "OutOfMemoryError" in tail or "Cannot allocate memory" in tail:
        return "out_of_memory", "ran out of memory (see the log)"
    if returncode == -signal.SIGKILL:
        return "out_of_memory", "killed by SIGKILL from outside the runner (the kernel's OOM killer?)"
    last = [line for line in tail.splitlines() if line.strip()][-1:] or [""]
    return "failed", f"exit status {returncode}: {last[0][:300]}"


# --- engines -------------------------------------------------------------------------------------


def spark_conf_args(env_name: str, run_dir: Path) -> list[str]:
    """``--env NAME`` (and ``--conf-dir``) for the Spark runs.

    A profile the package ships is used as it is; otherwise ``benchmarks/<NAME>.toml`` (a proposed
    profile) is laid beside copies of the package's ``base.toml`` in a folder of this run.
    """
    from insiders_spark.core.config import BASE_PROFILE, default_conf_dir

    packaged = default_conf_dir()
    if (packaged / f"{env_name}.toml").is_file():
        return ["--env", env_name]
    proposal = BENCHMARKS / f"{env_name}.toml"
    if not proposal.is_file():
        raise SystemExit(f"no Spark profile {env_name!r}: neither {packaged}/{env_name}.toml nor {proposal}")
    folder = run_dir / "conf"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(packaged / f"{BASE_PROFILE}.toml", folder / f"{BASE_PROFILE}.toml")
    shutil.copy(proposal, folder / f"{env_name}.toml")
    return ["--env", env_name, "--conf-dir", str(folder)]


def ensure_class_archive(spark_args: list[str], env: dict[str, str], log_path: Path) -> dict:
    """Make the profile's JVM class archive (``launch.class_archive``) if it is missing.

    A one-off preparation, like installing the jars, not part of any measured run: every Spark
    run then starts from it, as a deployed job would. Made from the smallest generated log.
    """
    from insiders_spark.core.config import load_config

    options = dict(zip(spark_args[::2], spark_args[1::2], strict=True))
    config = load_config(options.get("--conf-dir"), options["--env"])
    if not config.launch.class_archive:
        return {"class_archive": None}
    archive = PROJECT_ROOT / config.launch.class_archive
    if archive.is_file():
        return {"class_archive": str(archive), "made_s": None}
    sample = generate.ensure_log(ARCHIVE_SAMPLE_LINES, generate.DEFAULT_DATA_DIR)
    command = [sys.executable, "-m", "insiders_spark.cli", "class-archive", *spark_args, "--input", str(sample)]
    started = time.perf_counter()
    with log_path.open("w") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=PROJECT_ROOT)
    if done.returncode != 0:
        raise SystemExit(f"could not make the class archive {archive}: see {log_path}")
    return {"class_archive": str(archive), "made_s": round(time.perf_counter() - started, 1)}


def engine_command(engine: str, data: Path, output: Path, *, spark_args: list[str], threads: int) -> list[str]:
    python = sys.executable
    if engine == "spark":
        return [python, "-m", "insiders_spark.cli", "run", *spark_args, "--input", str(data), "--output", str(output)]
    if engine in SPARK_STEPS:
        return [
            python,
            str(BENCHMARKS / SPARK_STEPS[engine]),
            *spark_args,
            "--input",
            str(data),
            "--output",
            str(output),
        ]
    if engine == "pandas":
        return [python, str(BENCHMARKS / "reference_pandas.py"), "--input", str(data), "--output", str(output)]
    if engine == "duckdb":
        return [
            python,
            str(BENCHMARKS / "aggregate_duckdb.py"),
            "--input",
            str(data),
            "--output",
            str(output),
            "--threads",
            str(threads),
        ]
    raise ValueError(f"unknown engine {engine!r} (known: {', '.join(ENGINES)})")


def engine_metrics(engine: str, output: Path) -> dict:
    """The engine's own metrics: stage durations and, for comparisons, its read + aggregation time."""
    if engine == "spark":
        found = sorted(output.glob("runs/run_date=*/metrics.json"))
        if not found:
            return {}
        metrics = json.loads(found[-1].read_text())
        stages = metrics.get("durations_s", {})
        return {
            "durations_s": stages,
            "total_s": metrics.get("total_s"),
            "read_aggregate_s": stages.get("read and aggregate"),
            "customers": metrics.get("customers", {}),
            "silhouette": metrics.get("clustering", {}).get("silhouette"),
        }
    path = output / "metrics.json"
    if not path.is_file():
        return {}
    metrics = json.loads(path.read_text())
    keep = ("durations_s", "total_s", "read_aggregate_s", "customers", "silhouette")
    return {k: metrics[k] for k in keep if k in metrics}


def features_path(engine: str, output: Path) -> Path | None:
    candidates = {
        "spark": sorted(output.glob("segments/run_date=*")),
        "spark_aggregate": [output / "features.parquet"],
        "spark_floor": [],  # no features: a bare scan and groupBy
        "pandas": [output / "segments.parquet"],
        "duckdb": [output / "features.parquet"],
    }[engine]
    return candidates[-1] if candidates and candidates[-1].exists() else None


# --- comparisons ---------------------------------------------------------------------------------


def load_features(path: Path):
    import pandas as pd
    import pyarrow.parquet as pq

    columns = ["customer_id", *FEATURE_COLUMNS]
    frame = (
        pq.read_table(path, columns=columns).to_pandas() if path.is_file() else pd.read_parquet(path, columns=columns)
    )
    return frame.sort_values("customer_id").reset_index(drop=True)


def compare_features(reference, other) -> str | None:
    """None when equal (ids, integers exactly, revenue to the cent, the rest to 1e-9), else why not."""
    import numpy as np

    if len(reference) != len(other):
        return f"{len(other):,} customers against {len(reference):,}"
    if not np.array_equal(reference["customer_id"].to_numpy(), other["customer_id"].to_numpy()):
        return "different customer ids"
    for name in INTEGER_FEATURES:
        if not np.array_equal(reference[name].to_numpy(np.int64), other[name].to_numpy(np.int64)):
            return f"{name} differs"
    if np.abs(reference["gross_revenue"] - other["gross_revenue"]).max() > 0.005:
        return "gross_revenue differs by more than half a cent"
    for name in ("frequency", "avg_ticket"):
        if not np.allclose(reference[name], other[name], rtol=1e-9, atol=1e-9):
            return f"{name} differs"
    return None


def consistency(runs: list[dict]) -> dict:
    """Per dataset: each engine's features against the first engine that finished."""
    result = {}
    for dataset in datasets(runs):
        done = [r for r in runs if r["dataset"] == dataset and r["status"] == "ok" and r.get("features_path")]
        if len(done) < 2:
            continue
        reference = done[0]
        base = load_features(Path(reference["features_path"]))
        verdicts = {}
        for run in done[1:]:
            if run["engine"] in verdicts:
                continue
            problem = compare_features(base, load_features(Path(run["features_path"])))
            verdicts[run["engine"]] = "identical" if problem is None else problem
        result[dataset] = {"against": reference["engine"], "engines": verdicts}
    return result


def datasets(runs: list[dict]) -> list[str]:
    """Dataset labels in run order (sizes as run, the real log last)."""
    return list(dict.fromkeys(r["dataset"] for r in runs))


# --- targets and tables --------------------------------------------------------------------------


def pick(runs: list[dict], dataset: str, engine: str) -> dict | None:
    """The median-wall repetition of an engine on a dataset (a failed run if none is ok)."""
    matching = [r for r in runs if r["dataset"] == dataset and r["engine"] == engine]
    ok = sorted((r for r in matching if r["status"] == "ok"), key=lambda r: r["wall_s"])
    if ok:
        return ok[(len(ok) - 1) // 2]
    return matching[0] if matching else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def evaluate_targets(runs: list[dict]) -> dict:
    """P1-P4 of issue 6 from the recorded runs: met (True/False) or not measured (None)."""
    p1, p2, p3 = (generate.size_label(n) for n in (P1_LINES, P2_LINES, P3_LINES))
    targets = {}

    what = f"read + aggregation at {p1} lines <= {P1_MAX_RATIO:g}x DuckDB's"
    spark, duck = pick(runs, p1, "spark_aggregate") or pick(runs, p1, "spark"), pick(runs, p1, "duckdb")
    if spark and spark["status"] != "ok":
        targets["P1"] = _failed(what, spark)
    elif spark and duck and duck["status"] == "ok":
        value = ratio(spark.get("read_aggregate_s"), duck.get("read_aggregate_s"))
        targets["P1"] = {
            "what": what,
            "ratio": value,
            "wall_ratio": ratio(spark["wall_s"], duck["wall_s"]),
            "spark_engine": spark["engine"],
            "met": value is not None and value <= P1_MAX_RATIO,
        }
    else:
        targets["P1"] = _not_measured(what, f"needs spark_aggregate (or spark) and duckdb at {p1}", spark, duck)

    what = f"whole job at {p2} lines <= {P2_MAX_RATIO:g}x pandas + scikit-learn's wall time"
    spark, pandas = pick(runs, p2, "spark"), pick(runs, p2, "pandas")
    if spark and spark["status"] != "ok":
        targets["P2"] = _failed(what, spark)
    elif spark and pandas and pandas["status"] == "ok":
        value = ratio(spark["wall_s"], pandas["wall_s"])
        targets["P2"] = {"what": what, "ratio": value, "met": value <= P2_MAX_RATIO}
    elif spark and pandas:
        # killed at the runner's memory cap (below the machine's memory) or its timeout: no ratio to
        # judge by, so neither met nor missed
        targets["P2"] = {
            "what": what,
            "ratio": None,
            "met": None,
            "note": f"no ratio: pandas did not complete ({pandas['status']}: {pandas['detail']})",
        }
    else:
        targets["P2"] = _not_measured(what, f"needs spark and pandas at {p2}", spark, pandas)

    what = f"{p3} lines complete with peak memory (all processes) <= {P3_MAX_GIB:g} GiB"
    spark, pandas = pick(runs, p3, "spark"), pick(runs, p3, "pandas")
    if spark:
        peak = spark["peak_bytes"] / GIB
        targets["P3"] = {
            "what": what,
            "status": spark["status"],
            "peak_gib": round(peak, 2),
            "wall_s": spark["wall_s"],
            "met": spark["status"] == "ok" and peak <= P3_MAX_GIB,
            "pandas": (
                {
                    "status": pandas["status"],
                    "peak_gib": round(pandas["peak_bytes"] / GIB, 2),
                    "wall_s": pandas["wall_s"],
                    "detail": pandas["detail"],
                }
                if pandas
                else "not run"
            ),
        }
    else:
        targets["P3"] = _not_measured(what, f"needs spark at {p3}")

    what = f"the real log end to end <= {P4_MAX_S:g} s wall, JVM start included"
    spark, floor = pick(runs, REAL, "spark"), pick(runs, REAL, "spark_floor")
    if spark:
        targets["P4"] = {
            "what": what,
            "wall_s": spark["wall_s"],
            "status": spark["status"],
            "met": spark["status"] == "ok" and spark["wall_s"] <= P4_MAX_S,
        }
        if floor and floor["status"] == "ok":
            # a session, one scan and one groupBy: what no Spark job can go below on this machine
            targets["P4"]["floor_wall_s"] = floor["wall_s"]
    else:
        targets["P4"] = _not_measured(what, "needs the spark run on the real log")
    return targets


def _failed(what: str, run: dict) -> dict:
    return {
        "what": what,
        "met": False,
        "status": run["status"],
        "note": f"{run['engine']} did not complete: {run['detail']}",
    }


def _not_measured(what: str, why: str, *runs: dict | None) -> dict:
    failed = [f"{r['engine']}: {r['status']} {r['detail']}".strip() for r in runs if r and r["status"] != "ok"]
    return {"what": what, "met": None, "note": "not measured: " + why + (f" ({'; '.join(failed)})" if failed else "")}


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def archive_note(settings: dict) -> list[str]:
    """The JVM class archive the Spark runs started from, as one line (none: no line)."""
    archive = settings.get("class_archive")
    if not archive:
        return []
    made = settings.get("made_s")
    how = f"made before the runs in {made:.0f} s, not timed" if made is not None else "made by an earlier run"
    return [f"Spark runs start from the JVM class archive `{Path(archive).name}` ({how}; `launch` in the profile)."]


def render_markdown(results: dict) -> str:
    runs = results["runs"]
    lines = [
        "# Benchmark results",
        "",
        f"Run `{results['run_id']}` on {results['machine']['cpus']} CPUs, "
        f"{results['machine']['memory_gib']:.0f} GiB; command: `{results['command']}`.",
        f"Memory: the peak of each run's whole process tree (the JVM and Python workers included), as the sum "
        f"of the processes' proportional set sizes (PSS), read every second and at each new RSS high "
        f"(RSS every 100 ms); cap {results['settings']['memory_cap_gib']} GiB, timeout "
        f"{results['settings']['timeout_s']:.0f} s.",
        *archive_note(results["settings"]),
        "",
        "| data | engine | status | wall (s) | read + aggregation (s) | peak memory (GiB) | wall / pandas | "
        "read + agg. / DuckDB | CPU (s) | load before |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for dataset in datasets(runs):
        pandas, duck = pick(runs, dataset, "pandas"), pick(runs, dataset, "duckdb")
        for engine in ENGINES:
            run = pick(runs, dataset, engine)
            if not run:
                continue
            both_ok = run["status"] == "ok"
            vs_pandas = (
                ratio(run["wall_s"], pandas["wall_s"]) if both_ok and pandas and pandas["status"] == "ok" else None
            )
            vs_duck = (
                ratio(run.get("read_aggregate_s"), duck.get("read_aggregate_s"))
                if both_ok and duck and duck["status"] == "ok"
                else None
            )
            status = run["status"] if run["status"] == "ok" else f"**{run['status']}**"
            lines.append(
                f"| {dataset} | {engine} | {status} | {_fmt(run['wall_s'])} | {_fmt(run.get('read_aggregate_s'))} | "
                f"{_fmt(run['peak_bytes'] / GIB, 2)} | {_fmt(vs_pandas, 2)} | {_fmt(vs_duck, 2)} | "
                f"{_fmt(run.get('cpu_s'))} | {_fmt(run.get('load_before'), 1)} |"
            )
    lines += ["", "## Targets", "", "| target | what | measured | met |", "|---|---|---|---|"]
    for name, target in results["targets"].items():
        if target.get("met") is None:
            measured, met = target["note"], "not shown" if "ratio" in target else "not measured"
        else:
            measured = ", ".join(
                f"{k} {v}" for k, v in target.items() if k not in ("what", "met") and not isinstance(v, dict)
            )
            if isinstance(target.get("pandas"), dict):
                p = target["pandas"]
                measured += f"; pandas: {p['status']} at {p['peak_gib']} GiB after {p['wall_s']:.0f} s"
            met = "**met**" if target["met"] else "**not met**"
        lines.append(f"| {name} | {target.get('what', '')} | {measured} | {met} |")
    lines += ["", "## Stages (seconds, each engine's own timer)", ""]
    for dataset in datasets(runs):
        for engine in ENGINES:
            run = pick(runs, dataset, engine)
            if run and run.get("durations_s"):
                stages = ", ".join(f"{k} {v:.1f}" for k, v in run["durations_s"].items())
                total = run.get("total_s")
                outside = f"; outside the timers (start-up, JVM): {run['wall_s'] - total:.1f}" if total else ""
                lines.append(f"- {dataset} {engine}: {stages}{outside}")
    if results["consistency"]:
        lines += ["", "## Same features across engines", ""]
        for size, verdict in results["consistency"].items():
            engines = ", ".join(f"{e}: {v}" for e, v in verdict["engines"].items())
            lines.append(f"- {size}, against {verdict['against']}: {engines}")
    failed = [r for r in runs if r["status"] != "ok"]
    if failed:
        lines += ["", "## Runs that did not finish", ""]
        lines += [f"- {r['dataset']} {r['engine']}: {r['status']} — {r['detail']}" for r in failed]
    return "\n".join(lines) + "\n"


# --- the run -------------------------------------------------------------------------------------


def warm_cache(data: Path) -> float:
    """Read every file once so that no engine pays for the first read from disk."""
    started = time.perf_counter()
    for path in sorted(data.rglob("*")) if data.is_dir() else [data]:
        if path.is_file():
            with path.open("rb") as handle:
                while handle.read(1 << 24):
                    pass
    return round(time.perf_counter() - started, 3)


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("insiders-spark", "pyspark", "pandas", "numpy", "pyarrow", "scikit-learn", "duckdb", "psutil"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    java = subprocess.run(["java", "-version"], capture_output=True, text=True)
    found["java"] = (java.stderr.splitlines() or ["unknown"])[0]
    return found


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def run_one(
    engine: str,
    dataset: str,
    lines: int,
    data: Path,
    out: Path,
    *,
    args,
    spark_args: list[str],
    env: dict[str, str],
    repetition: int,
) -> dict:
    load_before = os.getloadavg()[0]
    if out.exists():
        shutil.rmtree(out)
    command = engine_command(engine, data, out, spark_args=spark_args, threads=args.threads)
    print(
        f"[{dt.datetime.now():%H:%M:%S}] {dataset} {engine} (run {repetition + 1}/{args.repeat}, "
        f"load {load_before:.1f}) ...",
        flush=True,
    )
    measured = measure(
        command,
        log_path=out.with_suffix(".log"),
        env=env,
        timeout_s=args.timeout,
        cap_bytes=int(args.memory_cap_gib * GIB),
    )
    ok = measured.status == "ok"
    found = features_path(engine, out) if ok else None
    record = {
        "dataset": dataset,
        "lines": lines,
        "engine": engine,
        "repetition": repetition,
        **asdict(measured),
        **(engine_metrics(engine, out) if ok else {}),
        "features_path": str(found) if found else None,
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "command": command,
        "output": str(out),
    }
    print(
        f"    {measured.status}: {measured.wall_s:.1f} s, peak {measured.peak_bytes / GIB:.2f} GiB"
        f"{' — ' + measured.detail if measured.detail else ''}",
        flush=True,
    )
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the Spark job against pandas + scikit-learn and DuckDB.")
    parser.add_argument("--sizes", default="1M", help="comma-separated line counts, e.g. 1M,50M,100M,200M")
    parser.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated, of {', '.join(ENGINES)}")
    parser.add_argument("--real-log", type=Path, default=DEFAULT_REAL_LOG, help="the real log for P4")
    parser.add_argument("--no-real-log", action="store_true", help="skip the real-log run (P4)")
    parser.add_argument("--spark-env", default="bench", help="configuration profile of the Spark runs")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each engine and size (the median is reported)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds before a run is killed")
    parser.add_argument("--memory-cap-gib", type=float, default=20.0, help="kill a run whose tree passes this")
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads")
    parser.add_argument("--data-dir", type=Path, default=generate.DEFAULT_DATA_DIR)
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        parser.error(f"unknown engine(s) {', '.join(unknown)} (known: {', '.join(ENGINES)})")
    sizes = [generate.parse_size(s) for s in args.sizes.split(",") if s.strip()]
    run_id = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    raw_dir = args.results_dir / "raw" / run_id
    raw_dir.mkdir(parents=True, exist_ok=True)
    spark_args = spark_conf_args(args.spark_env, raw_dir) if SPARK_ENGINES & set(engines) else []
    env = child_env()
    archive = ensure_class_archive(spark_args, env, raw_dir / "class_archive.log") if spark_args else {}

    runs: list[dict] = []
    warm: dict[str, float] = {}
    plan = [(generate.size_label(lines), lines) for lines in sizes]
    if not args.no_real_log:
        if args.real_log.exists():
            plan.append((REAL, None))
        else:
            print(f"real log not found: {args.real_log} (P4 not measured)", flush=True)
    for dataset, lines in plan:
        data = args.real_log if lines is None else generate.ensure_log(lines, args.data_dir)
        warm[dataset] = warm_cache(data)
        for repetition in range(args.repeat):
            for engine in engines:
                folder = "real_log" if lines is None else dataset
                out = raw_dir / folder / (engine if args.repeat == 1 else f"{engine}-{repetition}")
                runs.append(
                    run_one(
                        engine,
                        dataset,
                        lines or 0,
                        data,
                        out,
                        args=args,
                        spark_args=spark_args,
                        env=env,
                        repetition=repetition,
                    )
                )
    results = {
        "run_id": run_id,
        "command": "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / GIB, 1),
            "platform": platform.platform(),
        },
        "versions": versions(),
        "settings": {
            "spark_env": args.spark_env,
            "spark_args": spark_args,
            "timeout_s": args.timeout,
            "memory_cap_gib": args.memory_cap_gib,
            "repeat": args.repeat,
            "duckdb_threads": args.threads,
            **archive,
        },
        "page_cache_warm_s": warm,
        "runs": runs,
        "consistency": consistency(runs),
        "targets": evaluate_targets(runs),
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    markdown = render_markdown(results)
    (args.results_dir / "results.md").write_text(markdown)
    (raw_dir / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
