"""Layered TOML configuration: precedence, strict keys, every refusal with a message naming the key,
and dataclass defaults that say what conf/base.toml says."""

from __future__ import annotations

import dataclasses

import pytest

from insiders_spark.core.config import CleaningConfig, Config, default_conf_dir, load_config
from insiders_spark.core.errors import ConfigError
from insiders_spark.core.names import QUARANTINE_REASONS


def _write(folder, name, text):
    (folder / f"{name}.toml").write_text(text)


@pytest.fixture
def conf(tmp_path):
    """A conf/ folder: the packaged base profile and a small ``dev`` profile over it."""
    _write(tmp_path, "base", (default_conf_dir() / "base.toml").read_text())
    _write(tmp_path, "dev", '[clustering]\nk = 5\n[spark]\n"spark.master" = "local[1]"\n')
    return tmp_path


def test_packaged_profiles_load():
    config = load_config(env="local", environ={})
    assert config.clustering.k == 9
    assert config.cleaning == CleaningConfig()  # no store's rules: a dataset profile brings them
    study = load_config(env="local", environ={}, dataset="online_retail").cleaning
    assert study.non_product_codes[:3] == ("POST", "D", "DOT") and study.excluded_customers == ("16446",)
    assert config.spark["spark.sql.session.timeZone"] == "UTC"
    assert config.spark["spark.sql.sources.partitionOverwriteMode"] == "dynamic"
    assert config.spark["spark.master"] == "local[*]"


def test_the_test_profile_is_the_suites_session():
    config = load_config(env="test", environ={})
    spark = config.spark
    assert spark["spark.master"] == "local[2]" and spark["spark.sql.shuffle.partitions"] == "2"
    assert spark["spark.ui.enabled"] == "false" and spark["spark.sql.session.timeZone"] == "UTC"
    assert spark["spark.driver.bindAddress"] == "127.0.0.1"


def test_precedence_base_env_file_environment_flags(conf):
    assert load_config(conf, "dev", environ={}).clustering.k == 5
    environ = {"INSIDERS_SPARK__CLUSTERING__K": "7", "INSIDERS_SPARK__INPUT__PATH": "data/*.csv"}
    from_env = load_config(conf, "dev", environ=environ)
    assert from_env.clustering.k == 7 and from_env.input.path == "data/*.csv"
    flags = load_config(conf, "dev", overrides={"clustering.k": 11, "job.seed": None}, environ=environ)
    assert flags.clustering.k == 11 and flags.job.seed == 42  # None: an unset flag shadows nothing


def test_a_table_set_in_a_profile_or_the_environment_keeps_its_other_entries(conf):
    base = load_config(conf, "dev", environ={}).quarantine.max_share_by_reason
    _write(conf, "dev", "[quarantine]\nmax_share_by_reason = { excluded_country = 0.05 }\n")
    from_profile = load_config(conf, "dev", environ={}).quarantine.max_share_by_reason
    assert from_profile == {**base, "excluded_country": 0.05}
    environ = {"INSIDERS_SPARK__QUARANTINE__MAX_SHARE_BY_REASON": "{ non_numeric_price = 0.2 }"}
    from_environ = load_config(conf, "dev", environ=environ).quarantine.max_share_by_reason
    assert from_environ == {**base, "excluded_country": 0.05, "non_numeric_price": 0.2}
    assert base["non_numeric_price"] == 0.01 and set(base) == set(QUARANTINE_REASONS)  # a limit for every reason


def test_environment_text_is_kept_as_written_for_text_keys(conf):
    environ = {
        "INSIDERS_SPARK__BACKTEST__CUTOFF": "2011-09-09",  # TOML would read a date
        "INSIDERS_SPARK__CONTROL__SALT": "1e3",  # TOML would read the number 1000.0
        "INSIDERS_SPARK__CLUSTERING__K": "7",
        "INSIDERS_SPARK__CLUSTERING__K_GRID": "[3, 4]",
        "INSIDERS_SPARK__QUALITY__STABILITY": "false",
    }
    config = load_config(conf, "dev", environ=environ)
    assert (config.backtest.cutoff, config.control.salt) == ("2011-09-09", "1e3")
    assert (config.clustering.k, config.clustering.k_grid, config.quality.stability) == (7, (3, 4), False)
    cleared = load_config(conf, "dev", environ={"INSIDERS_SPARK__LAUNCH__CLASS_ARCHIVE": '""'})
    assert cleared.launch.class_archive == ""  # a quoted TOML string is still read as TOML


def test_spark_values_are_text_as_spark_reads_them(conf):
    _write(conf, "dev", '[spark]\n"spark.ui.enabled" = false\n"spark.sql.shuffle.partitions" = 3\n')
    spark = load_config(conf, "dev", environ={}).spark
    assert spark["spark.ui.enabled"] == "false" and spark["spark.sql.shuffle.partitions"] == "3"


def test_fingerprint_changes_with_the_configuration_only(conf):
    a = load_config(conf, "dev", environ={})
    b = load_config(conf, "dev", overrides={"clustering.k": 6}, environ={})
    assert a.fingerprint() == load_config(conf, "dev", environ={}).fingerprint()
    assert a.fingerprint() != b.fingerprint()
    assert len(a.fingerprint()) == 16 and int(a.fingerprint(), 16) >= 0


# --- what is refused, and the message that says so ------------------------------------------


@pytest.mark.parametrize(
    ("profile", "environ", "match"),
    [
        ("[clustering]\nkk = 5\n", {}, r"dev\.toml: unknown key clustering\.kk \(known keys of \[clustering\]: k,"),
        ("[clusterng]\nk = 5\n", {}, r"dev\.toml: unknown section \[clusterng\] \(known sections: backtest,"),
        ("clustering = 5\n", {}, r"dev\.toml: \[clustering\] must be a table"),
        ("spark = 5\n", {}, r"dev\.toml: \[spark\] must be a table of spark\.\* settings"),
        ('[spark]\n"sql.shuffle.partitions" = "4"\n', {}, r"\[spark\] keys must start with 'spark\.': sql\.shuffle"),
        ("[clustering\nk = 5\n", {}, r"dev\.toml: not valid TOML"),
        ("", {"INSIDERS_SPARK__CLUSTERING__KAY": "3"}, r"environment: unknown key clustering\.kay"),
        (
            "",
            {"INSIDERS_SPARK__CLUSTERING": "3"},
            r"INSIDERS_SPARK__CLUSTERING: expected INSIDERS_SPARK__<SECTION>__<KEY>",
        ),
        ("", {"INSIDERS_SPARK__SPARK__MASTER": "local"}, r"Spark settings go in conf/<env>\.toml or --conf"),
    ],
)
def test_a_profile_or_variable_that_does_not_fit_is_refused_naming_where(conf, profile, environ, match):
    _write(conf, "dev", profile)
    with pytest.raises(ConfigError, match=match):
        load_config(conf, "dev", environ=environ)


def test_a_missing_profile_names_the_file(conf):
    with pytest.raises(ConfigError, match=r"profile not found: .*nope\.toml"):
        load_config(conf, "nope", environ={})


# Every check of the loaded values: (overrides, the message). Each is a setting that would
# otherwise fail late, or silently do something else.
REFUSED = [
    ({"clustering": 3}, r"override 'clustering': expected <section>\.<key>"),
    ({"clustering.k": "nine"}, r"clustering\.k: expected a whole number, got 'nine'"),
    ({"clustering.k": True}, r"clustering\.k: expected a whole number, got True"),
    ({"embedding.min_leaf_share": "a lot"}, r"embedding\.min_leaf_share: expected a number, got 'a lot'"),
    ({"quality.stability": "yes"}, r"quality\.stability: expected true or false, got 'yes'"),
    ({"control.salt": ["a"]}, r"control\.salt: expected text, got \['a'\]"),
    ({"clustering.k_grid": 5}, r"clustering\.k_grid: expected a list, got 5"),
    ({"quarantine.max_share_by_reason": 0.1}, r"quarantine\.max_share_by_reason: expected a table of str = float"),
    ({"job.log_level": "verbose"}, r"job\.log_level = 'verbose': expected one of DEBUG, INFO"),
    ({"quarantine.max_share_by_reason": {"non_numeric_prize": 0.2}}, r"unknown reason\(s\) non_numeric_prize"),
    ({"segments.insiders_name": "Loyal"}, r"segments\.insiders_name = 'Loyal': a name the other clusters can earn"),
    ({"segments.insiders_name": "Frequent returners"}, r"insiders_name = 'Frequent returners'"),
    ({"input.format": "xlsx"}, r"input\.format = 'xlsx': expected one of auto, csv, parquet, json, orc"),
    ({"control.scope": "vip"}, r"control\.scope = 'vip': expected one of insiders, all"),
    ({"clustering.k": 1}, r"clustering\.k = 1: at least 2 clusters are needed"),
    ({"embedding.max_depth": 0}, r"embedding\.max_depth = 0: must be at least 1"),
    ({"embedding.min_leaf_share": 0.5}, r"embedding\.min_leaf_share = 0\.5: expected 0 <= share < 0\.5"),
    ({"embedding.min_leaf_share": -0.01}, r"embedding\.min_leaf_share = -0\.01"),
    ({"quarantine.max_share": 1.5}, r"quarantine\.max_share = 1\.5: expected a share between 0 and 1"),
    ({"quarantine.max_share_by_reason": {"malformed_line": -0.1}}, r"max_share_by_reason\.malformed_line = -0\.1"),
    ({"refresh.insider_hysteresis_runs": 0}, r"refresh\.insider_hysteresis_runs = 0: at least 1"),
    ({"clustering.k_grid": []}, r"clustering\.k_grid = \[\]: values of k, each at least 2"),
    ({"clustering.k_grid": [1, 4]}, r"clustering\.k_grid = \[1, 4\]"),
    ({"quality.silhouette_sample_rows": 1}, r"quality\.silhouette_sample_rows = 1: at least 2"),
    ({"quality.stability_seeds": -1}, r"stability_seeds and quality\.stability_bootstraps: 0 or more"),
    ({"quality.stability_bootstraps": -2}, r"stability_seeds and quality\.stability_bootstraps: 0 or more"),
    (
        {"quality.stability": True, "quality.stability_seeds": 0, "quality.stability_bootstraps": 0},
        r"stability_seeds \+ quality\.stability_bootstraps = 0: stability \(and --k auto\) needs",
    ),
    (
        {
            "quality.stability": False,
            "clustering.select_k": True,
            "quality.stability_seeds": 0,
            "quality.stability_bootstraps": 0,
        },
        r"stability_seeds \+ quality\.stability_bootstraps = 0",
    ),
    ({"quality.min_cluster_share": 1.01}, r"quality\.min_cluster_share = 1\.01: expected a share"),
    ({"quality.insiders_max_share": -0.1}, r"quality\.insiders_max_share = -0\.1: expected a share"),
    ({"quality.insiders_min_revenue_share": 2.0}, r"quality\.insiders_min_revenue_share = 2\.0"),
    ({"control.share": 1.2}, r"control\.share = 1\.2: expected a share between 0 and 1"),
    ({"backtest.head_count_shares": [0.1, 1.5]}, r"backtest\.head_count_shares\[1\] = 1\.5: expected a share"),
    ({"control.salt": ""}, r"control\.salt is empty: set one"),
    ({"backtest.horizon_days": -1}, r"backtest\.horizon_days = -1: 0 \(off\) or a number of days"),
    ({"backtest.head_count_shares": [0.0, 0.1]}, r"head_count_shares: every head-count must be above 0"),
    (
        {"backtest.horizon_days": 90, "backtest.scorers": ["segmentz"]},
        r"backtest\.scorers: unknown segmentz \(known: segments, future_revenue_tree, future_revenue_tree_trend\)",
    ),
    ({"backtest.cutoff": "09/09/2011"}, r"backtest\.cutoff = '09/09/2011': expected a date, YYYY-MM-DD"),
    ({"launch.quick_jit_max_bytes": -1}, r"launch\.quick_jit_max_bytes = -1: 0 \(never\) or a size in bytes"),
    ({"synthetic.lines": 0}, r"synthetic\.lines = 0: must be positive"),
]


@pytest.mark.parametrize(("overrides", "match"), REFUSED, ids=[next(iter(o)) for o, _ in REFUSED])
def test_settings_that_would_fail_late_are_refused_at_start_up(conf, overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(conf, "dev", overrides=overrides, environ={})


@pytest.mark.parametrize(
    "overrides",
    [
        {"job.log_level": "debug"},  # any case
        {"segments.insiders_name": "VIP"},
        {"embedding.min_leaf_share": 0.0},
        {"embedding.min_leaf_share": 0.49},
        {"control.share": 0.0},
        {"control.share": 1.0},
        {"quarantine.max_share": 0.0, "quarantine.max_share_by_reason": {"malformed_line": 1.0}},
        {"backtest.scorers": ["segmentz"]},  # unknown scorers matter only with a backtest
        {"quality.stability": False, "quality.stability_seeds": 0, "quality.stability_bootstraps": 0},
        {"refresh.insider_hysteresis_runs": 1, "clustering.k": 2, "clustering.k_grid": [2]},
        {"backtest.cutoff": "2011-09-09", "launch.quick_jit_max_bytes": 0, "synthetic.lines": 1},
    ],
)
def test_the_edges_of_every_range_are_accepted(conf, overrides):
    config = load_config(conf, "dev", overrides=overrides, environ={})
    for dotted, value in overrides.items():
        section, key = dotted.split(".")
        got = getattr(getattr(config, section), key)
        if isinstance(value, dict):  # a table is merged into base.toml's, entry by entry
            assert got.items() >= value.items(), dotted
        else:
            assert got == (tuple(value) if isinstance(value, list) else value), dotted


# --- the dataclasses and base.toml say the same ---------------------------------------------

# Sections whose defaults in core/config.py differ from conf/base.toml today (see the reasons).
DEFAULTS_DIFFER: dict[str, str] = {}


def _sections():
    return [
        pytest.param(
            f.name,
            marks=pytest.mark.xfail(strict=True, reason=DEFAULTS_DIFFER[f.name]) if f.name in DEFAULTS_DIFFER else (),
        )
        for f in dataclasses.fields(Config)
        # [spark] has no dataclass of defaults (it is Spark's settings); origin is where a config came from
        if f.name not in ("env", "spark", "origin")
    ]


@pytest.mark.parametrize("section", _sections())
def test_the_dataclass_defaults_are_base_toml(section):
    from_file = load_config(env="base", environ={}).to_dict()[section]
    defaults = Config().to_dict()[section]
    assert set(from_file) == set(defaults)
    differing = {key: (defaults[key], from_file[key]) for key in defaults if defaults[key] != from_file[key]}
    assert not differing, "\n".join(
        f"{section}.{key}: dataclass default {default!r}, base.toml {file!r}"
        for key, (default, file) in sorted(differing.items())
    )


def test_base_toml_sets_every_key():
    """A key missing from base.toml would take the dataclass default silently: the profile is the
    documentation of every setting, so each one is written there."""
    import tomllib

    written = tomllib.loads((default_conf_dir() / "base.toml").read_text())
    for section, values in Config().to_dict().items():
        if section in ("env", "spark"):
            continue
        assert set(written[section]) == set(values), section
