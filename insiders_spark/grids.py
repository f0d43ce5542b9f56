"""Split grids: the fixed values a tree input is snapped down to before the tree sees it.

A grid is named by its **mantissas**, the steps within each power of ten, joined by ``-``:
``"1-2-5"`` is 0, then 0.001, 0.002, 0.005, 0.01, ... 5e9; ``"2"`` is 0, then 0.002, 0.02, ...,
200, 2,000, ...; ``"decades"`` is ``"1"``, the powers of ten alone. ``"none"``: the input is not
snapped. Each mantissa is at least 1 and below 10, in increasing order.

``embedding.split_grid`` sets the grid of every tree input, and ``embedding.split_grid_by_feature``
one input's (``{ qty_items = "2" }``): a programme can put the steps where its entry rules should
read (``qty_items ≥ 2,000``), and a split between two steps selects the same customers whatever the
sample (embedding.py, README "Split grid"). No Spark at import: the configuration validates with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

NO_GRID = "none"
# names for mantissa lists; any other grid is named by its mantissas ("1-2-5", "2", "1-3")
NAMED_GRIDS: dict[str, tuple[float, ...]] = {"decades": (1.0,)}
GRID_DECADES = range(-3, 10)  # 0.001 ... 5e9: past every feature's range (quantities stop at 1e9 per line)


class GridError(ValueError):
    """A grid name that is neither "none", a known name, nor increasing mantissas in [1, 10)."""


def grid_mantissas(name: str) -> tuple[float, ...]:
    """The steps within each power of ten of the grid ``name`` (empty for ``"none"``)."""
    if name == NO_GRID:
        return ()
    if name in NAMED_GRIDS:
        return NAMED_GRIDS[name]
    named = ", ".join(f'"{n}"' for n in NAMED_GRIDS)
    expected = f'"none", {named} or increasing steps in [1, 10) joined by "-", like "1-2-5"'
    try:
        mantissas = tuple(float(part) for part in name.split("-"))
    except ValueError:
        raise GridError(f"split grid {name!r}: expected {expected}") from None
    if not all(1.0 <= m < 10.0 for m in mantissas) or list(mantissas) != sorted(set(mantissas)):
        raise GridError(f"split grid {name!r}: expected {expected}")
    return mantissas


def grid_values(name: str) -> tuple[float, ...]:
    """The grid's values, ascending: 0, then each mantissa times each power of ten (none: empty)."""
    mantissas = grid_mantissas(name)
    if not mantissas:
        return ()
    # parsed from text so that 0.002 is the double closest to 0.002, as in the SQL literal
    return (0.0, *sorted(float(f"{m:g}e{e}") for e in GRID_DECADES for m in mantissas))


def _tree_inputs() -> tuple[str, ...]:
    from insiders_spark.schemas import MODEL_INPUT_COLUMNS  # imports pyspark: not at configuration load

    return MODEL_INPUT_COLUMNS


@dataclass(frozen=True)
class SplitGrid:
    """The grid of every tree input: ``default``, except the inputs named in ``by_feature``."""

    default: str = NO_GRID
    by_feature: tuple[tuple[str, str], ...] = ()  # (feature, grid), sorted by feature

    def __post_init__(self) -> None:
        grid_mantissas(self.default)
        for feature, name in self.by_feature:
            if feature not in _tree_inputs():
                raise GridError(
                    f"split grid for {feature!r}: not a tree input (inputs: {', '.join(_tree_inputs())})"
                )
            grid_mantissas(name)

    @classmethod
    def of(cls, default: str = NO_GRID, by_feature: Mapping[str, str] | None = None) -> SplitGrid:
        return cls(default=default, by_feature=tuple(sorted((by_feature or {}).items())))

    @classmethod
    def from_description(cls, description: Mapping) -> SplitGrid:
        """The grid a :meth:`describe` block records (a model file, the metrics); one written before
        the options has neither key: no grid."""
        return cls.of(description.get("split_grid", NO_GRID), description.get("split_grid_by_feature"))

    def name(self, feature: str) -> str:
        return dict(self.by_feature).get(feature, self.default)

    def values(self, feature: str) -> tuple[float, ...]:
        return grid_values(self.name(feature))

    @property
    def snapped(self) -> tuple[str, ...]:
        """The tree inputs that are snapped, in the inputs' order."""
        return tuple(c for c in _tree_inputs() if self.name(c) != NO_GRID)

    def describe(self) -> dict:
        return {"split_grid": self.default, "split_grid_by_feature": dict(self.by_feature)}
