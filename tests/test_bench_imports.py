"""The benchmarks under ``bench/`` keep working when the code and the test helpers they borrow
move: every ``from X import a, b`` of vulnwatch or of ``tests.*`` in a bench script names a
module that exists and names it has (a moved helper broke ``bench/ecr_cycle.py`` once)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
SCRIPTS = sorted(BENCH.glob("*.py"))


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] in ("vulnwatch", "tests"):
            yield node.lineno, node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in ("vulnwatch", "tests"):
                    yield node.lineno, a.name, []


def test_there_are_benchmarks():
    assert len(SCRIPTS) >= 5


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bench_imports_resolve(script):
    problems = []
    for line, module, names in _imports(script):
        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            problems.append(f"{script.name}:{line}: {module}: {e}")
            continue
        problems += [f"{script.name}:{line}: {module} has no {n}" for n in names
                     if n != "*" and not hasattr(mod, n) and not _is_submodule(module, n)]
    assert not problems, "\n".join(problems)


def _is_submodule(module: str, name: str) -> bool:
    try:
        importlib.import_module(f"{module}.{name}")
        return True
    except ImportError:
        return False
