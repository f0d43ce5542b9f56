"""Layered TOML configuration: precedence, strict keys, clear messages."""

import pytest

from insiders_spark.config import ConfigError, default_conf_dir, load_config


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
