"""The layout's rules, checked on the import graph of src/vulnwatch (docs/architecture.md).

Every ``import`` / ``from ... import`` statement of every module is read with ``ast`` (function-
level imports included: a lazy import is still a dependency), resolved to a module of ours, and
held against the rules:

1. ``model``, ``net`` and ``lazy`` import nothing of ours; ``logs``, ``aws`` and ``runs`` import nothing but ``model``.
2. A stage imports only earlier stages (and the shared modules): targets -> registries ->
   walker -> catalogers -> vulndb -> scanners -> policy -> store -> diff -> notify -> delivery ->
   formats; ``config`` is read only by the builder and the entry points.
3. Inside an extension point, an implementation imports only its package's ``interface`` and
   ``_*`` modules, never a sibling implementation; the package's ``__init__`` (its map) may import
   them all.
4. Entry points (``cli``, ``service``, ``web``, ``aws_lambda``) reach the stages only through
   ``build`` and ``pipeline``; besides those they may use ``config``, ``store``, ``formats``,
   ``diff``, ``model``, ``logs`` and any package's ``interface`` (error types, values).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "vulnwatch"

SHARED = ("model", "logs", "aws", "net", "lazy", "runs")
STAGES = ("targets", "registries", "walker", "catalogers", "vulndb", "scanners", "policy", "store", "diff",
          "notify", "delivery", "formats")
"""In data-flow order: each may import only those before it (plus the shared modules)."""
WIRING = ("pipeline", "build")
"""Above the stages: the pipeline wires stages together, the builder makes them from the config."""
ENTRY_POINTS = ("cli", "service", "web", "aws_lambda")
ENTRY_MAY_USE = ("build", "pipeline", "config", "store", "formats", "diff", "model", "logs")
ENTRY_ALSO = {"aws_lambda": ("aws",)}
"""Per entry point, what it may use besides: the Lambda handlers build their SQS, S3, SSM and
Secrets Manager clients with ``aws.client`` (the one way boto3 clients are made), as the
stages do; they reach ECR and DynamoDB only through the pipeline and the store."""
EXTENSION_POINTS = ("registries", "catalogers", "scanners", "policy", "store", "notify", "formats", "vulndb.versions",
                    "vulndb.enrichment")
"""Packages of interchangeable implementations (rule 3)."""
NOT_IMPLEMENTATIONS = {"catalogers": ("plan", "purl", "os_release"), "store": ("migrations",),
                       "registries": ("reference", "auth")}
"""Modules of an extension point that are shared parts, not implementations (their siblings may
import them): the catalog plan, purl/os-release helpers, reference parsing and registry auth,
store migrations."""


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}


def imports_of(name: str) -> set[str]:
    """Our modules that module ``name`` imports (resolved to the longest known module name)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                mod = ".".join(base + ([node.module] if node.module else []))
                prefix = ""
            else:
                mod, prefix = node.module or "", ""
            targets = [f"{mod}.{a.name}" if mod else a.name for a in node.names] + [mod]
            del prefix
        for t in targets:
            if node.__class__ is ast.Import or (isinstance(node, ast.ImportFrom) and not node.level):
                if not t.startswith("vulnwatch"):
                    continue
                t = t[len("vulnwatch"):].lstrip(".")
            while t and t not in MODULES:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


GRAPH = {name: imports_of(name) for name in MODULES if name}


def top(name: str) -> str:
    return name.split(".", 1)[0]


def test_the_graph_was_read():
    assert {"model", "pipeline", "build", "walker.read", "cli.app"} <= set(GRAPH)
    assert "model" in GRAPH["pipeline"] and "walker.overlay" in GRAPH["walker.read"] or "walker.contents" in \
        GRAPH["walker.read"]


def test_model_imports_nothing_of_ours_and_shared_modules_only_model():
    assert GRAPH["model"] == set() and GRAPH["net"] == set() and GRAPH["lazy"] == set()
    for name in ("logs", "aws", "runs"):
        assert GRAPH[name] <= {"model"}, (name, GRAPH[name])


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_imports_only_earlier_stages(stage):
    allowed = set(STAGES[:STAGES.index(stage) + 1]) | set(SHARED) | {""}
    bad = sorted(f"{m} -> {dep}" for m, deps in GRAPH.items() if top(m) == stage
                 for dep in deps if top(dep) not in allowed)
    assert bad == []


def test_config_is_read_only_by_the_builder_and_entry_points():
    bad = sorted(f"{m} -> {dep}" for m, deps in GRAPH.items() for dep in deps
                 if top(dep) == "config" and top(m) not in ("config", "build", *ENTRY_POINTS))
    assert bad == []


def test_config_imports_only_model():
    bad = sorted(f"{m} -> {dep}" for m, deps in GRAPH.items() if top(m) == "config"
                 for dep in deps if top(dep) not in ("config", "model"))
    assert bad == []


def _extension_point(name: str) -> str | None:
    for ep in sorted(EXTENSION_POINTS, key=len, reverse=True):
        if name.startswith(ep + "."):
            return ep
    return None


def _is_implementation(name: str, ep: str) -> bool:
    rest = name[len(ep) + 1:]
    first = rest.split(".", 1)[0]
    return "." not in rest and not first.startswith("_") and first != "interface" \
        and first not in NOT_IMPLEMENTATIONS.get(ep, ())


def test_implementations_never_import_their_siblings():
    bad = []
    for name, deps in GRAPH.items():
        ep = _extension_point(name)
        if ep is None or not _is_implementation(name, ep):
            continue
        for dep in deps:
            if _extension_point(dep) == ep and _is_implementation(dep, ep) and dep != name:
                bad.append(f"{name} -> {dep}")
    assert sorted(bad) == []


@pytest.mark.parametrize("package", ENTRY_POINTS)
def test_entry_points_go_through_the_builder_and_pipeline(package):
    bad = []
    for name, deps in GRAPH.items():
        if top(name) != package:
            continue
        for dep in deps:
            if top(dep) in (package, *ENTRY_MAY_USE, *ENTRY_ALSO.get(package, ())) or dep.endswith(".interface") \
                    or dep == "":
                continue
            bad.append(f"{name} -> {dep}")
    assert sorted(bad) == []


def test_wiring_sits_above_the_stages():
    for name in WIRING:
        assert not any(top(d) in ENTRY_POINTS for d in GRAPH[name]), GRAPH[name]
    assert "build" not in {top(d) for d in GRAPH["pipeline"]}


@pytest.mark.parametrize("package,map_name", [
    ("registries", "REGISTRIES"), ("scanners", "SCANNERS"), ("store", "STORES"), ("notify", "NOTIFIERS"),
    ("formats", "FORMATTERS"), ("catalogers", "CATALOGERS"), ("policy", "LOADERS"),
])
def test_every_extension_point_has_its_map_in_its_package(package, map_name):
    import importlib

    mod = importlib.import_module(f"vulnwatch.{package}")
    assert isinstance(getattr(mod, map_name), dict) and getattr(mod, map_name)


@pytest.mark.parametrize("package,map_name", [
    ("registries", "REGISTRIES"), ("scanners", "SCANNERS"), ("notify", "NOTIFIERS"),
])
def test_every_configurable_implementation_builds_itself_from_config(package, map_name):
    import importlib

    mod = importlib.import_module(f"vulnwatch.{package}")
    for name, cls in getattr(mod, map_name).items():
        assert "from_config" in vars(cls), f"{package}: {name} ({cls.__name__}) has no from_config"


def test_every_store_opens_from_its_url():
    from vulnwatch.store import STORES

    for scheme, cls in STORES.items():
        assert "from_url" in vars(cls), scheme


def test_the_rules_catch_a_violation(tmp_path, monkeypatch):
    """The checker itself: a sibling import and an entry point reaching past the builder fail."""
    fake = {"notify.slack": {"notify.webhook"}, "cli.scan": {"scanners.builtin"}, "walker.read": {"catalogers"}}
    monkeypatch.setitem(GRAPH, "notify.slack", fake["notify.slack"])
    with pytest.raises(AssertionError):
        test_implementations_never_import_their_siblings()
    monkeypatch.setitem(GRAPH, "cli.scan", fake["cli.scan"])
    with pytest.raises(AssertionError):
        test_entry_points_go_through_the_builder_and_pipeline("cli")
    monkeypatch.setitem(GRAPH, "walker.read", fake["walker.read"])
    with pytest.raises(AssertionError):
        test_a_stage_imports_only_earlier_stages("walker")
