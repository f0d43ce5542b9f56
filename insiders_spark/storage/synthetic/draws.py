"""One chunk's invoices and lines: kinds and sizes, customers, countries, products, quantities and prices."""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from insiders_spark.storage.synthetic.spec import SyntheticLogSpec, _kind_line_shares
from insiders_spark.storage.synthetic.tables import (
    _ADJUSTMENT_NOTES,
    _ADJUSTMENT_NULL_DESCRIPTION,
    _BULK_SHARE,
    _COUNTRIES,
    _ESTABLISHED_DAYS,
    _EUROPEAN_COMMUNITY,
    _EXPENSIVE,
    _GUEST_MARKUP,
    _GUEST_RETURN_SHARE,
    _NON_PRODUCTS,
    _PACK_DISCOUNTS,
    _QTY_VALUES,
    _QTY_WEIGHTS,
    _RETURN_QTY_VALUES,
    _RETURN_QTY_WEIGHTS,
    _UNSPECIFIED,
    _ZERO_PRICE_SHARE,
    ADJUSTMENT,
    GUEST,
    MAX_INVOICE_LINES,
    REGISTERED,
    RETURN,
)
from insiders_spark.storage.synthetic.world import (
    _alias_draw,
    _alias_table,
    _Catalogue,
    _catalogue,
    _cdf,
    _minutes_at,
    _Population,
    _population,
)

if TYPE_CHECKING:
    pass


class _Invoices(NamedTuple):
    kind: np.ndarray  # REGISTERED, GUEST, RETURN or ADJUSTMENT
    size: np.ndarray  # lines
    minute: np.ndarray  # minutes since spec.start
    customer: np.ndarray  # index into the population, -1 for guests
    country: np.ndarray  # index into _COUNTRIES


@functools.lru_cache(maxsize=8)
def _size_pmfs(mean_registered: float) -> tuple[np.ndarray, np.ndarray]:
    """Lines-per-invoice pmfs over 1..MAX_INVOICE_LINES of each kind, and their means."""
    k = np.arange(1, MAX_INVOICE_LINES + 1, dtype=np.float64)
    single = (k == 1).astype(np.float64)
    guest = 0.45 * single + 0.55 * _lognormal_pmf(k, math.log(40.0), 1.0)
    returns = 0.55 ** (k - 1)
    pmfs = np.stack([_registered_pmf(k, mean_registered), guest, returns / returns.sum(), single])
    return pmfs, pmfs @ k


def _lognormal_pmf(k: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    density = np.exp(-((np.log(k) - mu) ** 2) / (2 * sigma**2)) / k
    return density / density.sum()


def _registered_pmf(k: np.ndarray, mean: float, sigma: float = 0.85) -> np.ndarray:
    """A discretised lognormal with the given mean (found by bisection on its log-median)."""
    low, high = -5.0, math.log(MAX_INVOICE_LINES)
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if _lognormal_pmf(k, mid, sigma) @ k < mean else (low, mid)
    return _lognormal_pmf(k, (low + high) / 2, sigma)


def _draw_invoices(spec: SyntheticLogSpec, rng: np.random.Generator, n_lines: int, first_line: int) -> _Invoices:
    kind, size = _draw_kinds_and_sizes(spec, rng, n_lines)
    starts = first_line + np.cumsum(size) - size
    minute = _minutes_at(spec, starts)
    population = _population(spec.seed, spec.n_customers, spec.days)
    customer = _draw_customers(population, kind, minute // 1440, rng)
    country = _draw_countries(spec, population, customer, rng)
    return _Invoices(kind, size, minute, customer, country)


def _draw_kinds_and_sizes(
    spec: SyntheticLogSpec, rng: np.random.Generator, n_lines: int
) -> tuple[np.ndarray, np.ndarray]:
    """Invoice kinds and sizes filling exactly ``n_lines`` (the last invoice is cut short)."""
    pmfs, means = _size_pmfs(spec.mean_invoice_lines)
    kind_p = np.array(_kind_line_shares(spec)) / means
    kind_cdf = _cdf(kind_p)
    size_cdfs = [_cdf(p) for p in pmfs]
    mean_size = kind_p @ means / kind_p.sum()
    kinds, sizes, total = [], [], 0
    while total < n_lines:
        m = int((n_lines - total) / mean_size * 1.1) + 16
        kind = np.searchsorted(kind_cdf, rng.random(m), side="right")
        size = np.empty(m, dtype=np.int64)
        for k, cdf in enumerate(size_cdfs):
            of_kind = kind == k
            size[of_kind] = 1 + np.searchsorted(cdf, rng.random(of_kind.sum()), side="right")
        kinds.append(kind)
        sizes.append(size)
        total += int(size.sum())
    kind, size = np.concatenate(kinds), np.concatenate(sizes)
    ends = np.cumsum(size)
    n_invoices = int(np.searchsorted(ends, n_lines)) + 1
    kind, size = kind[:n_invoices], size[:n_invoices]
    size[-1] -= ends[n_invoices - 1] - n_lines
    return kind.astype(np.int8), size


def _draw_customers(population: _Population, kind: np.ndarray, day: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A customer for each registered purchase or return, drawn by weight among the active."""
    customer = np.full(kind.size, -1, dtype=np.int64)
    guest_return = (kind == RETURN) & (rng.random(kind.size) < _GUEST_RETURN_SHARE)
    registered = np.flatnonzero(((kind == REGISTERED) | (kind == RETURN)) & ~guest_return)
    bounds = np.flatnonzero(np.diff(day[registered])) + 1
    for group in np.split(registered, bounds):  # invoices are in time order: one group a day
        if group.size:
            is_return = kind[group] == RETURN
            customer[group] = _draw_on_day(population, int(day[group[0]]), is_return, rng)
    return customer


def _draw_on_day(population: _Population, day: int, is_return: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Purchases go to customers active that day, returns to those active for a while."""
    active = np.flatnonzero((population.first_day <= day) & (population.last_day >= day))
    picks = np.empty(is_return.size, dtype=np.int64)
    picks[~is_return] = _weighted_pick(population.weight, active, int((~is_return).sum()), rng)
    if is_return.any():
        established = active[population.first_day[active] <= day - _ESTABLISHED_DAYS]
        picks[is_return] = _weighted_pick(population.weight, established, int(is_return.sum()), rng)
    return picks


def _weighted_pick(weight: np.ndarray, candidates: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    if candidates.size == 0:  # nobody qualifies (tiny populations): fall back to anyone
        candidates = np.arange(weight.size)
    cumulative = np.cumsum(weight[candidates], dtype=np.float64)
    picks = np.searchsorted(cumulative, rng.random(n) * cumulative[-1], side="right")
    return candidates[np.minimum(picks, candidates.size - 1)]


def _draw_countries(
    spec: SyntheticLogSpec,
    population: _Population,
    customer: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    guest_cdf = _cdf(np.array([c[2] for c in _COUNTRIES], dtype=np.float64))
    guest_country = np.searchsorted(guest_cdf, rng.random(customer.size), side="right")
    country = np.where(customer >= 0, population.country[customer], guest_country)
    odd = rng.random(customer.size)
    country[odd < spec.odd_country_share] = _UNSPECIFIED
    country[odd < spec.odd_country_share / 5] = _EUROPEAN_COMMUNITY
    return country.astype(np.int16)


class _Lines(NamedTuple):
    invoice: np.ndarray  # index of the line's invoice
    item: np.ndarray  # index into _Catalogue.codes
    description: np.ndarray  # index into _Catalogue.descriptions, -1 for null
    quantity: np.ndarray
    price: np.ndarray


def _draw_lines(spec: SyntheticLogSpec, rng: np.random.Generator, inv: _Invoices) -> _Lines:
    catalogue = _catalogue(spec.seed, spec.products)
    invoice = np.repeat(np.arange(inv.kind.size, dtype=np.int32), inv.size)
    kind = inv.kind[invoice]
    customer = inv.customer[invoice]
    product = _draw_products(spec, rng, kind, customer, catalogue)
    non_product = _draw_non_products(rng, kind)
    is_product = non_product < 0
    item = np.where(is_product, product, spec.products + non_product)
    base_price = catalogue.price[product]
    quantity = _draw_quantities(rng, kind, base_price)
    quantity[~is_product] = np.where(kind[~is_product] == RETURN, -1, 1)
    price = _line_prices(rng, kind, quantity, base_price, non_product)
    description = _descriptions_of_lines(rng, kind, item, spec.products)
    return _Lines(invoice, item.astype(np.int32), description, quantity, price)


def _draw_products(
    spec: SyntheticLogSpec,
    rng: np.random.Generator,
    kind: np.ndarray,
    customer: np.ndarray,
    catalogue: _Catalogue,
) -> np.ndarray:
    """Products by popularity; registered lines mostly from the customer's preferred subset."""
    population = _population(spec.seed, spec.n_customers, spec.days)
    n = kind.size
    is_return = kind == RETURN
    preferred = (customer >= 0) & (is_return | (rng.random(n) < spec.preferred_share))
    skew = np.square(rng.random(n))  # low slots are the customer's favourites, bought most often
    np.square(skew, out=skew, where=is_return)  # and returned most often
    slot = (skew * population.taste[customer]).astype(np.uint64)
    hashed = _hash_uniform(population.salt[customer], slot)  # guests' values are ignored
    u = np.where(preferred, hashed, rng.random(n))
    return _alias_draw(catalogue.popularity, u).astype(np.int32)


def _hash_uniform(salt: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """A uniform in [0, 1) from (salt, slot) by the splitmix64 finaliser: stable everywhere."""
    x = salt + slot * np.uint64(0x9E3779B97F4A7C15)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _draw_non_products(rng: np.random.Generator, kind: np.ndarray) -> np.ndarray:
    """Index into _NON_PRODUCTS of lines that carry a non-product code, -1 elsewhere."""
    rates = np.array([p[4:7] for p in _NON_PRODUCTS]).T  # kinds x codes
    rates = np.vstack([rates, np.zeros(len(_NON_PRODUCTS))])  # adjustments: products only
    cumulative = np.cumsum(rates, axis=1)
    u = rng.random(kind.size)
    code = np.full(kind.size, -1, dtype=np.int64)
    for k in range(len(cumulative)):
        hit = (kind == k) & (u < cumulative[k, -1])
        code[hit] = np.searchsorted(cumulative[k], u[hit], side="right")
    return code


def _draw_quantities(rng: np.random.Generator, kind: np.ndarray, base_price: np.ndarray) -> np.ndarray:
    """Pack sizes; returns negative; expensive products in small packs; a rare bulk tail."""
    n = kind.size
    quantity = _QTY_VALUES[_alias_draw(_QTY_ALIAS, rng.random(n))]
    expensive = base_price >= _EXPENSIVE
    quantity[expensive] = np.minimum(quantity[expensive], 1 + (quantity[expensive] > 2) * 3)
    bulk = rng.random(n) < _BULK_SHARE
    quantity[bulk] = np.minimum(80_000, (200 * (1 + rng.pareto(1.2, bulk.sum()))).astype(np.int64))
    returns = kind == RETURN
    returned = _alias_draw(_RETURN_QTY_ALIAS, rng.random(returns.sum()))
    quantity[returns] = -_RETURN_QTY_VALUES[returned]
    adjustments = np.flatnonzero(kind == ADJUSTMENT)
    flip = rng.random(adjustments.size) < 0.6
    quantity[adjustments[flip]] *= -1
    return quantity.astype(np.int64)


def _line_prices(
    rng: np.random.Generator,
    kind: np.ndarray,
    quantity: np.ndarray,
    base_price: np.ndarray,
    non_product: np.ndarray,
) -> np.ndarray:
    """Unit prices: guests pay retail, big packs get discounts, a few 0.0 and odd prices."""
    size = np.abs(quantity)
    tier = _PACK_DISCOUNTS[(size >= 24).view(np.int8) + (size >= 100).view(np.int8)]
    price = base_price * np.where(kind == GUEST, _GUEST_MARKUP, tier)
    others = np.flatnonzero(non_product >= 0)
    if others.size:
        codes = non_product[others]
        median = np.array([p[2] for p in _NON_PRODUCTS])[codes]
        sd = np.array([p[3] for p in _NON_PRODUCTS])[codes]
        price[others] = median * np.exp(sd * rng.standard_normal(others.size))
    price = np.round(price, 2)
    if others.size:  # PADS-like prices below a penny survive the rounding
        price[others] = np.where(np.abs(median) < 0.01, median, price[others])
    stray = (kind == REGISTERED) & (rng.random(kind.size) < _ZERO_PRICE_SHARE)
    zero = (kind == ADJUSTMENT) | stray
    price[zero] = 0.0
    return price


def _descriptions_of_lines(rng: np.random.Generator, kind: np.ndarray, item: np.ndarray, n_products: int) -> np.ndarray:
    """The item's own description; adjustments get a note or none (-1 stands for null)."""
    description = item.astype(np.int32)
    adjustments = np.flatnonzero(kind == ADJUSTMENT)
    first_note = n_products + len(_NON_PRODUCTS)
    notes = first_note + rng.integers(0, len(_ADJUSTMENT_NOTES), adjustments.size)
    null = rng.random(adjustments.size) < _ADJUSTMENT_NULL_DESCRIPTION
    description[adjustments] = np.where(null, -1, notes)
    return description


_QTY_ALIAS = _alias_table(_QTY_WEIGHTS)


_RETURN_QTY_ALIAS = _alias_table(_RETURN_QTY_WEIGHTS)
