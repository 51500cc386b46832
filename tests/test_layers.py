"""The house's layering, read from every module's imports with `ast`: no import cycle, no arrow upwards.

Layers, bottom up (a module may import its own layer and those listed for it):
  methods                      nothing of ours (own errors)
  analyses.metrics, .summary,  nothing of ours but each other (metrics is the leaf; stats, the bootstrap,
    .stats, .registry          numpy and pandas only, so results.json and the reports share its intervals;
                               registry, the analyses' names and report titles, read by the CLI and reports)
  bench.core                   nothing else of ours
  bench.data                   core, methods (its generic registry)
  bench.evaluation             core, data, methods, the metrics
  bench.training               core, data, evaluation, methods, the metrics
  bench.runs                   everything of bench below it, methods, metrics, summary and stats
  bench.papers                 paper cards and reproduction records: bench.runs and below, the analyses' leaves
                               (claims: a paper's claims checked with analyses.stats' intervals)
  reports                      bench (not its CLI), methods, analyses.metrics / summary / stats / registry
  analyses (the experiments)   bench, methods, analyses
  bench.cli, bench.benchmarks  everything

Light declarations, heavy implementations (issue 31): option dataclasses, registries, cards and the catalog
import no torch, so `--help` and the listings answer at once (tests/test_light_cli.py). A registry loads the
implementations that register into it by module name on first use (`methods.BUILTIN`); a function-local
import of the project is allowed only in LAZY_IMPORTS (the command-line layer, which imports a command's
implementation after parsing, and the light modules named there with their reason). Local imports are read
like the others, so they keep the layers and the no-cycle rule.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Set

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bench", "methods", "analyses", "reports")
LEAVES = {"analyses.metrics": set(), "analyses.summary": {"analyses.metrics"}, "analyses.stats": set(),
          "analyses.registry": set(), "analyses.claims": {"analyses.stats"}}
ALLOWED = {
    "methods": {"methods"},
    "bench.core": {"bench.core"},
    "bench.data": {"bench.core", "bench.data", "methods"},
    "bench.evaluation": {"bench.core", "bench.data", "bench.evaluation", "methods", "analyses.metrics"},
    "bench.training": {"bench.core", "bench.data", "bench.evaluation", "bench.training", "methods",
                       "analyses.metrics"},
    "bench.runs": {"bench.core", "bench.data", "bench.evaluation", "bench.training", "bench.runs", "methods",
                   "analyses.metrics", "analyses.summary", "analyses.stats"},
    "bench.papers": {"bench.core", "bench.data", "bench.training", "bench.runs", "bench.papers", "methods", "analyses.metrics",
                     "analyses.summary", "analyses.stats", "analyses.registry", "analyses.claims"},
    "reports": {"bench.core", "bench.data", "bench.evaluation", "bench.training", "bench.runs", "bench.papers", "methods",
                "analyses.metrics", "analyses.summary", "analyses.stats", "analyses.registry", "reports"},
    "analyses": {"bench.core", "bench.data", "bench.evaluation", "bench.training", "bench.runs", "bench.cli",
                 "methods", "analyses"},
    "bench.cli": {"bench", "methods", "analyses", "reports"},
    "bench.benchmarks": {"bench", "methods", "analyses", "reports"},
    "bench": {"bench"},  # bench/__init__.py and bench/__main__.py
}


def modules() -> Dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = modules()


def imports(name: str) -> Set[str]:
    """The project modules `name` imports (anywhere in the file), resolved to modules that exist."""
    out = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


GRAPH = {name: imports(name) for name in MODULES}


def layer(name: str) -> str:
    if name in LEAVES:
        return name
    for prefix in sorted(ALLOWED, key=len, reverse=True):
        if name == prefix or name.startswith(prefix + "."):
            return prefix
    raise AssertionError(f"{name} is in no layer")


def within(target: str, allowed: Set[str]) -> bool:
    return any(target == a or target.startswith(a + ".") for a in allowed)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_follow_the_layers(name):
    own = layer(name)
    allowed = LEAVES[own] if own in LEAVES else ALLOWED[own]
    wrong = sorted(t for t in GRAPH[name] if not within(t, allowed | ({own} if own not in LEAVES else set())))
    assert not wrong, f"{name} ({own}) imports {wrong}"


def test_no_import_cycle():
    state: Dict[str, int] = {}
    stack = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)


#: where a function may import the project (light modules whose one heavy function needs an implementation)
LAZY_IMPORTS = {
    "bench.cli": "a command imports its implementation after the arguments are parsed",
    **{f"analyses.{p.stem}": "an analysis' command imports its implementation (analyses.impl) after parsing"
       for p in (ROOT / "analyses" / "impl").glob("*.py") if p.stem != "__init__"},
    "bench.evaluation.protocol": "ScoringProtocol is an option group (--help); only its score() needs torch",
}


def test_no_function_local_import_of_the_project():
    """Imports of our modules sit at the top of the file, except in LAZY_IMPORTS (an optional dependency such
    as Ray, or torch in a light module, may be local anywhere)."""
    local = []
    for name, path in MODULES.items():
        if within(name, set(LAZY_IMPORTS)):
            continue
        for func in ast.walk(ast.parse(path.read_text())):
            if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(func):
                    module = node.module if isinstance(node, ast.ImportFrom) else None
                    names = [a.name for a in node.names] if isinstance(node, ast.Import) else [module or ""]
                    if isinstance(node, (ast.Import, ast.ImportFrom)) and any(
                            n.split(".")[0] in PACKAGES for n in names):
                        local.append(f"{name}.{func.name}")
    assert not local, local


def test_local_imports_are_read_as_imports():
    """A command's function-local import is an edge of the graph: it obeys the layers like any other."""
    assert "bench.runs.run" in GRAPH["bench.cli.commands"]
    assert "analyses.metrics" in GRAPH["bench.evaluation.protocol"]


def test_builtin_methods_are_modules():
    """The registries' loader imports `methods.BUILTIN` by name: each is a module of `methods/`, and every
    module that registers a method is named there."""
    import methods

    registering = {n.split(".")[1] for n, p in MODULES.items()
                   if n.startswith("methods.") and n != "methods.registry" and "@register_method(" in p.read_text()}
    assert all(f"methods.{name}" in MODULES for name in methods.BUILTIN)
    assert registering <= set(methods.BUILTIN), sorted(registering - set(methods.BUILTIN))


def test_the_checker_sees_a_back_arrow():
    """The rule is not vacuous: methods importing bench would be caught."""
    assert not within("bench.core.errors", ALLOWED["methods"])
    assert within("bench.data.images", ALLOWED["bench.evaluation"]) and not within("bench.runs.rundir",
                                                                                     ALLOWED["bench.data"])
