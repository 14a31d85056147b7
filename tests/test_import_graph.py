"""The package's import graph, read from the source with ast: no cycle, and no layer imports one above it.

Every ``import`` counts, at module level or inside a function (a deferred import of a heavy
dependency is fine; one that dodges a cycle is not), except those under ``if TYPE_CHECKING:``.
A higher layer is reached from a lower one only by name (:mod:`ktorch_sim.utils.registry`), never by
an import. The layers, lowest first, are the package's map (README, "Layout").
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ktorch_sim"

# Lowest first. A module belongs to the layer of the longest prefix that names it.
LAYERS: tuple[tuple[str, ...], ...] = (
    # leaves: errors, the version, utils/ (math, value formatting, naming, progress lines, paths, memory bounds)
    ("errors", "version", "utils"),
    ("engines",),  # MuJoCo and MuJoCo Warp behind one interface
    # the MuJoCo model's parts: actuator laws, robot metadata and files, its mirror symmetry, components,
    # sim-to-real effects
    ("actuator_lookup", "robot_metadata", "model_files", "symmetry", "components", "actuators", "sim2real",
     "motion", "robots", "terrain"),
    # the config sections, each beside what it configures (torch-free at import)
    ("task_config", "algorithms.ppo_config", "policies.config", "training.config"),
    ("env", "task"),  # the batched environment and ksim's task API
    ("buffer_sizing", "policies", "algorithms.normalizer", "algorithms.carry", "policy_mirror"),
    ("ppo_task",),  # the policy hooks PPO trains through
    ("algorithms",),  # rollout collection and the PPO update
    ("tasks",),  # the shipped tasks
    ("config",),  # the loader: TOML, --set, checks, help and output; tasks resolved by name
    ("checkpoint",),
    ("playback",),  # a trained policy loaded, run, evaluated, rendered
    ("training",),  # the trainer, its run directory and PPOTask.launch
    ("deploy",),  # export for the robot
    ("train", "demo", ""),  # the command lines and the package's public names
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the statements under ``if TYPE_CHECKING:`` / ``if typing.TYPE_CHECKING:``."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skipped


def _imported(name: str, node: ast.Import | ast.ImportFrom, is_package: bool) -> list[str]:
    """Dotted names (relative to ktorch_sim, "" for the package) an import statement may load."""
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        if node.level:
            base = name.split(".") if name else []
            base = base if is_package else base[:-1]
            base = base[:len(base) - node.level + 1]
            module = ".".join(["ktorch_sim", *base, *([node.module] if node.module else [])])
        else:
            module = node.module or ""
        targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
    return [t.removeprefix("ktorch_sim").removeprefix(".") for t in targets
            if t == "ktorch_sim" or t.startswith("ktorch_sim.")]


def import_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports (both relative to ktorch_sim)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        skipped = _type_checking_nodes(tree)
        edges: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in skipped:
                edges.update(t for t in _imported(name, node, path.name == "__init__.py") if t in modules)
        edges.discard(name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def layer_of(module: str) -> int | None:
    """Index in :data:`LAYERS` of the longest prefix naming ``module`` ("" names only the package itself)."""
    best, best_len = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or (prefix != "" and module.startswith(prefix + "."))
            if matches and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def test_the_package_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(f"ktorch_sim.{m}" for m in cycle)


def test_no_module_imports_a_higher_layer() -> None:
    upward = [f"ktorch_sim.{a} (layer {layer_of(a)}) imports ktorch_sim.{b} (layer {layer_of(b)})"
              for a, targets in sorted(import_graph().items()) for b in sorted(targets)
              if layer_of(b) > layer_of(a) and not (a and b.startswith(a + "."))]
    assert not upward, "\n".join(upward)


def test_every_module_has_a_layer() -> None:
    """A new module must be placed in :data:`LAYERS`, so the layer check covers it."""
    unplaced = sorted(f"ktorch_sim.{m}" for m in _modules() if layer_of(m) is None)
    assert not unplaced, f"add to LAYERS in {__file__}: {unplaced}"


def test_the_checker_finds_a_cycle_and_an_upward_import() -> None:
    """The two checks can fail: a hand-made cycle is found, and the layer order is not flat."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert layer_of("training.trainer") > layer_of("ppo_task") > layer_of("task") > layer_of("engines.warp")
    assert layer_of("training.config") < layer_of("config.loader")
    assert layer_of("no_such_module") is None


@pytest.mark.parametrize("source, expected", [
    ("from ktorch_sim.env import Env", {"env"}),
    ("import ktorch_sim.engines.warp", {"engines.warp"}),
    ("def f():\n    from ktorch_sim.env import Env", {"env"}),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ktorch_sim.env import Env", set()),
])
def test_imports_inside_functions_count_and_type_checking_ones_do_not(tmp_path, source, expected) -> None:
    tree = ast.parse(source)
    skipped = _type_checking_nodes(tree)
    found = {t for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in skipped
             for t in _imported("x", node, False)}
    assert found & {"env", "engines.warp"} == expected
