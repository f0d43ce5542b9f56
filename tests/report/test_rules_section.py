"""The rules and the reasons in the report (``report.rules``), from a hand-built tree and rule rows."""

from insiders_spark.core.names import MODEL_INPUT_COLUMNS
from insiders_spark.model.explain import RuleRow
from insiders_spark.model.tree import Tree, TreeNode
from insiders_spark.report.rules import contributions_markdown, rules_markdown

RECENCY, INVOICES = MODEL_INPUT_COLUMNS.index("recency_days"), MODEL_INPUT_COLUMNS.index("qty_invoices")


def _tree():
    """recency <= 30 ? leaf 0 (value 7) : (invoices <= 3.5 ? leaf 1 (2) : leaf 2 (4)); the root 5."""
    return Tree(
        nodes=(
            TreeNode(0, 0, 5.0, 1.0, 100, feature=RECENCY, threshold=30.0, gain=1.0, left=1, right=2),
            TreeNode(1, 1, 7.0, 0.0, 40, leaf_index=0),
            TreeNode(2, 1, 3.0, 1.0, 60, feature=INVOICES, threshold=3.5, gain=1.0, left=3, right=4),
            TreeNode(3, 2, 2.0, 0.0, 30, leaf_index=1),
            TreeNode(4, 2, 4.0, 0.0, 30, leaf_index=2),
        )
    )


ROWS = [
    RuleRow(1, "Insiders", 0, "recency_days ≤ 30", "(`recency_days` <= 30.0D)", 1, 40, 0.4, 1.0, 1.0,
            8_000.0, 0.8, 200.0, 7.0),
    RuleRow(2, "Lost", 2, "recency_days ≥ 31 AND qty_invoices ≥ 4", "p", 2, 30, 0.3, 0.5, 1.0,
            1_500.5, 0.15, 50.0166, 4.0),
    RuleRow(2, "Lost", 1, "a | b", "p", 2, 30, 0.3, 0.5, 1.0, 499.5, 0.05, 16.65, 2.0),
]  # fmt: skip


def test_the_rules_table_has_one_row_per_leaf_with_its_support():
    lines = rules_markdown(ROWS).splitlines()
    assert lines[0].startswith("| cluster | segment | rule (leaf) | customers | % of cluster | precision |")
    assert lines[2] == "| 1 | Insiders | recency_days ≤ 30 (leaf 0) | 40 | 100% | 1.00 | 200.00 | 80.0% |"
    assert (
        lines[3] == "| 2 | Lost | recency_days ≥ 31 AND qty_invoices ≥ 4 (leaf 2) | 30 | 50% | 1.00 | 50.02 | 15.0% |"
    )
    assert lines[4].startswith("| 2 | Lost | a / b (leaf 1) |")  # a | in a rule would break the table
    assert len(lines) == 2 + len(ROWS)


def test_each_leafs_top_reasons_are_its_path_contributions_in_log_units():
    text = contributions_markdown(_tree(), ROWS, top=2)
    assert "| cluster | leaf | top contributions (log(1 + revenue) units) |" in text
    assert "| 1 | 0 | recency_days +2.00 |" in text  # 5 -> 7
    assert "| 2 | 2 | recency_days -2.00, qty_invoices +1.00 |" in text  # 5 -> 3 -> 4
    assert "| 2 | 1 | recency_days -2.00, qty_invoices -1.00 |" in text  # 5 -> 3 -> 2
    assert "| 2 | 2 | recency_days -2.00 |" in contributions_markdown(_tree(), ROWS, top=1)
