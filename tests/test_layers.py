"""The package's shape: dependencies run one way, and reading results never loads TensorFlow."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "moncae"

# Lowest first; a module may import only from its own layer or a lower one.
LAYERS = [
    ("errors", "_version", "presets", "tfquiet", "interrupts"),
    ("data", "method"),
    ("config", "model"),
    ("evaluation",),
    ("store", "executors"),
    ("search",),
    ("finetune", "report", "export"),
    ("cli", "__init__", "__main__"),
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}
NO_TENSORFLOW = ["moncae", "moncae.method", "moncae.store", "moncae.report", "moncae.report.collect",
                 "moncae.config", "moncae.data", "moncae.search", "moncae.evaluation.records",
                 "moncae.evaluation.surrogate", "moncae.evaluation.lazy", "moncae.executors",
                 "moncae.executors.processes", "moncae.executors.dask",
                 "moncae.finetune", "moncae.export", "moncae.export.front", "moncae.export.select",
                 "moncae.cli.main"]


def imported_moncae_modules(path: Path) -> set[str]:
    """Every `moncae.X...` a module imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m == "moncae" or m.startswith("moncae.")}


def top_part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_subpackage_has_a_layer():
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))}
    assert parts <= set(RANK), f"give these a layer: {sorted(parts - set(RANK))}"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_go_down(path):
    mine = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    for module in imported_moncae_modules(path):
        theirs = top_part(module)
        assert RANK[theirs] <= RANK[mine], f"{path.relative_to(PACKAGE)} imports {module} (a higher layer)"


def test_reading_results_never_loads_tensorflow():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in NO_TENSORFLOW)
            + "bad = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)\n"
            + "assert not bad, bad\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
