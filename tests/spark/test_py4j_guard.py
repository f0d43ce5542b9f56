"""The guard: no py4j internals in the job's code outside ``spark/classic.py``.

Spark Connect clients (Spark 4's thin client, serverless and shared-access platforms) have no JVM in
the driver's process: any ``sparkContext``, ``_jvm``, ``_jsc``, ``_java_obj`` or py4j import on
the job's path fails there. Such calls live in one module, ``insiders_spark/spark/classic.py``,
whose functions the job skips over Connect. The guard reads the package's source (no JVM needed):
code only, so a docstring or comment that names them is fine.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "insiders_spark"
CLASSIC_MODULE = "spark/classic.py"
# Modules allowed on the JVM for a while, each with its reason; the guard fails on a stale entry.
STILL_ON_THE_JVM: dict[str, str] = {}
# Attributes that reach into the JVM, or that a Spark Connect session does not have
INTERNAL_ATTRIBUTES = {
    "sparkContext", "_jvm", "_jsc", "_java_obj", "_jsparkSession", "_jdf", "_jconf", "_gateway", "_sc", "rdd",
}  # fmt: skip
CLASSIC_ONLY_NAMES = {"SparkContext", "SparkConf"}  # pyspark's, imported from pyspark or pyspark.core


def internals(source: str) -> list[tuple[int, str]]:
    """(line, what) of every py4j internal in ``source``'s code."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, f"import {a.name}") for a in node.names if a.name.split(".")[0] == "py4j"]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module.split(".")[0] == "py4j":
                found.append((node.lineno, f"from {module} import ..."))
            elif module.split(".")[0] == "pyspark":
                classic = [a.name for a in node.names if a.name in CLASSIC_ONLY_NAMES]
                found += [(node.lineno, f"from {module} import {name}") for name in classic]
        elif isinstance(node, ast.Attribute) and node.attr in INTERNAL_ATTRIBUTES:
            found.append((node.lineno, f".{node.attr}"))
        elif isinstance(node, ast.Attribute | ast.Name):
            name = node.attr if isinstance(node, ast.Attribute) else node.id
            if "py4j" in name.lower():
                found.append((node.lineno, name))
    return found


def package_internals() -> dict[str, list[tuple[int, str]]]:
    modules = {path.relative_to(PACKAGE).as_posix(): path for path in sorted(PACKAGE.rglob("*.py"))}
    return {name: found for name, path in modules.items() if (found := internals(path.read_text()))}


def test_py4j_internals_appear_only_in_the_classic_module():
    outside = {
        name: found
        for name, found in package_internals().items()
        if name != CLASSIC_MODULE and name not in STILL_ON_THE_JVM
    }
    listing = "; ".join(f"{name}:{line} {what}" for name, found in outside.items() for line, what in found)
    assert not outside, (
        f"py4j internals outside insiders_spark/{CLASSIC_MODULE} (they fail over Spark Connect): {listing}. "
        "Use a public API that works in both modes, or move the call into spark/classic.py and skip it over Connect"
    )


def test_every_module_still_allowed_on_the_jvm_still_needs_it():
    found = package_internals()
    stale = [name for name in STILL_ON_THE_JVM if name not in found]
    assert not stale, f"remove {stale} from STILL_ON_THE_JVM: they no longer use the JVM"


def test_the_classic_module_is_the_one_that_reaches_the_jvm():
    assert package_internals().get(CLASSIC_MODULE), "spark/classic.py holds the job's JVM calls"


def test_the_guard_sees_each_kind_of_internal_in_code_and_not_in_text():
    code = '''
"""sparkContext and _jvm in a docstring are text."""
from py4j.protocol import Py4JJavaError
import py4j.java_gateway
from pyspark import SparkContext
spark.sparkContext._jsc.sc()
spark._jvm.System
model._java_obj
frame.rdd
# spark.sparkContext in a comment is text
message = "spark.sparkContext in a string is text"
'''
    assert {what for _, what in internals(code)} == {
        "from py4j.protocol import ...", "import py4j.java_gateway", "from pyspark import SparkContext",
        ".sparkContext", "._jsc", "._jvm", "._java_obj", ".rdd",
    }  # fmt: skip
