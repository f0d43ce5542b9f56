"""The Insiders job in pandas + scikit-learn: the single-machine reference of the benchmarks.

The same job as ``insiders_spark`` on the same parquet, written the way a pandas user would: the
needed columns read at once with pyarrow, everything vectorised, nothing chunked.

* Cleaning: the study's rules from ``conf/base.toml`` (read through the package's config loader, so
  the values are the job's), in the job's order, every line ending with a reason. Strings are read
  as dictionaries (the files are dictionary-encoded), so trimming and timestamp parsing run once
  per distinct value and the lines become pandas categoricals.
* Features: one row per registered customer or guest invoice; guest invoices numbered from 19000
  in order of (first timestamp among valid lines, invoice number), where a valid line parsed and
  may still fail the study's rules, exactly as ``insiders_spark.features``. Customers with returns only are
  left out.
* Segmentation: scikit-learn's ``DecisionTreeRegressor`` on ``log1p(gross_revenue)`` (depth 4,
  every leaf at least ``ceil(0.01 * customers)``), the same root-to-leaf path encoding, KMeans
  (scikit-learn's, k = 9, as many starts as the job's solver) on the distinct leaf points weighted
  by their customers, the silhouette with squared Euclidean distance on a bounded sample of
  customers, profiles ranked by mean revenue.

MLlib's tree bins every feature into at most ``maxBins = 64`` candidate thresholds (approximate
quantiles); scikit-learn tries every midpoint. The features are identical, but the tree, and so the
leaves and clusters, can differ slightly between the two.

Usage: ``python benchmarks/reference_pandas.py --input DIR --output DIR [--metrics FILE]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from insiders_spark.core.config import Config, load_config

# reasons, in the order the job checks them (insiders_spark.core.names.RULE_ORDER; the tests compare)
PARSE_REASONS = (
    "malformed_line",
    "repeated_header",
    "missing_invoice",
    "missing_product",
    "unparsable_timestamp",
    "non_numeric_quantity",
    "non_numeric_price",
    "non_numeric_amount",
    "invalid_customer_id",
    "amount_out_of_range",
)
MAX_LINE_QUANTITY, MAX_LINE_AMOUNT = 1e9, 1e10  # insiders_spark.cleaning.rules' (the tests compare)
MAX_CUSTOMER_ID = 2.0**53  # ids are whole numbers below it (insiders_spark.cleaning.parsing's)
AFTER_AS_OF = "after_as_of"
DATASET = "online_retail"  # the study's rules, as the job detects them from the UCI header
STUDY_RULE_REASONS = ("price_below_minimum", "non_product_code", "excluded_country", "excluded_customer")
RULE_ORDER = PARSE_REASONS + (AFTER_AS_OF,) + STUDY_RULE_REASONS
KEPT = 0  # reason code of a kept line; reason i + 1 is RULE_ORDER[i]
VALID_CODES = np.array([KEPT] + [RULE_ORDER.index(r) + 1 for r in STUDY_RULE_REASONS], dtype=np.int8)
QUARANTINE_CODES = np.array([i + 1 for i, r in enumerate(RULE_ORDER) if r != AFTER_AS_OF], dtype=np.int8)

RAW_USED = ("InvoiceNo", "StockCode", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country")
STRING_COLUMNS = ("InvoiceNo", "StockCode", "InvoiceDate", "Country")
DEFAULT_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"  # the job's "yyyy-MM-dd HH:mm:ss"
# KMeans: the job's starts (insiders_spark.model.clustering.N_INIT, not imported: it would load pyspark
# into this engine); iterations and tolerance as the job's MLlib solver had them
KMEANS_STARTS, KMEANS_MAX_ITER, KMEANS_TOL = 200, 100, 1e-6
SILHOUETTE_SAMPLE = 5_000  # customers in the silhouette's sample (time and memory are quadratic in it)

FEATURE_COLUMNS = (
    "gross_revenue",
    "recency_days",
    "qty_invoices",
    "qty_items",
    "qty_products",
    "frequency",
    "qty_returns",
    "avg_ticket",
)
MODEL_INPUT_COLUMNS = tuple(c for c in FEATURE_COLUMNS if c != "gross_revenue")
FEATURES_OUTPUT = ("customer_id", "is_guest", *FEATURE_COLUMNS, "first_purchase_date", "last_purchase_date")


class Stages:
    """Wall-clock seconds of each stage, in order."""

    def __init__(self) -> None:
        self.durations: dict[str, float] = {}
        self._started = time.perf_counter()

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.durations[name] = round(now - self._started, 3)
        print(f"stage {name}: {self.durations[name]:.2f} s", file=sys.stderr, flush=True)
        self._started = now


# --- read ------------------------------------------------------------------------------------


def _numeric_ids(ids: tuple[str, ...]) -> list[int]:
    """The configured customer ids (text, as the log writes them) that are whole numbers."""
    return [int(float(text)) for text in ids if text.replace(".", "", 1).isdigit() and float(text).is_integer()]


def input_files(path: str | os.PathLike[str]) -> list[str]:
    """A parquet file, or a folder's parquet files (recursively, hidden and ``_`` files skipped)."""
    root = Path(path)
    if root.is_file():
        return [str(root)]
    files = sorted(
        str(p)
        for p in root.rglob("*.parquet")
        if not any(part.startswith(("_", ".")) for part in p.relative_to(root).parts)
    )
    if not files:
        raise FileNotFoundError(f"no parquet files under {root}")
    return files


def read_raw(files: list[str]) -> pa.Table:
    """The columns the job uses, strings as dictionaries."""
    return pq.read_table(files, columns=list(RAW_USED), read_dictionary=list(STRING_COLUMNS))


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """Row codes (-1 for null) into one dictionary shared by every chunk."""
    column = column.unify_dictionaries()
    if column.num_chunks == 0:
        return np.empty(0, dtype=np.int32), pa.array([], pa.string())
    dictionary = column.chunk(0).dictionary
    codes = np.concatenate(
        [pc.fill_null(chunk.indices, -1).to_numpy(zero_copy_only=False) for chunk in column.chunks]
    ).astype(np.int32)
    return codes, dictionary


def _categorical(codes: np.ndarray, values: pa.Array) -> pd.Categorical:
    """Codes into ``values`` (which may repeat or hold nulls) as a Categorical of distinct values."""
    value_codes, distinct = pd.factorize(values.to_pandas(), use_na_sentinel=True)
    remap = np.append(value_codes, -1).astype(np.int32)  # code -1 (a null row) -> -1
    return pd.Categorical.from_codes(remap[codes], categories=distinct)


def _trimmed(values: pa.Array, *, blank_is_null: bool) -> pa.Array:
    """Spark's ``trim`` (spaces only); ``blank_to_null`` turns '' into null as well."""
    trimmed = pc.utf8_trim(values.cast(pa.string()), characters=" ")
    return pc.if_else(pc.equal(trimmed, ""), None, trimmed) if blank_is_null else trimmed


def _numbers(column: pa.ChunkedArray, dtype) -> tuple[np.ndarray, np.ndarray]:
    """(values with nulls filled by 0, is-null mask)."""
    missing = column.is_null().to_numpy(zero_copy_only=False)
    values = pc.fill_null(column.cast(dtype), 0).to_numpy(zero_copy_only=False)
    return values, missing


def to_lines(raw: pa.Table, *, timestamp_format: str) -> pd.DataFrame:
    """Typed lines: trimmed strings as categoricals, parsed timestamps, numbers and null masks."""
    invoice_codes, invoice_values = _codes(raw.column("InvoiceNo"))
    stock_codes, stock_values = _codes(raw.column("StockCode"))
    date_codes, date_values = _codes(raw.column("InvoiceDate"))
    country_codes, country_values = _codes(raw.column("Country"))
    parsed = pc.strptime(
        _trimmed(date_values, blank_is_null=True), format=timestamp_format, unit="s", error_is_null=True
    )
    per_value = np.append(parsed.to_numpy(zero_copy_only=False).astype("datetime64[s]"), np.datetime64("NaT"))
    quantity, quantity_missing = _numbers(raw.column("Quantity"), pa.int64())
    price = raw.column("UnitPrice").cast(pa.float64()).to_numpy()
    price_missing = raw.column("UnitPrice").is_null().to_numpy(zero_copy_only=False)
    customer = raw.column("CustomerID").cast(pa.float64()).to_numpy()  # null -> NaN, so the mask:
    customer_missing = raw.column("CustomerID").is_null().to_numpy(zero_copy_only=False)
    return pd.DataFrame(
        {
            "invoice_no": _categorical(invoice_codes, _trimmed(invoice_values, blank_is_null=True)),
            "stock_code": _categorical(stock_codes, _trimmed(stock_values, blank_is_null=True)),
            "quantity": quantity,
            "quantity_missing": quantity_missing,
            "invoice_ts": per_value[date_codes],
            "unit_price": price,
            "price_missing": price_missing,
            "customer_raw": customer,
            "customer_missing": customer_missing,
            "country": _categorical(country_codes, _trimmed(country_values, blank_is_null=False)),
        }
    )


# --- clean -----------------------------------------------------------------------------------


def with_reasons(lines: pd.DataFrame, config: Config, *, as_of: dt.date | None) -> pd.DataFrame:
    """Add ``customer_id`` (Int64) and ``reason`` (0 kept, else 1 + its index in RULE_ORDER)."""
    rules = config.cleaning
    raw_customer = lines["customer_raw"]
    # NaN, the infinities and numbers from 2^53 on are not ids (insiders_spark.cleaning.parsing.to_customer_id)
    is_id = (raw_customer > 0) & (raw_customer < MAX_CUSTOMER_ID) & (raw_customer == np.floor(raw_customer))
    customer_id = pd.arrays.IntegerArray(np.where(is_id, raw_customer, 0).astype(np.int64), ~is_id.to_numpy())
    quantity_size = np.abs(lines["quantity"].to_numpy(dtype=np.float64))
    price_size = np.abs(lines["unit_price"].to_numpy(dtype=np.float64))
    after = (
        lines["invoice_ts"] >= pd.Timestamp(as_of + dt.timedelta(days=1))
        if as_of
        else pd.Series(False, index=lines.index)
    )
    checks = {
        "malformed_line": pd.Series(False, index=lines.index),  # parquet has no broken CSV lines
        "repeated_header": pd.Series(False, index=lines.index),  # nor a header line (its numbers are typed)
        "missing_invoice": lines["invoice_no"].isna(),
        "missing_product": lines["stock_code"].isna(),
        "unparsable_timestamp": lines["invoice_ts"].isna(),
        "non_numeric_quantity": lines["quantity_missing"],
        "non_numeric_price": lines["price_missing"] | ~np.isfinite(lines["unit_price"]),  # null, NaN, ±inf
        "non_numeric_amount": pd.Series(False, index=lines.index),  # the study's log has no line amount
        "invalid_customer_id": ~lines["customer_missing"] & ~is_id,  # a stored NaN is not a guest
        "amount_out_of_range": pd.Series(
            (quantity_size > MAX_LINE_QUANTITY)
            | (price_size > MAX_LINE_AMOUNT)
            | (quantity_size * price_size > MAX_LINE_AMOUNT),
            index=lines.index,
        ),
        AFTER_AS_OF: after,
        "price_below_minimum": lines["unit_price"] < rules.min_unit_price,
        "non_product_code": lines["stock_code"].isin(rules.non_product_codes),
        "excluded_country": lines["country"].isin(rules.excluded_countries),
        "excluded_customer": pd.Series(customer_id, index=lines.index)
        .isin(_numeric_ids(rules.excluded_customers))
        .fillna(False),
    }
    conditions = [checks[name].to_numpy(dtype=bool) for name in RULE_ORDER]
    reason = np.select(conditions, [np.int8(i + 1) for i in range(len(RULE_ORDER))], default=np.int8(KEPT))
    return lines.assign(customer_id=customer_id, reason=reason.astype(np.int8)).drop(
        columns=["customer_raw", "customer_missing", "quantity_missing", "price_missing"]
    )


def reason_counts(reason: np.ndarray) -> dict[str, int]:
    counts = np.bincount(reason, minlength=len(RULE_ORDER) + 1)
    return {
        "kept": int(counts[KEPT]),
        **{name: int(counts[i + 1]) for i, name in enumerate(RULE_ORDER) if counts[i + 1]},
    }


# --- aggregate -------------------------------------------------------------------------------


def to_activity(valid: pd.DataFrame, by: str) -> pd.DataFrame:
    """One row per value of ``by``, with every feature's raw ingredients (over valid lines)."""
    kept = valid["reason"].to_numpy() == KEPT
    quantity = valid["quantity"].to_numpy()
    purchase = kept & (quantity >= 0)
    returned = kept & (quantity < 0)
    day = valid["invoice_ts"].dt.floor("D")
    revenue = quantity * valid["unit_price"].to_numpy()
    frame = pd.DataFrame(
        {
            "key": valid[by],
            "invoice_ts": valid["invoice_ts"],
            "kept": kept,
            "kept_day": day.where(kept),
            "revenue": np.where(purchase, revenue, np.nan),
            "items": np.where(purchase, quantity, 0),
            "purchases": purchase,
            "purchase_day": day.where(purchase),
            "returned": np.where(returned, -quantity, 0),
        }
    )
    activity = frame.groupby("key", observed=True, sort=False).agg(
        first_seen_ts=("invoice_ts", "min"),
        kept_lines=("kept", "sum"),
        last_kept_date=("kept_day", "max"),
        gross_revenue=("revenue", "sum"),
        purchase_lines=("purchases", "sum"),
        qty_items=("items", "sum"),
        first_purchase_date=("purchase_day", "min"),
        last_purchase_date=("purchase_day", "max"),
        qty_returns=("returned", "sum"),
        avg_ticket=("revenue", "mean"),
    )
    bought = pd.DataFrame({"key": valid[by], "invoice_no": valid["invoice_no"], "stock_code": valid["stock_code"]})[
        purchase
    ]
    distinct = bought.groupby("key", observed=True, sort=False).agg(
        qty_invoices=("invoice_no", "nunique"), qty_products=("stock_code", "nunique")
    )
    activity = activity.join(distinct, how="left")
    activity.loc[activity["purchase_lines"] == 0, "gross_revenue"] = np.nan  # Spark: sum of no rows is null
    return activity.rename_axis(by).reset_index()


def to_customers(lines: pd.DataFrame, *, guest_start: int) -> pd.DataFrame:
    """Registered customers and numbered guest invoices, each with its activity."""
    valid = lines[np.isin(lines["reason"].to_numpy(), VALID_CODES)]
    is_guest = valid["customer_id"].isna().to_numpy()
    registered = to_activity(valid[~is_guest], "customer_id").assign(is_guest=False)
    guests = to_activity(valid[is_guest], "invoice_no")
    guests["invoice_no"] = guests["invoice_no"].astype(str)
    guests = guests.sort_values(["first_seen_ts", "invoice_no"], kind="stable").reset_index(drop=True)
    guests = guests.assign(customer_id=guest_start + np.arange(len(guests), dtype=np.int64), is_guest=True)
    customers = pd.concat([registered, guests.drop(columns=["invoice_no"])], ignore_index=True)
    customers["customer_id"] = customers["customer_id"].astype(np.int64)
    return customers


def to_features(customers: pd.DataFrame, *, as_of: dt.date) -> pd.DataFrame:
    """Customers with a kept purchase, with the study's features as of ``as_of``."""
    with_purchase = customers[(customers["kept_lines"] > 0) & (customers["purchase_lines"] > 0)]
    first = with_purchase["first_purchase_date"]
    last = with_purchase["last_purchase_date"]
    span = (last - first).dt.days + 1
    features = pd.DataFrame(
        {
            "customer_id": with_purchase["customer_id"].astype(np.int64),
            "is_guest": with_purchase["is_guest"].astype(bool),
            "gross_revenue": with_purchase["gross_revenue"].astype(np.float64),
            "recency_days": (pd.Timestamp(as_of) - last).dt.days.astype(np.int32),
            "qty_invoices": with_purchase["qty_invoices"].astype(np.int64),
            "qty_items": with_purchase["qty_items"].astype(np.int64),
            "qty_products": with_purchase["qty_products"].astype(np.int64),
            "frequency": with_purchase["qty_invoices"] / span,
            "qty_returns": with_purchase["qty_returns"].astype(np.int64),
            "avg_ticket": with_purchase["avg_ticket"].astype(np.float64),
            "first_purchase_date": first.dt.date,
            "last_purchase_date": last.dt.date,
        }
    )
    return features.reset_index(drop=True)


def compute_features(
    path: str | os.PathLike[str],
    config: Config,
    *,
    as_of: dt.date | None = None,
    timestamp_format: str = DEFAULT_TIMESTAMP_FORMAT,
    stages: Stages | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Read, clean and aggregate: the features table and a summary (counts, as-of date)."""
    stages = stages or Stages()
    raw = read_raw(input_files(path))
    stages.done("read")
    lines = with_reasons(to_lines(raw, timestamp_format=timestamp_format), config, as_of=as_of)
    del raw
    stages.done("clean")
    customers = to_customers(lines, guest_start=config.cleaning.guest_customer_id_start)
    active = customers[customers["kept_lines"] > 0]
    if active["customer_id"].nunique() != len(active):
        raise ValueError("guest numbers collide with registered customer ids")
    as_of = as_of or active["last_kept_date"].max().date()
    features = to_features(customers, as_of=as_of)
    stages.done("aggregate")
    summary = {
        "rows": {"input": len(lines), **reason_counts(lines["reason"].to_numpy())},
        "customers": {
            "with_kept_lines": len(active),
            "segmented": len(features),
            "returns_only": int((active["purchase_lines"] == 0).sum()),
            "guests": int(active["is_guest"].sum()),
        },
        "as_of": as_of.isoformat(),
        "reasons": lines["reason"].to_numpy(),
    }
    return features, summary


# --- segment ---------------------------------------------------------------------------------


def leaf_paths(tree) -> tuple[dict[int, int], np.ndarray]:
    """sklearn node id -> leaf index (preorder), and each leaf's root-to-leaf path vector.

    As ``insiders_spark.model.embedding``: one dimension per internal node in preorder, +1 where the path
    goes right (feature above the threshold), -1 where it goes left, 0 off the path.
    """
    left, right = tree.tree_.children_left, tree.tree_.children_right
    internal: list[int] = []
    leaves: list[tuple[int, dict[int, float]]] = []

    def walk(node: int, path: dict[int, float]) -> None:
        if left[node] == -1:
            leaves.append((node, path))
            return
        internal.append(node)
        walk(left[node], {**path, node: -1.0})
        walk(right[node], {**path, node: 1.0})

    walk(0, {})
    dimension = {node: i for i, node in enumerate(internal)}
    vectors = np.zeros((len(leaves), len(internal)))
    for leaf_index, (_, path) in enumerate(leaves):
        for node, sign in path.items():
            vectors[leaf_index, dimension[node]] = sign
    return {node: i for i, (node, _) in enumerate(leaves)}, vectors


def segment(
    features: pd.DataFrame, config: Config, *, seed: int, stages: Stages
) -> tuple[pd.DataFrame, list[dict], dict]:
    """Tree, leaf-path embedding, KMeans on the weighted leaf points, profiles; and the silhouette."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    from sklearn.tree import DecisionTreeRegressor

    n = len(features)
    tree = DecisionTreeRegressor(
        max_depth=config.embedding.max_depth,
        min_samples_leaf=max(1, math.ceil(config.embedding.min_leaf_share * n)),
        min_impurity_decrease=config.embedding.min_info_gain,
        random_state=seed,
    ).fit(features[list(MODEL_INPUT_COLUMNS)].to_numpy(dtype=np.float64), np.log1p(features["gross_revenue"]))
    leaf_of_node, vectors = leaf_paths(tree)
    leaf = pd.Series(tree.apply(features[list(MODEL_INPUT_COLUMNS)].to_numpy(dtype=np.float64))).map(leaf_of_node)
    stages.done("tree")

    occupied = leaf.value_counts().sort_index()
    k = config.clustering.k
    kmeans = KMeans(n_clusters=k, n_init=KMEANS_STARTS, max_iter=KMEANS_MAX_ITER, tol=KMEANS_TOL, random_state=seed)
    kmeans.fit(vectors[occupied.index.to_numpy()], sample_weight=occupied.to_numpy(dtype=np.float64))
    distances = ((vectors[:, None, :] - kmeans.cluster_centers_[None, :, :]) ** 2).sum(axis=2)
    leaf_cluster = distances.argmin(axis=1)
    kmeans_cluster = leaf_cluster[leaf.to_numpy()]
    segmented = features.assign(leaf=leaf.to_numpy().astype(np.int32), kmeans_cluster=kmeans_cluster)
    profiles = build_profiles(segmented, insiders_name=config.segments.insiders_name)
    by_kmeans = {p["kmeans_cluster"]: p for p in profiles}
    segmented["cluster"] = segmented["kmeans_cluster"].map(lambda c: by_kmeans[c]["cluster"]).astype(np.int32)
    segmented["segment"] = segmented["kmeans_cluster"].map(lambda c: by_kmeans[c]["segment"])
    segmented["is_insider"] = segmented["cluster"] == 1
    stages.done("kmeans")

    sample = min(n, SILHOUETTE_SAMPLE)
    score = (
        silhouette_score(
            vectors[leaf.to_numpy()], kmeans_cluster, metric="sqeuclidean", sample_size=sample, random_state=seed
        )
        if len(set(kmeans_cluster)) > 1
        else 0.0
    )
    stages.done("silhouette")
    described = {
        "tree": {
            "depth": int(tree.get_depth()),
            "leaves": int(tree.get_n_leaves()),
            "dimensions": vectors.shape[1],
            "min_samples_leaf": tree.min_samples_leaf,
        },
        "kmeans": {"k": k, "cost": float(kmeans.inertia_), "points": len(occupied)},
        "silhouette": round(float(score), 4),
        "silhouette_sample": sample,
    }
    return segmented.drop(columns=["kmeans_cluster"]), profiles, described


def segment_name(profile: dict, population: dict) -> str:
    """The naming rule of ``insiders_spark.model.profiles`` (value and recency against the population)."""
    valuable = profile["gross_revenue_mean"] >= population["gross_revenue_mean"]
    recency, typical = profile["recency_days_mean"], population["recency_days_mean"]
    if valuable:
        return "Loyal" if recency <= typical else "At risk"
    if recency <= typical:
        return "Promising" if profile["qty_invoices_mean"] >= 2 else "New"
    return "Hibernating" if recency <= 2 * typical else "Lost"


def build_profiles(segmented: pd.DataFrame, *, insiders_name: str) -> list[dict]:
    grouped = segmented.groupby("kmeans_cluster")
    table = grouped[list(FEATURE_COLUMNS)].mean().add_suffix("_mean")
    table["customers"] = grouped.size()
    table["revenue_total"] = grouped["gross_revenue"].sum()
    table = table.reset_index().sort_values(["gross_revenue_mean", "kmeans_cluster"], ascending=[False, True])
    customers, revenue = table["customers"].sum(), table["revenue_total"].sum()
    population = {
        name: float((table[name] * table["customers"]).sum() / customers)
        for name in ("gross_revenue_mean", "recency_days_mean")
    }
    seen: Counter[str] = Counter()
    profiles = []
    for rank, row in enumerate(table.to_dict("records"), start=1):
        base = insiders_name if rank == 1 else segment_name(row, population)
        seen[base] += 1
        profiles.append(
            {
                "cluster": rank,
                "segment": base if seen[base] == 1 else f"{base} ({seen[base]})",
                "is_insider": rank == 1,
                "customers": int(row["customers"]),
                "customer_share": row["customers"] / customers,
                "revenue_total": float(row["revenue_total"]),
                "revenue_share": float(row["revenue_total"]) / revenue if revenue else 0.0,
                **{f"{name}_mean": float(row[f"{name}_mean"]) for name in FEATURE_COLUMNS},
                "kmeans_cluster": int(row["kmeans_cluster"]),
            }
        )
    return profiles


# --- write -----------------------------------------------------------------------------------


def write_quarantine(files: list[str], reasons: np.ndarray, target: Path) -> int:
    """The set-aside lines, file by file: raw fields as text and the reason (a second read)."""
    names = np.array([None, *RULE_ORDER], dtype=object)
    quarantined = np.isin(reasons, QUARANTINE_CODES)
    writer, offset, written = None, 0, 0
    try:
        for file in files:
            table = pq.read_table(file)
            mask = quarantined[offset : offset + table.num_rows]
            rows = table.filter(pa.array(mask))
            codes = reasons[offset : offset + table.num_rows][mask]
            offset += table.num_rows
            if rows.num_rows == 0:
                continue
            out = (
                pa.table({name: rows.column(name).cast(pa.string()) for name in rows.column_names})
                .append_column("source_file", pa.array([file] * rows.num_rows, pa.string()))
                .append_column("reason", pa.array(names[codes], pa.string()))
            )
            writer = writer or pq.ParquetWriter(target, out.schema)
            writer.write_table(out)
            written += rows.num_rows
    finally:
        if writer:
            writer.close()
    return written


def run(
    input_path: str,
    output: str,
    config: Config,
    *,
    as_of: dt.date | None = None,
    timestamp_format: str = DEFAULT_TIMESTAMP_FORMAT,
) -> dict:
    started = time.perf_counter()
    stages = Stages()
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    files = input_files(input_path)
    features, summary = compute_features(
        input_path, config, as_of=as_of, timestamp_format=timestamp_format, stages=stages
    )
    reasons = summary.pop("reasons")
    segmented, profiles, described = segment(features, config, seed=config.job.seed, stages=stages)
    segmented.to_parquet(out / "segments.parquet", index=False)
    pd.DataFrame(profiles).to_parquet(out / "profiles.parquet", index=False)
    stages.done("write")
    quarantined = write_quarantine(files, reasons, out / "quarantine.parquet")
    stages.done("quarantine")
    metrics = {
        "engine": "pandas",
        **summary,
        "quarantined": quarantined,
        "features": {"gross_revenue_total": round(float(features["gross_revenue"].sum()), 2)},
        **described,
        "insiders": {k: profiles[0][k] for k in ("segment", "customers", "customer_share", "revenue_share")},
        "durations_s": stages.durations,
        "read_aggregate_s": round(sum(stages.durations[s] for s in ("read", "clean", "aggregate")), 3),
        "total_s": round(time.perf_counter() - started, 3),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str) + "\n")
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The Insiders job in pandas + scikit-learn.")
    parser.add_argument("--input", required=True, help="parquet file or folder of the raw log")
    parser.add_argument("--output", required=True, help="folder for segments, profiles, quarantine, metrics")
    parser.add_argument("--as-of", type=dt.date.fromisoformat, help="default: the last kept invoice date")
    parser.add_argument("--timestamp-format", default=DEFAULT_TIMESTAMP_FORMAT, help="strptime pattern")
    args = parser.parse_args(argv)
    config = load_config(env="base", dataset=DATASET)
    metrics = run(args.input, args.output, config, as_of=args.as_of, timestamp_format=args.timestamp_format)
    print(json.dumps({k: metrics[k] for k in ("durations_s", "total_s", "customers", "silhouette")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
