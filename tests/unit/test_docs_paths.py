"""Docs stay true: every file path that README.md and docs/ name exists in the checkout."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP = (
    "vq_core",
    "vq_plugins",
    "vq_ui",
    "tests",
    "contract_tests",
    "cassettes",
    "load",
    "docs",
    "deploy",
    ".ci",
    "../shared",
)
# A path in code spans or links: starts at a top-level folder (or is a root file),
# made of path characters; `NNNN` and `*` stand for any characters (a glob).
PATH = re.compile(
    r"(?<![\w./-])((?:" + "|".join(re.escape(t) for t in TOP) + r")/[\w./*-]*[\w*/]"
    r"|(?:README\.md|Makefile|pyproject\.toml|tox\.ini))(?![\w/-])"
)
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def named_paths(doc: Path) -> set[str]:
    """Paths a doc names in `code` or as relative links, relative to the project root."""
    text = doc.read_text(encoding="utf-8")
    found = {m.group(1) for span in re.findall(r"`([^`\n]+)`", text) for m in PATH.finditer(span)}
    for target in LINK.findall(text):
        if "://" in target or target.startswith("mailto:"):
            continue
        found.add(os.path.relpath((doc.parent / target).resolve(), ROOT))
    return found


def exists(path: str) -> bool:
    """Whether ``path`` exists; ``NNNN`` and ``*`` match any characters."""
    if path.startswith("../shared"):
        return True  # shared/ is beside the checkout in CI, not part of it
    pattern = path.rstrip("/").replace("NNNN", "*")
    if "*" in pattern:
        return any(ROOT.glob(pattern))
    return (ROOT / pattern).exists()


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: str(d.relative_to(ROOT)))
def test_every_path_a_doc_names_exists(doc: Path) -> None:
    missing = sorted(p for p in named_paths(doc) if not exists(p))
    assert not missing, f"{doc.relative_to(ROOT)} names paths that do not exist: {missing}"


def test_the_path_finder_sees_code_spans_and_links(tmp_path: Path) -> None:
    """The finder is what makes the test above able to fail."""
    doc = ROOT / "docs" / "architecture.md"
    found = named_paths(doc)
    assert any(p.startswith("vq_core/") for p in found), found
    assert not exists("vq_core/no_such_module.py")
    assert exists("vq_core/sql/migrations/NNNN_*.sql")


def map_modules(doc: Path) -> set[str]:
    """The module paths of the tree under "## The map", from its indentation."""
    text = doc.read_text(encoding="utf-8")
    block = text.split("## The map", 1)[1].split("```", 2)[1]
    stack: list[str] = []
    paths = set()
    for line in block.splitlines():
        if not line.strip():
            continue
        depth = (len(line) - len(line.lstrip(" "))) // 4
        name = line.split()[0]
        stack[depth:] = [name.rstrip("/")]
        if name.endswith(".py"):
            paths.add("/".join(stack))
    return paths


def test_the_architecture_map_lists_every_module() -> None:
    modules = {
        str(p.relative_to(ROOT))
        for package in ("vq_core", "vq_plugins", "vq_ui")
        for p in (ROOT / package).rglob("*.py")
        if p.name != "__init__.py"
    }
    listed = map_modules(ROOT / "docs" / "architecture.md")
    assert not modules - listed, f"docs/architecture.md does not list {sorted(modules - listed)}"
    assert not listed - modules, f"docs/architecture.md lists missing {sorted(listed - modules)}"
