#!/usr/bin/env python3
"""build_zip.py [ZIP]: the package as the zip spark-submit ships with --py-files.

The one place the zip is made: scripts/submit.sh runs it before each submission and `make dist`
beside the wheel, so the two cannot differ. The zip holds

  insiders_spark/**/*.py         the package
  insiders_spark/conf/...        conf/ (the profiles, conf/datasets/, the log4j2 files), where the
                                 package finds them (importlib.resources, straight from the zip)
  insiders_spark/BUILD.json      {"version": the package version (pyproject.toml),
                                  "git_commit": the commit it was built from, or null outside a
                                  checkout, "git_dirty": whether insiders_spark/ or conf/ had
                                  uncommitted changes}; a run's manifest reports the commit of
                                  the code it ran

ZIP defaults to dist/insiders_spark.zip. It is written beside its final path and renamed into
place, so a concurrent build never ships a half-written zip. Prints the path. Standard library only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "insiders_spark"
CONF_SUFFIXES = {".toml", ".properties", ".py"}
DEFAULT_ZIP = ROOT / "dist" / "insiders_spark.zip"


def git(*args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def build_info() -> dict:
    """The package version, and the commit the files come from (null outside a git checkout)."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    commit = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--", PACKAGE, "conf")) if commit else None
    return {"version": version, "git_commit": commit or None, "git_dirty": dirty}


def members() -> list[tuple[Path, str]]:
    """(file, name in the zip) for every file the zip holds, in a stable order."""
    files = [(path, path.relative_to(ROOT).as_posix()) for path in sorted((ROOT / PACKAGE).rglob("*.py"))]
    conf = ROOT / "conf"
    files += [
        (path, f"{PACKAGE}/conf/{path.relative_to(conf).as_posix()}")
        for path in sorted(conf.rglob("*"))
        if path.is_file() and path.suffix in CONF_SUFFIXES and "__pycache__" not in path.parts
    ]
    return files


def build(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}")
    try:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            for path, name in members():
                archive.write(path, name)
            archive.writestr(f"{PACKAGE}/BUILD.json", json.dumps(build_info()))
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    target = Path(argv[0]).resolve() if argv else DEFAULT_ZIP
    print(build(target))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
