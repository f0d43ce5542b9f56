"""What a synthetic log is made of: its size, seed, dates and the shares of its kinds of lines."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from insiders_spark.storage.synthetic.tables import (
    _GUEST_RETURN_SHARE,
    LINES_PER_CUSTOMER,
    MAX_INVOICE_LINES,
    MAX_PRODUCTS,
    MIN_CUSTOMERS,
)

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class SyntheticLogSpec:
    """What to generate. Every field has a default calibrated on the real log.

    ``customers`` is the size of the registered population; by default ``lines // 75`` (linear:
    a bigger log is a bigger store). About 60% of the population shows up in the log (the rest
    are rare buyers or have short active windows), i.e. one customer per ~125 lines, like the
    real log. Ids start at 12346 and are contiguous-ish (a gap every ~3 ids, fewer gaps when
    needed to stay below 19000, where the job starts numbering guests). Customers beyond the
    6,654 that fit below 19000 get ids from 100,000,000 up, clear of any guest number.
    """

    lines: int = 300_000
    seed: int = 42
    customers: int | None = None
    start: dt.date = dt.date(2010, 12, 1)
    days: int = 374
    products: int = 4_000
    guest_line_share: float = 0.25  # lines without CustomerID (adjustments and guest returns too)
    return_line_share: float = 0.05  # lines on "C" invoices (the real log has 1.7%)
    adjustment_line_share: float = 0.0045  # one-line guest stock adjustments at price 0.0
    mean_invoice_lines: float = 21.5  # mean lines on a registered purchase invoice
    preferred_share: float = 0.8  # registered purchase lines drawn from the customer's subset
    odd_country_share: float = 0.001  # invoices filed under "Unspecified"/"European Community"

    def __post_init__(self) -> None:
        if isinstance(self.start, dt.datetime):  # a datetime is a date too: keep the day only
            object.__setattr__(self, "start", self.start.date())
        if self.lines < 1 or self.seed < 0 or self.days < 1 or self.products < 1:
            raise ValueError("lines, days and products must be positive and seed non-negative")
        if self.customers is not None and self.customers < 1:
            raise ValueError("customers must be positive")
        if self.products > MAX_PRODUCTS:
            raise ValueError(f"at most {MAX_PRODUCTS} products")
        if not 1.0 <= self.mean_invoice_lines <= MAX_INVOICE_LINES / 4:
            raise ValueError("mean_invoice_lines out of range")
        shares = (
            self.guest_line_share,
            self.return_line_share,
            self.adjustment_line_share,
            self.preferred_share,
            self.odd_country_share,
        )
        if not all(0.0 <= s <= 1.0 for s in shares) or min(_kind_line_shares(self)) < 0.0:
            raise ValueError("shares must be in [0, 1] and leave room for registered purchases")

    @property
    def n_customers(self) -> int:
        """The size of the registered population."""
        if self.customers is not None:
            return self.customers
        return max(MIN_CUSTOMERS, self.lines // LINES_PER_CUSTOMER)


def _kind_line_shares(spec: SyntheticLogSpec) -> tuple[float, float, float, float]:
    guest_returns = _GUEST_RETURN_SHARE * spec.return_line_share
    guest = spec.guest_line_share - spec.adjustment_line_share - guest_returns
    registered = 1.0 - spec.guest_line_share - spec.return_line_share + guest_returns
    return registered, guest, spec.return_line_share, spec.adjustment_line_share
