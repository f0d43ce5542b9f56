"""Per-customer features: one aggregation over the classified lines, and the customer table."""

from insiders_spark.features.customers import (
    CustomerSummary,
    summarise_customers,
    to_customer_activity,
    to_customer_features,
    with_guest_customer_ids,
)
from insiders_spark.features.table import CustomerTable, prepare_customers

__all__ = [
    "CustomerSummary",
    "CustomerTable",
    "prepare_customers",
    "summarise_customers",
    "to_customer_activity",
    "to_customer_features",
    "with_guest_customer_ids",
]
