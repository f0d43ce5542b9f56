"""insiders_spark: find a store's most valuable customers (the Insiders) from raw transaction logs."""

__version__ = "0.1.0"
