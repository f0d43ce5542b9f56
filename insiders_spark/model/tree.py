"""A fitted MLlib decision tree as plain Python data: nodes, splits, paths and leaf indices.

MLlib numbers the leaves it reports through ``leafCol`` in preorder (left subtree first); both
readers below number them the same way, so a leaf index from ``transform`` finds its node here.
The tree is bounded by ``maxDepth`` (at most 2^(depth+1) - 1 nodes), so holding it on the driver
is safe. Both readers use public APIs only, which Spark Connect serves too:

* :func:`read_tree` parses the model's ``toDebugString``: the structure, each split's feature and
  threshold, each leaf's prediction. Java prints a double with the digits that tell it from every
  other double, so ``float`` reads back the very threshold the tree compares with. The text has
  no values for internal nodes.
* :func:`read_saved_tree` reads the node table of a *saved* model (MLlib's ``data/`` parquet):
  everything above plus each node's prediction, impurity, count and gain. Saabas' contributions
  (``explain``) need the internal nodes' predictions, so the model a run explains is read back
  from where it was saved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from pyspark.sql import SparkSession


@dataclass(frozen=True)
class TreeNode:
    node_id: int  # preorder position among all nodes
    depth: int
    prediction: float | None  # internal nodes: None when read from toDebugString
    impurity: float | None = None  # these three: only from a saved model (read_saved_tree)
    count: float | None = None  # training instances that reached the node
    feature: int | None = None  # internal nodes: go left when features[feature] <= threshold
    threshold: float | None = None
    gain: float | None = None  # impurity decrease of the split, per instance
    left: int | None = None
    right: int | None = None
    leaf_index: int | None = None  # leaves: MLlib's leaf index

    @property
    def is_leaf(self) -> bool:
        return self.leaf_index is not None


@dataclass(frozen=True)
class Step:
    """One decision on the way from the root to a leaf."""

    node_id: int
    feature: int
    threshold: float
    went_right: bool  # True: features[feature] > threshold


@dataclass(frozen=True)
class Tree:
    nodes: tuple[TreeNode, ...]

    @property
    def internal_nodes(self) -> tuple[TreeNode, ...]:
        return tuple(n for n in self.nodes if not n.is_leaf)

    @property
    def leaves(self) -> tuple[TreeNode, ...]:
        return tuple(sorted((n for n in self.nodes if n.is_leaf), key=lambda n: n.leaf_index))

    @property
    def depth(self) -> int:
        return max(n.depth for n in self.nodes)

    @property
    def has_node_values(self) -> bool:
        """Every node's prediction is known (a tree read from a saved model)."""
        return all(n.prediction is not None for n in self.nodes)

    def structure(self) -> tuple[tuple, ...]:
        """What both readers give: each node's place, split and leaf index, and the leaves' values."""
        return tuple(
            (n.node_id, n.depth, n.feature, n.threshold, n.left, n.right, n.leaf_index)
            + ((n.prediction,) if n.is_leaf else ())
            for n in self.nodes
        )

    def paths(self) -> dict[int, tuple[Step, ...]]:
        """Leaf index -> the decisions from the root to that leaf."""
        by_id = {n.node_id: n for n in self.nodes}
        result: dict[int, tuple[Step, ...]] = {}

        def walk(node: TreeNode, steps: tuple[Step, ...]) -> None:
            if node.is_leaf:
                result[node.leaf_index] = steps
                return
            assert node.left is not None and node.right is not None
            walk(by_id[node.left], steps + (Step(node.node_id, node.feature, node.threshold, False),))
            walk(by_id[node.right], steps + (Step(node.node_id, node.feature, node.threshold, True),))

        walk(self.nodes[0], ())
        return result


_SPLIT = re.compile(r"If \(feature (\d+) <= (\S+)\)")
_OTHER_SIDE = re.compile(r"Else \(feature (\d+) > (\S+)\)")
_LEAF = re.compile(r"Predict: (\S+)")


def parse_debug_string(text: str) -> Tree:
    """The tree that ``DecisionTreeRegressionModel.toDebugString`` prints (continuous splits only)."""
    lines = [line.strip() for line in text.strip().splitlines()[1:]]  # the first line names the model
    nodes: list[TreeNode | None] = []
    position = 0
    leaves = 0

    def take(pattern: re.Pattern[str]) -> re.Match[str] | None:
        nonlocal position
        match = pattern.fullmatch(lines[position]) if position < len(lines) else None
        if match is not None:
            position += 1
        return match

    def visit(depth: int) -> int:
        nonlocal leaves
        node_id = len(nodes)
        nodes.append(None)  # reserve the preorder slot
        if (leaf := take(_LEAF)) is not None:
            nodes[node_id] = TreeNode(node_id=node_id, depth=depth, prediction=float(leaf[1]), leaf_index=leaves)
            leaves += 1
            return node_id
        split = take(_SPLIT)
        if split is None:
            found = lines[position] if position < len(lines) else "the end of the text"
            raise ValueError(f"not a regression tree with continuous splits: {found!r} after {position} lines")
        left = visit(depth + 1)
        other = take(_OTHER_SIDE)
        if other is None or other.groups() != split.groups():
            raise ValueError(f"the split {split[0]!r} has no matching Else line")
        right = visit(depth + 1)
        nodes[node_id] = TreeNode(
            node_id=node_id,
            depth=depth,
            prediction=None,
            feature=int(split[1]),
            threshold=float(split[2]),
            left=left,
            right=right,
        )
        return node_id

    visit(0)
    if position != len(lines):
        raise ValueError(f"unexpected text after the tree: {lines[position]!r}")
    return Tree(nodes=tuple(nodes))  # type: ignore[arg-type]


def read_tree(tree_model: Any) -> Tree:
    """The structure and leaf values of a fitted ``DecisionTreeRegressionModel``."""
    return parse_debug_string(tree_model.toDebugString)


NODE_DATA = "data"  # where MLlib writes a saved tree's nodes, inside the model's folder


NODE_COLUMNS = (
    "id",
    "prediction",
    "impurity",
    "impurityStats",
    "gain",
    "leftChild",
    "rightChild",
    "split.featureIndex",
    "split.leftCategoriesOrThreshold",
    "split.numCategories",
)


def read_saved_tree(spark: SparkSession, path: str) -> Tree:
    """Every node of the ``DecisionTreeRegressionModel`` saved at ``path``, values included.

    MLlib writes one row per node (``id`` in preorder, children by id, the split, the impurity
    statistics: count, sum, sum of squares for the variance); this walks them from the root.
    """
    rows = spark.read.parquet(f"{path.rstrip('/')}/{NODE_DATA}").select(*NODE_COLUMNS).collect()
    return _walk_saved_nodes({row["id"]: row for row in rows}, path)


def read_saved_forest(spark: SparkSession, path: str) -> tuple[Tree, ...]:
    """Every tree of the ``RandomForestRegressionModel`` saved at ``path``, in order, values
    included (each node's count is the Poisson-weighted rows of its tree's resample)."""
    frame = spark.read.parquet(f"{path.rstrip('/')}/{NODE_DATA}")
    columns = [f"nodeData.{name}" for name in NODE_COLUMNS]
    by_tree: dict[int, dict[int, Any]] = {}
    for row in frame.select("treeID", *columns).collect():
        by_tree.setdefault(int(row["treeID"]), {})[row["id"]] = row
    return tuple(_walk_saved_nodes(by_tree[t], f"{path} (tree {t})") for t in sorted(by_tree))


def _walk_saved_nodes(rows: dict[int, Any], where: str) -> Tree:
    nodes: list[TreeNode | None] = []
    leaves = 0

    def visit(row_id: int, depth: int) -> int:
        nonlocal leaves
        row = rows[row_id]
        node_id = len(nodes)
        nodes.append(None)
        values = dict(
            node_id=node_id,
            depth=depth,
            prediction=float(row["prediction"]),
            impurity=float(row["impurity"]),
            count=float(row["impurityStats"][0]),
        )
        if row["leftChild"] < 0:
            nodes[node_id] = TreeNode(**values, leaf_index=leaves)
            leaves += 1
            return node_id
        if row["numCategories"] != -1:
            raise ValueError(f"node {row_id} of the tree at {where} splits a categorical feature")
        left = visit(row["leftChild"], depth + 1)
        right = visit(row["rightChild"], depth + 1)
        nodes[node_id] = TreeNode(
            **values,
            feature=int(row["featureIndex"]),
            threshold=float(row["leftCategoriesOrThreshold"][0]),
            gain=float(row["gain"]),
            left=left,
            right=right,
        )
        return node_id

    visit(min(rows), 0)
    return Tree(nodes=tuple(nodes))  # type: ignore[arg-type]


def with_node_values(tree: Tree, saved: Tree) -> Tree:
    """``tree`` (e.g. parsed from toDebugString) with the node values of ``saved``, the same tree
    read from where it was saved; refuses a saved tree of another structure."""
    if saved.structure() != tree.structure():
        raise ValueError("the saved tree is not the fitted one: their splits or leaf values differ")
    return replace(tree, nodes=tuple(saved.nodes))
