"""Dataset profiles and the column mapping in the configuration: layering, detection, refusals."""

from __future__ import annotations

import pytest

from insiders_spark.core.config import dataset_columns, dataset_names, detect_dataset, load_config, with_dataset
from insiders_spark.core.errors import ConfigError

UCI_HEADER = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country")


def _config(**overrides):
    return load_config(env="test", environ={}, overrides=overrides)


def test_the_base_rules_name_no_store():
    cleaning = _config().cleaning
    assert cleaning.non_product_codes == () and cleaning.excluded_countries == ()
    assert cleaning.excluded_customers == () and cleaning.min_unit_price == 0.0
    assert cleaning.guest_customer_id_start == 0


def test_the_study_profile_holds_its_names_pattern_and_rules():
    assert "online_retail" in dataset_names()
    assert dataset_columns("online_retail") == {
        "invoice_id": "InvoiceNo",
        "product_id": "StockCode",
        "description": "Description",
        "quantity": "Quantity",
        "invoice_date": "InvoiceDate",
        "unit_price": "UnitPrice",
        "customer_id": "CustomerID",
        "country": "Country",
    }
    study = _config(**{"input.dataset": "online_retail"})
    assert study.input.timestamp_format == "yyyy-MM-dd HH:mm:ss"
    assert study.cleaning.min_unit_price == 0.04 and study.cleaning.guest_customer_id_start == 19000
    assert study.cleaning.excluded_customers == ("16446",)
    assert {"POST", "M", "D"} <= set(study.cleaning.non_product_codes)
    assert study.cleaning.excluded_countries == ("European Community", "Unspecified")


def test_a_dataset_sits_below_the_environment_and_the_command_line():
    layered = _config(**{"input.dataset": "online_retail", "cleaning.min_unit_price": 0.5})
    assert layered.cleaning.min_unit_price == 0.5  # the flag wins
    assert layered.cleaning.guest_customer_id_start == 19000  # the dataset's, over base.toml's 0
    mapped = _config(**{"input.dataset": "online_retail", "input.columns": {"customer_id": "cust"}})
    assert mapped.input.columns["customer_id"] == "cust" and mapped.input.columns["invoice_id"] == "InvoiceNo"


def test_the_uci_header_brings_the_study_profile_and_says_it_was_detected():
    detected = detect_dataset(_config(), UCI_HEADER)
    assert detected.input.dataset == "online_retail" and detected.origin.dataset == "online_retail"
    assert detected.cleaning.min_unit_price == 0.04
    other = ("order_ref", "sku", "units", "ordered_at", "amount", "client")
    assert detect_dataset(_config(), other) == _config()


def test_a_named_mapping_or_none_turns_detection_off():
    assert detect_dataset(_config(**{"input.dataset": "none"}), UCI_HEADER).cleaning.min_unit_price == 0.0
    mapped = _config(**{"input.columns": {"customer_id": "CustomerID"}})
    assert detect_dataset(mapped, UCI_HEADER).input.dataset == ""


def test_with_dataset_keeps_the_command_line():
    config = _config(**{"clustering.k": 5})
    assert with_dataset(config, "online_retail").clustering.k == 5


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"input.dataset": "no_such_store"}, "no dataset profile.*known: online_retail"),
        ({"input.columns": {"custid": "c"}}, "unknown column name.*custid"),
        ({"input.columns": {"customer_id": "c", "invoice_id": "c"}}, "'c' is mapped twice"),
        ({"input.columns": {"customer_id": " "}}, "customer_id mapped to an empty source column"),
        ({"input.customer_ids": "uuid"}, "input.customer_ids"),
        ({"input.format": "xlsx"}, "input.format"),
        ({"input.path": "a.csv", "input.table": "db.t"}, "files or a table, not both"),
    ],
)
def test_bad_input_settings_are_refused_at_start_up(overrides, message):
    with pytest.raises(ConfigError, match=message):
        _config(**overrides)
