"""A fitted MLlib decision tree as plain Python data: nodes, splits, paths and leaf indices.

MLlib numbers the leaves it reports through ``leafCol`` in preorder (left subtree first); the walk
below numbers them the same way, so a leaf index from ``transform`` finds its node here. The tree
is bounded by ``maxDepth`` (at most 2^(depth+1) - 1 nodes), so holding it on the driver is safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TreeNode:
    node_id: int  # preorder position among all nodes
    depth: int
    prediction: float
    impurity: float
    count: float  # training instances that reached the node
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


def read_tree(java_tree_model: Any) -> Tree:
    """Walk a fitted ``DecisionTreeRegressionModel`` (its JVM object) into a :class:`Tree`."""
    nodes: list[TreeNode] = []
    leaf_counter = 0

    def visit(jnode: Any, depth: int) -> int:
        nonlocal leaf_counter
        node_id = len(nodes)
        nodes.append(None)  # type: ignore[arg-type]  # reserve the preorder slot
        common = dict(
            node_id=node_id,
            depth=depth,
            prediction=float(jnode.prediction()),
            impurity=float(jnode.impurity()),
            count=float(jnode.impurityStats().count()),
        )
        if jnode.getClass().getSimpleName() == "LeafNode":
            nodes[node_id] = TreeNode(**common, leaf_index=leaf_counter)
            leaf_counter += 1
            return node_id
        split = jnode.split()
        left = visit(jnode.leftChild(), depth + 1)
        right = visit(jnode.rightChild(), depth + 1)
        nodes[node_id] = TreeNode(
            **common,
            feature=int(split.featureIndex()),
            threshold=float(split.threshold()),
            gain=float(jnode.gain()),
            left=left,
            right=right,
        )
        return node_id

    visit(java_tree_model.rootNode(), 0)
    return Tree(nodes=tuple(nodes))
