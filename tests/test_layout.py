"""Imports point down (DESIGN.md): each package imports only the layers below it."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = {"api", "config", "hardware", "assistant", "embeddings", "jobs", "registry", "storage", "telemetry", "trainer",
           "web"}
TRAINING_LIBRARIES = {"torch", "transformers", "peft", "datasets", "accelerate"}
# package -> the top-level modules it must never import
FORBIDDEN = {
    "storage": PROJECT - {"storage"},
    "telemetry": (PROJECT - {"telemetry"}) | TRAINING_LIBRARIES,  # the floor every room records metrics on
    "registry": (PROJECT - {"registry", "storage", "config"}) | TRAINING_LIBRARIES,
    "embeddings": PROJECT - {"embeddings", "storage", "config"},
    "assistant": {"api", "web", "jobs", "trainer"},
    "trainer": {"api", "web", "jobs"},
    "jobs": {"api", "web", "trainer", "assistant"} | TRAINING_LIBRARIES,
    "web": {"api", "trainer"} | TRAINING_LIBRARIES,
}


def imports(path: Path) -> list[tuple[str, int]]:
    """Top-level module names a file imports, anywhere in it (function bodies too), with their lines."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name.split(".")[0], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.append((node.module.split(".")[0], node.lineno))
    return found


def violations(root: Path, package: str, forbidden: set[str]) -> list[str]:
    """`file:line imports name` for each import of a forbidden module in ``package``."""
    return [f"{path.relative_to(root)}:{line} imports {name}"
            for path in sorted((root / package).rglob("*.py"))
            for name, line in imports(path) if name in forbidden]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_down(package):
    assert (ROOT / package / "__init__.py").is_file(), f"{package}/ is not a package any more: update FORBIDDEN"
    assert violations(ROOT, package, FORBIDDEN[package]) == []


def test_an_import_pointing_up_is_reported_even_inside_a_function(tmp_path):
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "ok.py").write_text("import os\nfrom storage.conversations import Conversations\n")
    (tmp_path / "jobs" / "bad.py").write_text("def train():\n    from trainer import pipeline\n    import torch.nn\n")

    assert violations(tmp_path, "jobs", FORBIDDEN["jobs"]) == ["jobs/bad.py:2 imports trainer",
                                                               "jobs/bad.py:3 imports torch"]
