"""The package map of docs/architecture.md: every import of src/audiox_turbo goes to a lower
layer, so the packages form a DAG (no cycles, nothing imports the commands or the pipelines
from below)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "audiox_turbo"
LAYERS = {
    **dict.fromkeys(("errors", "assets"), 0),
    **dict.fromkeys(("atomic", "rope", "mel", "interface"), 1),
    **dict.fromkeys(("config", "weights"), 2),
    **dict.fromkeys(("flow", "codec", "conditioning", "io"), 3),
    "model": 4,
    **dict.fromkeys(("official", "data", "distill"), 5),
    **dict.fromkeys(("model_dir", "eval"), 6),
    **dict.fromkeys(("pipeline", "train", "curate"), 7),
    "loader": 8,
    **dict.fromkeys(("serve", "recipe"), 9),
    "cli": 10,
    **dict.fromkeys(("__init__", "__main__"), 11),
}


def unit_of(path: Path) -> str:
    """The package (or top-level module) a source file belongs to."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported_units(path: Path) -> set[str]:
    """Units of audiox_turbo imported anywhere in a file (module level or inside functions)."""
    units = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[0] != "audiox_turbo":
                continue
            units |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            units |= {
                a.name.split(".")[1] for a in node.names if a.name.startswith("audiox_turbo.")
            }
    return units


def upward_imports(files: list[Path]) -> list[str]:
    """'file: unit (layer) -> unit (layer)' for every import that does not go down."""
    problems = []
    for file in files:
        unit = unit_of(file)
        for target in sorted(imported_units(file) - {unit}):
            if LAYERS[target] >= LAYERS[unit]:
                rel = file.relative_to(PACKAGE)
                problems.append(f"{rel}: {unit} ({LAYERS[unit]}) -> {target} ({LAYERS[target]})")
    return problems


def test_every_unit_has_a_layer() -> None:
    units = {unit_of(f) for f in PACKAGE.rglob("*.py")}
    assert units <= set(LAYERS), sorted(units - set(LAYERS))


def test_imports_only_go_down() -> None:
    assert upward_imports(sorted(PACKAGE.rglob("*.py"))) == []


def test_an_upward_import_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "audiox_turbo"
    (fake / "model").mkdir(parents=True)
    (fake / "model" / "layer.py").write_text("def f():\n    from audiox_turbo.train import x\n")
    monkeypatch.setattr(f"{__name__}.PACKAGE", fake)
    assert upward_imports([fake / "model" / "layer.py"]) == [
        "model/layer.py: model (4) -> train (7)"
    ]
