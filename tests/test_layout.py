"""The package layers import downward only: schemas <- stages <- pipeline <- trainer.

A user reading the tree should see the pipeline in it, and a stage should be usable without the
CLI package; both break silently when someone adds one convenient upward import.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"schemas": 0, "stages": 1, "pipeline": 2, "trainer": 3}


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_no_layer_imports_a_layer_above_it():
    upward = []
    for package, level in LAYERS.items():
        for path in _modules(package):
            for name in _imported_modules(path):
                top = name.split(".")[0]
                if top in LAYERS and LAYERS[top] > level:
                    upward.append(f"{path.relative_to(ROOT)} imports {name}")
    assert upward == []


def test_build_and_components_do_not_import_each_other_both_ways():
    build = _imported_modules(ROOT / "pipeline" / "build.py")
    components = _imported_modules(ROOT / "pipeline" / "components.py")
    assert not ({"pipeline.build"} & components and {"pipeline.components"} & build)
    assert not any(name.startswith("pipeline.build") for name in components)


def test_each_multi_module_stage_is_a_package():
    flat = sorted(p.name for p in (ROOT / "stages").glob("*.py"))
    assert flat == ["__init__.py", "base.py", "plan.py", "text.py"]
    for stage in ("ingest", "retrieve", "paraphrase", "embed", "assemble"):
        assert (ROOT / "stages" / stage / "stage.py").is_file(), stage


def test_no_package_module_is_longer_than_300_lines():
    """A module past ~300 lines holds more than one idea; split it before it grows further."""
    long = [f"{path.relative_to(ROOT)}: {n} lines" for package in LAYERS for path in _modules(package)
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > 300]
    assert long == []
