"""The seed-only world every chunk shares: the calendar, the registered customers and the catalogue."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pyarrow as pa

from insiders_spark.storage.synthetic.spec import SyntheticLogSpec
from insiders_spark.storage.synthetic.tables import (
    _ACTIVITY_FLOOR,
    _ACTIVITY_SIGMA,
    _ADJUSTMENT_NOTES,
    _CATALOGUE_STREAM,
    _CODE_RANGES,
    _COLOURS,
    _COUNTRIES,
    _EXISTING_SHARE,
    _HOUR_WEIGHTS,
    _ID_GAP_SHARE,
    _ITEMS,
    _MEAN_LIFETIME_DAYS,
    _MIN_ACTIVE_DAYS,
    _MODIFIERS,
    _MONTH_WEIGHTS,
    _MOTIFS,
    _NON_PRODUCTS,
    _POPULATION_STREAM,
    _PRICE_LOG_MEAN,
    _PRICE_LOG_SD,
    _TASTE_BASE,
    _WEEKDAY_WEIGHTS,
    FIRST_CUSTOMER_ID,
    OVERFLOW_CUSTOMER_ID,
    REGISTERED_ID_CEILING,
)

if TYPE_CHECKING:
    pass


@functools.lru_cache(maxsize=8)
def _timeline(start: dt.date, days: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Open hours of the period: (first minute of each, cumulative share before it, its share)."""
    dates = np.datetime64(start, "D") + np.arange(days)
    months = dates.astype("datetime64[M]").astype(np.int64) % 12
    day_of_month = (dates - dates.astype("datetime64[M]")).astype(np.int64) + 1
    weekday = (dates.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    closed = ((months == 11) & (day_of_month >= 24)) | ((months == 0) & (day_of_month <= 3))
    day_weight = _MONTH_WEIGHTS[months] * _WEEKDAY_WEIGHTS[weekday] * ~closed
    if not day_weight.any():  # a period with no trading day: trade every day anyway
        day_weight = np.ones(days)
    hour_weight = (day_weight[:, None] * _HOUR_WEIGHTS[None, :]).ravel()
    open_hours = np.flatnonzero(hour_weight)
    share = hour_weight[open_hours] / hour_weight.sum()
    before = np.concatenate([[0.0], np.cumsum(share)[:-1]])
    return open_hours * 60, before, share


def _minutes_at(spec: SyntheticLogSpec, positions: np.ndarray) -> np.ndarray:
    """Minutes since ``spec.start`` of the lines at ``positions`` (monotone in position)."""
    hour_start, before, share = _timeline(spec.start, spec.days)
    fraction = positions / spec.lines
    hour = np.searchsorted(before, fraction, side="right") - 1
    within = np.clip((fraction - before[hour]) / share[hour], 0.0, 1.0)
    return hour_start[hour] + np.minimum((within * 60).astype(np.int64), 59)


@dataclass(frozen=True)
class _Population:
    ids: np.ndarray  # float64 CustomerID
    weight: np.ndarray  # float32 relative invoice rate while active
    first_day: np.ndarray  # first and last day of the active window (days since start)
    last_day: np.ndarray
    country: np.ndarray  # index into _COUNTRIES
    taste: np.ndarray  # size of the preferred subset of the catalogue
    salt: np.ndarray  # uint64 key of the preferred subset


@functools.lru_cache(maxsize=2)
def _population(seed: int, n: int, days: int) -> _Population:
    """The registered customers: a function of the seed, their number and the period only."""
    rng = np.random.default_rng([seed, _POPULATION_STREAM])
    ids = _customer_ids(rng, n)
    activity = np.maximum(rng.standard_normal(n), _ACTIVITY_FLOOR)
    weight = np.exp(_ACTIVITY_SIGMA * activity).astype(np.float32)
    existing = rng.random(n) < _EXISTING_SHARE
    first_day = np.where(existing, 0, rng.integers(0, days, n))
    lifetime = np.maximum(_MIN_ACTIVE_DAYS, rng.exponential(_MEAN_LIFETIME_DAYS, n))
    last_day = np.minimum(days - 1, first_day + lifetime.astype(np.int64))
    country_cdf = _cdf(np.array([c[1] for c in _COUNTRIES], dtype=np.float64))
    country = np.searchsorted(country_cdf, rng.random(n), side="right").astype(np.int8)
    taste_noise = np.exp(0.5 * rng.standard_normal(n))
    taste = np.clip(np.rint(_TASTE_BASE * np.sqrt(weight) * taste_noise), 4, 800)
    salt = rng.integers(0, np.iinfo(np.uint64).max, n, dtype=np.uint64, endpoint=True)
    return _Population(
        ids, weight, first_day.astype(np.int32), last_day.astype(np.int32), country, taste.astype(np.int16), salt
    )


def _customer_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` sorted ids from 12346 with a gap every ~3 ids, below 19000 while they fit.

    The job numbers guest invoices upward from 19000, so ids that do not fit below it continue
    from ``OVERFLOW_CUSTOMER_ID`` (far above any guest number) instead of running into them.
    """
    gaps = round(_ID_GAP_SHARE * n)
    room = REGISTERED_ID_CEILING - FIRST_CUSTOMER_ID
    below = min(n, room)
    gaps = max(0, min(gaps, room - below))
    offsets = np.sort(rng.choice(below + gaps, size=below, replace=False))
    low = FIRST_CUSTOMER_ID + offsets - offsets[0]
    high = OVERFLOW_CUSTOMER_ID + np.arange(n - below)
    return np.concatenate([low, high]).astype(np.float64)


@dataclass(frozen=True)
class _Catalogue:
    codes: pa.Array  # stock codes: products, then non-products
    descriptions: pa.Array  # products, then non-products, then adjustment notes
    price: np.ndarray  # base unit price of each product
    popularity: _Alias  # sampler of products by popularity


@functools.lru_cache(maxsize=2)
def _catalogue(seed: int, n: int) -> _Catalogue:
    """Products (stock codes, descriptions, prices, popularity) plus the non-product codes."""
    rng = np.random.default_rng([seed, _CATALOGUE_STREAM])
    codes, families = _stock_codes(rng, n)
    descriptions = _descriptions(rng, families)
    price = _price_points(np.exp(rng.normal(_PRICE_LOG_MEAN, _PRICE_LOG_SD, n)))
    popularity = np.exp(1.4 * rng.standard_normal(n)) * price**-0.3
    return _Catalogue(
        codes=pa.array(codes + [p[0] for p in _NON_PRODUCTS], pa.string()),
        descriptions=pa.array(descriptions + [p[1] for p in _NON_PRODUCTS] + list(_ADJUSTMENT_NOTES), pa.string()),
        price=price,
        popularity=_alias_table(popularity),
    )


def _stock_codes(rng: np.random.Generator, n: int) -> tuple[list[str], list[int]]:
    """``n`` codes like "22423" or "85123A" (letters mark variants of one family)."""
    range_weights = np.array([r[2] for r in _CODE_RANGES])
    picks = rng.choice(len(_CODE_RANGES), size=2 * n, p=range_weights / range_weights.sum())
    lows, highs = (np.array([r[i] for r in _CODE_RANGES])[picks] for i in (0, 1))
    numbers = dict.fromkeys((lows + rng.random(2 * n) * (highs - lows)).astype(int).tolist())
    variants = np.where(rng.random(len(numbers)) < 0.1, rng.integers(2, 7, len(numbers)), 1)
    codes: list[str] = []
    families: list[int] = []
    for family, (number, count) in enumerate(zip(numbers, variants.tolist(), strict=True)):
        suffixes = [""] if count == 1 else [chr(ord("A") + k) for k in range(count)]
        codes += [f"{number}{s}" for s in suffixes]
        families += [family] * count
        if len(codes) >= n:
            break
    return codes[:n], families[:n]


def _descriptions(rng: np.random.Generator, families: list[int]) -> list[str]:
    """Made-up upper-case descriptions; variants of a family differ in colour only."""
    n_families = families[-1] + 1 if families else 0
    stems = [
        (
            _MODIFIERS[rng.integers(len(_MODIFIERS))],
            _MOTIFS[rng.integers(len(_MOTIFS))],
            _ITEMS[rng.integers(len(_ITEMS))],
        )
        for _ in range(n_families)
    ]
    colours = rng.integers(len(_COLOURS), size=len(families))
    trailing = rng.random(len(families)) < 0.1  # the real export has stray trailing spaces
    out = []
    for family, colour, space in zip(families, colours.tolist(), trailing.tolist(), strict=True):
        modifier, motif, item = stems[family]
        words = " ".join(w for w in (modifier, _COLOURS[colour], motif, item) if w)
        out.append(words + (" " if space else ""))
    return out


def _price_points(raw: np.ndarray) -> np.ndarray:
    """Shop-like prices: pennies below 1.00, multiples of 0.05 above, never below 0.10."""
    return np.maximum(0.10, np.where(raw < 1.0, np.round(raw, 2), np.round(raw * 20) / 20))


def _cdf(weights: np.ndarray) -> np.ndarray:
    cdf = np.cumsum(weights, dtype=np.float64)
    return cdf / cdf[-1]


class _Alias(NamedTuple):
    """Walker's alias table: draws a weighted category from one uniform in O(1)."""

    prob: np.ndarray
    alias: np.ndarray


def _alias_table(weights: np.ndarray) -> _Alias:
    """Vose's construction of the alias table of ``weights``."""
    n = len(weights)
    scaled = np.asarray(weights, dtype=np.float64) * n / np.sum(weights)
    prob, alias = np.ones(n), np.arange(n)
    small = [i for i in range(n) if scaled[i] < 1.0]
    large = [i for i in range(n) if scaled[i] >= 1.0]
    while small and large:
        s, g = small.pop(), large.pop()
        prob[s], alias[s] = scaled[s], g
        scaled[g] += scaled[s] - 1.0
        (small if scaled[g] < 1.0 else large).append(g)
    return _Alias(prob, alias)


def _alias_draw(table: _Alias, u: np.ndarray) -> np.ndarray:
    """Categories for uniforms ``u`` in [0, 1): the integer part of ``u * n`` picks a column,
    the fractional part decides between it and its alias."""
    scaled = u * table.prob.size
    column = np.minimum(scaled.astype(np.int64), table.prob.size - 1)  # u * n may round to n
    return np.where(scaled - column < table.prob[column], column, table.alias[column])
