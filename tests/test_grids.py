"""Split grids: their names, their values, one grid per tree input, and the configuration's checks."""

from __future__ import annotations

import pytest

from insiders_spark.core.config import load_config
from insiders_spark.core.errors import ConfigError, GridError
from insiders_spark.core.grids import SplitGrid, grid_mantissas, grid_values
from insiders_spark.core.names import MODEL_INPUT_COLUMNS


def test_a_grid_is_named_by_its_steps_within_a_power_of_ten():
    assert grid_mantissas("none") == ()
    assert grid_mantissas("decades") == grid_mantissas("1") == (1.0,)
    assert grid_mantissas("1-2-5") == (1.0, 2.0, 5.0)
    assert grid_mantissas("1-2.5-5") == (1.0, 2.5, 5.0)
    assert grid_values("none") == ()
    twos = grid_values("2")
    assert twos[:3] == (0.0, 0.002, 0.02) and twos[-1] == 2e9 and len(twos) == 1 + 13
    assert {200.0, 2000.0, 20000.0} <= set(twos) and 1000.0 not in twos
    assert 0.2 in grid_values("2")  # the double closest to 0.2, not 2 * 0.1
    assert grid_values("1-2-5") == tuple(sorted(set(grid_values("1")) | set(grid_values("2")) | set(grid_values("5"))))


@pytest.mark.parametrize("name", ["", "0.5", "10", "5-2", "2-2", "1-two", "1--2", "decade", "-1"])
def test_a_grid_that_is_not_increasing_steps_in_one_to_ten_is_refused(name):
    with pytest.raises(GridError, match="expected"):
        grid_mantissas(name)


def test_one_grid_per_tree_input():
    grid = SplitGrid.of("decades", {"qty_items": "2", "recency_days": "none"})
    assert grid.name("qty_items") == "2" and grid.name("frequency") == "decades" and grid.name("recency_days") == "none"
    assert grid.values("qty_items") == grid_values("2") and grid.values("recency_days") == ()
    assert grid.snapped == tuple(c for c in MODEL_INPUT_COLUMNS if c != "recency_days")
    assert SplitGrid.of("none", {"qty_items": "1-2-5"}).snapped == ("qty_items",)
    assert SplitGrid().snapped == ()
    # the order of the overrides does not make another grid (the model file compares equal)
    assert SplitGrid.of("none", {"qty_items": "2", "avg_ticket": "5"}) == SplitGrid.of(
        "none", {"avg_ticket": "5", "qty_items": "2"}
    )
    assert grid.describe() == {
        "split_grid": "decades",
        "split_grid_by_feature": {"qty_items": "2", "recency_days": "none"},
    }
    with pytest.raises(GridError, match="'gross_revenue': not a tree input"):
        SplitGrid.of("none", {"gross_revenue": "2"})  # the label is not an input


def test_the_configuration_refuses_a_bad_grid_naming_the_keys():
    assert load_config(env="test", overrides={"embedding.split_grid_by_feature": {"qty_items": "2"}}).embedding.split_grid_by_feature == {
        "qty_items": "2"
    }
    with pytest.raises(ConfigError, match=r"embedding.split_grid / split_grid_by_feature: split grid '0.5-2'"):
        load_config(env="test", overrides={"embedding.split_grid": "0.5-2"})
    with pytest.raises(ConfigError, match="'qty_item': not a tree input"):
        load_config(env="test", overrides={"embedding.split_grid_by_feature": {"qty_item": "2"}})
    with pytest.raises(ConfigError, match="split_grid_by_feature: expected a table"):
        load_config(env="test", overrides={"embedding.split_grid_by_feature": "2"})
