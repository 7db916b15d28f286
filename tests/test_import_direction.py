"""Imports point one way, ``apps, train -> gan_baselines -> t2i``, and entry points are leaves.

Read from the source with ``ast`` (every ``import`` statement, also inside functions): the library
(``t2i``) imports none of the model families, commands or the app; ``gan_baselines`` imports no
command and no app; an entry point (a module of ``train/`` or ``apps/app.py``) imports no other
entry point: it runs another command through the dispatcher ``train.cli`` instead. Nothing outside
``tests/`` imports ``tests``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("t2i", "gan_baselines", "train", "apps", "benchmarks")
DISPATCHER = "train.cli"
FORBIDDEN = {  # package -> top-level packages it must not import
    "t2i": {"gan_baselines", "train", "apps", "benchmarks", "tests"},
    "gan_baselines": {"train", "apps", "benchmarks", "tests"},
    "train": {"apps", "benchmarks", "tests"},
    "apps": {"train", "benchmarks", "tests"},
    "benchmarks": {"tests"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` or ``from ... import`` in the file names (relative ones resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # `from train import ae` names train.ae
    return found


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def entry_points() -> dict[str, Path]:
    """Every command module: train/**.py (packages and the dispatcher aside) and the app."""
    found = {module_name(p): p for p in sources("train") if p.name != "__init__.py"}
    found.pop(DISPATCHER)
    return found | {"apps.app": ROOT / "apps" / "app.py"}


def test_every_package_imports_only_downwards():
    wrong = []
    for package, banned in FORBIDDEN.items():
        for path in sources(package):
            for imported in imported_modules(path):
                if imported.split(".")[0] in banned:
                    wrong.append(f"{path.relative_to(ROOT)} imports {imported}")
    assert not wrong, "imports must point apps, train -> gan_baselines -> t2i:\n" + "\n".join(wrong)


def test_entry_points_do_not_import_each_other():
    commands = entry_points()
    assert {"train.sample", "train.bench", "train.gan", "train.studies.mode_collapse", "apps.app"} <= set(commands)
    wrong = []
    for name, path in sorted(commands.items()):
        for imported in imported_modules(path):
            if imported in commands and imported != name:
                wrong.append(f"{name} imports {imported} (run it through {DISPATCHER} instead)")
    assert not wrong, "entry points are leaves:\n" + "\n".join(wrong)


def test_the_checker_sees_imports_inside_functions(tmp_path):
    path = ROOT / "train" / "studies" / "mode_collapse.py"
    assert DISPATCHER in imported_modules(path)  # imported inside a function
