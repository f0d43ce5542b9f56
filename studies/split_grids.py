"""Split grids: fixed values every tree input is snapped down to before the tree sees it.

A grid is named by its **mantissas**, the steps within each power of ten, joined by ``-``:
``"1-2-5"`` is 0, then 0.001, 0.002, 0.005, 0.01, ... 5e9; ``"2"`` is 0, then 0.002, 0.02, ...,
200, 2,000, ...; ``"decades"`` is the powers of ten alone, ``"r5"`` and ``"r10"`` the ISO 3
preferred numbers; ``"none"``: not snapped. A setting gives every input a grid and optionally some
inputs their own: ``"decades/qty_items=2"``. A split can then only fall between two grid values,
whatever the sample, and the rules read in round numbers.

The job had this as ``embedding.split_grid`` (a stage of its saved pipeline); here the feature table
itself is snapped (:func:`with_split_grid`), so the job's own tree, stability runs and k grid run
on it unchanged. Only the snapped inputs change, as doubles; the revenue that ranks the clusters
does not.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from insiders_spark.core.names import MODEL_INPUT_COLUMNS

NO_GRID = "none"
# names for mantissa lists; any other grid is named by its mantissas ("1-2-5", "2", "1-3")
NAMED_GRIDS: dict[str, tuple[float, ...]] = {
    "decades": (1.0,),
    "r5": (1.0, 1.6, 2.5, 4.0, 6.3),  # ISO 3 preferred numbers
    "r10": (1.0, 1.25, 1.6, 2.0, 2.5, 3.15, 4.0, 5.0, 6.3, 8.0),
}
GRID_DECADES = range(-3, 10)  # 0.001 ... 5e9: past every feature's range


def grid_mantissas(name: str) -> tuple[float, ...]:
    """The steps within each power of ten of the grid ``name`` (empty for ``"none"``)."""
    if name == NO_GRID:
        return ()
    if name in NAMED_GRIDS:
        return NAMED_GRIDS[name]
    expected = f'"none", {", ".join(NAMED_GRIDS)} or increasing steps in [1, 10) joined by "-", like "1-2-5"'
    try:
        mantissas = tuple(float(part) for part in name.split("-"))
    except ValueError:
        raise ValueError(f"split grid {name!r}: expected {expected}") from None
    if not all(1.0 <= m < 10.0 for m in mantissas) or list(mantissas) != sorted(set(mantissas)):
        raise ValueError(f"split grid {name!r}: expected {expected}")
    return mantissas


def grid_values(name: str) -> tuple[float, ...]:
    """The grid's values, ascending: 0, then each mantissa times each power of ten (none: empty)."""
    mantissas = grid_mantissas(name)
    if not mantissas:
        return ()
    # parsed from text so that 0.002 is the double closest to 0.002
    return (0.0, *sorted(float(f"{m:g}e{e}") for e in GRID_DECADES for m in mantissas))


def input_grids(setting: str) -> dict[str, str]:
    """``"decades/qty_items=2"`` -> each tree input's grid name (``"none"``: not snapped)."""
    default, *by_input = setting.split("/")
    per_input = dict(part.split("=", 1) for part in by_input)
    unknown = sorted(set(per_input) - set(MODEL_INPUT_COLUMNS))
    if unknown:
        raise ValueError(
            f"split grid {setting!r}: {', '.join(unknown)} not a tree input ({', '.join(MODEL_INPUT_COLUMNS)})"
        )
    grids = {column: per_input.get(column, default) for column in MODEL_INPUT_COLUMNS}
    for name in grids.values():
        grid_mantissas(name)
    return grids


def snapped(value: Column, grid: tuple[float, ...]) -> Column:
    """The largest grid value at or below ``value`` (0 below the first positive one), a double."""
    top, *below = reversed(grid[1:])
    result = F.when(value >= F.lit(top), F.lit(top))
    for step in below:
        result = result.when(value >= F.lit(step), F.lit(step))
    return result.otherwise(F.lit(0.0))


def with_split_grid(features: DataFrame, setting: str) -> DataFrame:
    """The feature table with every tree input snapped to its grid of ``setting`` (``"none"``: as it is)."""
    grids = {column: grid_values(name) for column, name in input_grids(setting).items() if name != NO_GRID}
    if not grids:
        return features
    return features.select(
        *[
            snapped(F.col(column), grids[column]).alias(column) if column in grids else column
            for column in features.columns
        ]
    )
