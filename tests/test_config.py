"""Layered TOML configuration: precedence, strict keys, clear messages."""

import pytest

from insiders_spark.core.config import default_conf_dir, load_config
from insiders_spark.core.errors import ConfigError


def _write(folder, name, text):
    (folder / f"{name}.toml").write_text(text)


@pytest.fixture
def conf(tmp_path):
    base = (default_conf_dir() / "base.toml").read_text()
    _write(tmp_path, "base", base)
    _write(tmp_path, "dev", '[clustering]\nk = 5\n[spark]\n"spark.master" = "local[1]"\n')
    return tmp_path


def test_packaged_profiles_load(tmp_path):
    config = load_config(env="local", environ={})
    assert config.clustering.k == 9
    assert config.cleaning.non_product_stock_codes[:3] == ("POST", "D", "DOT")
    assert config.cleaning.excluded_customers == (16446,)
    assert config.spark["spark.sql.session.timeZone"] == "UTC"
    assert config.spark["spark.sql.sources.partitionOverwriteMode"] == "dynamic"
    assert config.spark["spark.master"].startswith("local")


def test_precedence_base_env_file_environment_flags(conf):
    assert load_config(conf, "dev", environ={}).clustering.k == 5
    environ = {"INSIDERS_SPARK__CLUSTERING__K": "7", "INSIDERS_SPARK__INPUT__PATH": "data/*.csv"}
    from_env = load_config(conf, "dev", environ=environ)
    assert from_env.clustering.k == 7 and from_env.input.path == "data/*.csv"
    flags = load_config(conf, "dev", overrides={"clustering.k": 11, "job.seed": None}, environ=environ)
    assert flags.clustering.k == 11 and flags.job.seed == 42


def test_unknown_key_names_the_file_and_the_key(conf):
    _write(conf, "dev", "[clustering]\nkk = 5\n")
    with pytest.raises(ConfigError, match=r"dev\.toml: unknown key clustering\.kk \(known keys of \[clustering\]"):
        load_config(conf, "dev", environ={})


def test_unknown_section_and_environment_variable(conf):
    _write(conf, "dev", "[clusterng]\nk = 5\n")
    with pytest.raises(ConfigError, match=r"unknown section \[clusterng\]"):
        load_config(conf, "dev", environ={})
    _write(conf, "dev", "")
    with pytest.raises(ConfigError, match=r"environment: unknown key clustering\.kay"):
        load_config(conf, "dev", environ={"INSIDERS_SPARK__CLUSTERING__KAY": "3"})


def test_wrong_types_and_choices_are_refused(conf):
    with pytest.raises(ConfigError, match=r"clustering\.k: expected a whole number, got 'nine'"):
        load_config(conf, "dev", overrides={"clustering.k": "nine"}, environ={})
    with pytest.raises(ConfigError, match=r"embedding\.encoding = 'onehot'"):
        load_config(conf, "dev", overrides={"embedding.encoding": "onehot"}, environ={})
    with pytest.raises(ConfigError, match=r"clustering\.k = 1"):
        load_config(conf, "dev", overrides={"clustering.k": 1}, environ={})
    with pytest.raises(ConfigError, match=r"clustering\.insiders_cap = 1\.0"):
        load_config(conf, "dev", overrides={"clustering.insiders_cap": 1.0}, environ={})
    with pytest.raises(ConfigError, match=r"insiders_cap works with clustering\.solver = 'local' only"):
        load_config(conf, "dev", overrides={"clustering.insiders_cap": 0.1, "clustering.solver": "mllib"}, environ={})
    assert load_config(conf, "dev", overrides={"clustering.insiders_cap": 0.1}, environ={}).clustering.insiders_cap == 0.1


def test_missing_profile_and_bad_spark_key(conf):
    with pytest.raises(ConfigError, match=r"profile not found: .*nope\.toml"):
        load_config(conf, "nope", environ={})
    _write(conf, "dev", '[spark]\n"sql.shuffle.partitions" = "4"\n')
    with pytest.raises(ConfigError, match=r"must start with 'spark\.'"):
        load_config(conf, "dev", environ={})


def test_fingerprint_changes_with_the_configuration(conf):
    a = load_config(conf, "dev", environ={})
    b = load_config(conf, "dev", overrides={"clustering.k": 6}, environ={})
    assert a.fingerprint() == load_config(conf, "dev", environ={}).fingerprint()
    assert a.fingerprint() != b.fingerprint()


def test_a_table_set_in_a_profile_or_the_environment_keeps_its_other_entries(conf):
    base = load_config(conf, "dev", environ={}).quarantine.max_share_by_reason
    _write(conf, "dev", "[quarantine]\nmax_share_by_reason = { excluded_country = 0.05 }\n")
    from_profile = load_config(conf, "dev", environ={}).quarantine.max_share_by_reason
    assert from_profile == {**base, "excluded_country": 0.05}
    environ = {"INSIDERS_SPARK__QUARANTINE__MAX_SHARE_BY_REASON": "{ non_numeric_price = 0.2 }"}
    from_environ = load_config(conf, "dev", environ=environ).quarantine.max_share_by_reason
    assert from_environ == {**base, "excluded_country": 0.05, "non_numeric_price": 0.2}
    assert base["non_numeric_price"] == 0.01 and len(base) > 2  # the entries that were kept are real limits


def test_environment_text_is_kept_as_written_for_text_keys(conf):
    environ = {
        "INSIDERS_SPARK__BACKTEST__CUTOFF": "2011-09-09",  # TOML would read a date
        "INSIDERS_SPARK__CONTROL__SALT": "1e3",  # TOML would read the number 1000.0
        "INSIDERS_SPARK__CLUSTERING__K": "7",
        "INSIDERS_SPARK__CLUSTERING__K_GRID": "[3, 4]",
    }
    config = load_config(conf, "dev", environ=environ)
    assert (config.backtest.cutoff, config.control.salt) == ("2011-09-09", "1e3")
    assert (config.clustering.k, config.clustering.k_grid) == (7, (3, 4))
    cleared = load_config(conf, "dev", environ={"INSIDERS_SPARK__LAUNCH__CLASS_ARCHIVE": '""'})
    assert cleared.launch.class_archive == ""  # a quoted TOML string is still read as TOML


def test_settings_that_would_fail_late_are_refused_at_start_up(conf):
    with pytest.raises(ConfigError, match=r"job\.log_level = 'verbose'"):
        load_config(conf, "dev", overrides={"job.log_level": "verbose"}, environ={})
    assert load_config(conf, "dev", overrides={"job.log_level": "debug"}, environ={}).job.log_level == "debug"
    with pytest.raises(ConfigError, match=r"unknown reason\(s\) non_numeric_prize"):
        load_config(conf, "dev", environ={"INSIDERS_SPARK__QUARANTINE__MAX_SHARE_BY_REASON": "{ non_numeric_prize = 0.2 }"})
    with pytest.raises(ConfigError, match=r"backtest\.scorers: unknown segmentz"):
        load_config(conf, "dev", overrides={"backtest.horizon_days": 90, "backtest.scorers": ["segmentz"]}, environ={})
    with pytest.raises(ConfigError, match=r"head_count_shares: every head-count must be above 0"):
        load_config(conf, "dev", overrides={"backtest.head_count_shares": [0.0, 0.1]}, environ={})


def test_the_insiders_name_cannot_be_a_name_other_clusters_earn(conf):
    with pytest.raises(ConfigError, match=r"segments\.insiders_name = 'Loyal': a name the other clusters can earn"):
        load_config(conf, "dev", overrides={"segments.insiders_name": "Loyal"}, environ={})
    assert load_config(conf, "dev", overrides={"segments.insiders_name": "VIP"}, environ={}).segments.insiders_name == "VIP"
