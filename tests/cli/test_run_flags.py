"""Every run flag, passed through ``insiders_spark.cli.main`` and seen in what the run did.

The season of nightly runs (``nightly``, tests/jobs.py) reads an export named ``.dat`` with
``--format csv``, timestamps ``M/d/yyyy H:mm`` with ``--timestamp-format`` and ISO-8859-1 text with
``--encoding``; it trains with ``--mode train``, scores with ``--mode score`` and an older model
with ``--model-version``, retrains with ``--seed 3``, each as of its ``--as-of`` date. Without
each flag the run would fail or count otherwise: the assertions say how.
"""

from __future__ import annotations

import shutil

from tests import support
from tests.jobs import LINES, STEPS, TRUST_HORIZON


def test_format_reads_a_file_whose_name_does_not_say_csv(spark, nightly):
    for step in ("train", "retrain", "score"):
        assert nightly.manifests[step]["input"]["format"] == "csv", step
    assert nightly.manifests["train"]["input_files"] == [str(nightly.source)]
    without = [a for a in nightly.args("score") if a not in ("--format", "csv")]
    done = support.run_cli([*without[: without.index("--output") + 1], str(nightly.source.parent / "unused")])
    assert done.status == 1 and "online_retail.dat is not a csv, parquet, json, orc file by its name" in done.stderr


def test_timestamp_format_parses_every_good_line(nightly):
    """Under the default pattern every one of the 40,000 lines would be unparsable; with
    ``M/d/yyyy H:mm`` only the two lines written broken are."""
    for step in ("train", "retrain", "score"):
        quarantined = nightly.manifests[step]["rows"]["quarantined"]
        assert quarantined["unparsable_timestamp"] == 2, step
    assert nightly.manifests["train"]["config"]["input"]["timestamp_format"] == "M/d/yyyy H:mm"


def test_encoding_decodes_the_text_as_written(spark, nightly):
    """The export holds ISO-8859-1 bytes (É) that are not UTF-8: read as UTF-8 they would be
    counted undecodable and stored as U+FFFD."""
    assert nightly.source.read_bytes().count("É".encode("iso-8859-1")) > 1
    assert b"\xc3\x89" not in nightly.source.read_bytes()  # no UTF-8 É anywhere
    assert nightly.manifests["retrain"]["rows"]["undecodable_text_lines"] == 0
    quarantine = spark.read.parquet(str(support.partition(nightly.output, "quarantine", "2011-11-09")))
    assert quarantine.where("invoice_id = 'ACC01'").first().description == "THÉ POSTAGE"


def test_as_of_takes_the_lines_up_to_its_date(nightly):
    for step, (as_of, _) in STEPS.items():
        if step == "refused":
            continue
        manifest = nightly.manifests[step]
        assert (manifest["as_of"], manifest["run_date"], manifest["as_of_source"]) == (as_of, as_of, "given")
        assert manifest["rows"]["after_as_of"] == nightly.outcomes(as_of).after_as_of, step
        assert (manifest["rows"]["after_as_of"] > 0) == (as_of < "2011-12-09"), step  # the log ends on 12-09


def test_seed_is_the_trees_and_kmeans_seed(nightly):
    assert nightly.manifests["train"]["clustering"]["seed"] == 42  # the test profile's
    retrained = nightly.manifests["retrain"]
    assert retrained["clustering"]["seed"] == retrained["embedding"]["seed"] == retrained["config"]["job"]["seed"] == 3


def test_mode_decides_what_is_fitted_and_what_is_published(nightly):
    modes = {step: nightly.manifests[step]["mode"] for step in ("train", "retrain", "score")}
    assert modes == {"train": "train", "retrain": "train-and-score", "score": "score"}
    versions = {step: nightly.manifests[step]["model_version"] for step in modes}
    assert versions["score"] == versions["train"] != versions["retrain"]  # a score run fits nothing
    assert not [path for path in nightly.digests["score"] if path.startswith("segments/run_date=2011-09-09/")]
    assert "churn" not in nightly.manifests["train"] and "churn" in nightly.manifests["retrain"]


def test_model_version_scores_with_that_model_not_the_current_one(nightly):
    first, current = nightly.manifests["train"]["model_version"], nightly.manifests["retrain"]["model_version"]
    assert "--model-version" in nightly.args("score") and first in nightly.args("score")
    assert nightly.manifests["score"]["model_version"] == first != current
    trained_names = {(c["cluster"], c["segment"]) for c in nightly.manifests["train"]["clusters"]}
    assert {(c["cluster"], c["segment"]) for c in nightly.manifests["score"]["clusters"]} == trained_names


def test_an_unknown_model_version_is_a_clear_error(spark, nightly, tmp_path):
    version = "no-such-version"
    output = tmp_path / "out"
    shutil.copytree(nightly.output / "models", output / "models")
    source = support.write_csv(tmp_path / "day.csv", [support.csv_line("536365")])
    done = support.run_cli(
        ["run", "--env", "test", "--input", str(source), "--output", str(output), "--mode", "score",
         "--model-version", version]
    )  # fmt: skip
    assert done.status == 1
    assert f"model version {version!r} not found under {output}/models" in done.stderr
    assert not (output / "segments").exists()


def test_k_auto_backtest_horizon_and_synthetic_lines_reach_the_run(trust_run):
    manifest = trust_run.manifest
    assert manifest["config"]["clustering"]["select_k"] is True and "k_selection" in manifest
    assert manifest["backtest"]["horizon_days"] == TRUST_HORIZON
    assert manifest["rows"]["input"] == LINES and manifest["input"]["format"] == "synthetic"
