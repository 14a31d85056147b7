"""Export a trained actor to ONNX for a robot: a step graph, an init graph and its metadata.

``export_policy(policy, "policy.onnx")`` writes three files next to each other:

* ``policy.onnx``: the step graph. Inputs: one float32 tensor per actor observation, named by
  the observation's clean name (``joint_position_observation``, never ``noisy_...``: a robot's
  sensors are simply what they are) and shaped ``[B, size]``; then one per command key, sorted
  as :meth:`PPOTask.actor_inputs` sorts them; then, for a recurrent policy, ``carry``
  ``[B, *carry_shape]``. Outputs: ``action`` ``[B, A]`` (the distribution's mode times the
  actuators' ``action_scale``: for position actuators, joint position targets in radians, in
  action order) and, for a recurrent policy, ``next_carry``. Input normalization, when the
  config enables it, is inside the graph. ``B`` is dynamic.
* ``policy.init.onnx``: no inputs; returns ``carry`` ``[1, *carry_shape]`` of zeros, the state
  at the start of every episode. Written for recurrent policies only; a feed-forward (MLP)
  policy has no carry input or output at all.
* ``policy.json``: the metadata, also stored in both ONNX files' ``metadata_props`` (one key
  each, JSON-encoded values): see :func:`export_metadata` and ``docs/export.md``.

Every file is written to a temporary name and renamed into place; the step graph is renamed
last, so a complete ``policy.onnx`` implies complete companions. Nothing is left behind on error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import os
import uuid
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mujoco
import torch
from torch import nn

from ktorch_sim.version import __version__
from ktorch_sim.actuators import PositionActuators, actuator_label
from ktorch_sim.playback.trained import TrainedPolicy

__all__ = [
    "DEFAULT_OPSET",
    "MIN_OPSET",
    "ExportError",
    "ExportPaths",
    "PolicyInterface",
    "ActorStep",
    "check_opset",
    "check_writable",
    "export_metadata",
    "export_paths",
    "export_policy",
    "policy_interface",
    "read_metadata",
]

DEFAULT_OPSET = 18
MIN_OPSET = 18  # torch's export-based ONNX exporter emits opset 18 and newer
CARRY_INPUT, CARRY_OUTPUT, ACTION_OUTPUT = "carry", "next_carry", "action"
FORMAT = "ktorch_sim.policy/1"


class ExportError(ValueError):
    """The policy cannot be exported or the export cannot be written; the message says why, in one line."""


@dataclass(frozen=True)
class ExportPaths:
    """The three files of one export."""

    step: Path  # policy.onnx
    init: Path  # policy.init.onnx
    metadata: Path  # policy.json


@dataclass(frozen=True)
class PolicyInterface:
    """What the step graph reads and writes, in input order.

    Attributes:
        observations: (clean name, size) of each actor observation, in the order the actor concatenates them.
        commands: (key, size) of each command, sorted by key.
        carry_shape: per-world carry shape (GRU: (depth, hidden)); None for a feed-forward policy.
        num_actions: A.

    """

    observations: tuple[tuple[str, int], ...]
    commands: tuple[tuple[str, int], ...]
    carry_shape: tuple[int, ...] | None
    num_actions: int

    @property
    def input_names(self) -> list[str]:
        """Step-graph input names: observations, commands, then ``carry`` when recurrent."""
        names = [n for n, _ in self.observations] + [k for k, _ in self.commands]
        return names + ([CARRY_INPUT] if self.carry_shape is not None else [])

    @property
    def output_names(self) -> list[str]:
        """Step-graph output names: ``action`` then ``next_carry`` when recurrent."""
        return [ACTION_OUTPUT] + ([CARRY_OUTPUT] if self.carry_shape is not None else [])


def export_paths(out: str | Path) -> ExportPaths:
    """Return the files of an export to ``out`` (``x/policy.onnx`` -> ``x/policy.init.onnx``, ``x/policy.json``)."""
    out = Path(out)
    stem = out.name[: -len(".onnx")] if out.name.endswith(".onnx") else out.name
    return ExportPaths(step=out, init=out.with_name(f"{stem}.init.onnx"), metadata=out.with_name(f"{stem}.json"))


def policy_interface(policy: TrainedPolicy) -> PolicyInterface:
    """Measure the actor's inputs from the policy's first observation, as ``PPOTask.actor_inputs`` reads them."""
    obs, cmd = policy.first["observation"], policy.first["command"]
    names = policy.task.get_actor_observation_names(list(obs.keys()))
    observations = tuple((n, int(obs.get(f"noisy_{n}", obs[n]).shape[-1])) for n in names)
    commands = tuple((k, int(cmd[k].shape[-1])) for k in sorted(cmd.keys()))
    carry = policy.model.actor.initial_carry(1)
    carry_shape = tuple(int(s) for s in carry.shape[1:]) if carry.numel() > 0 else None
    return PolicyInterface(observations=observations, commands=commands, carry_shape=carry_shape,
                           num_actions=policy.spec.num_actions)


def action_scale(policy: TrainedPolicy) -> float:
    """Factor from the policy's action to the actuator command (position actuators' ``action_scale``, else 1)."""
    actuators = policy.env.spec.actuators
    return float(actuators.action_scale) if isinstance(actuators, PositionActuators) else 1.0


class ActorStep(nn.Module):
    """One deterministic actor step on plain tensors, the function the step graph holds.

    ``forward(*observations, *commands[, carry]) -> action[, next_carry]`` in
    :class:`PolicyInterface` order. It runs the task's own ``actor_inputs`` (so a task's choice of
    observations, their order and its normalization are the ones trained with) on a dict of clean
    names, then the actor, then the distribution's ``deterministic()``, exactly as ``TrainedPolicy.act``.
    """

    def __init__(self, policy: TrainedPolicy, interface: PolicyInterface) -> None:
        super().__init__()
        self.task = policy.task
        self.actor = policy.model.actor
        # Registered so the normalizer statistics become graph constants like the weights.
        self.normalizers = policy.task.normalizers
        self.interface = interface
        self.scale = action_scale(policy)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Return the action [B, A] (and the next carry for a recurrent actor)."""
        n_obs = len(self.interface.observations)
        n_cmd = len(self.interface.commands)
        observations = {n: x for (n, _), x in zip(self.interface.observations, inputs[:n_obs], strict=True)}
        commands = {k: x for (k, _), x in zip(self.interface.commands, inputs[n_obs:n_obs + n_cmd], strict=True)}
        recurrent = self.interface.carry_shape is not None
        carry = inputs[-1] if recurrent else self.actor.initial_carry(inputs[0].shape[0])
        x = self.task.actor_inputs(observations, commands)
        dist, next_carry = self.actor(x, carry)
        action = dist.deterministic()
        action = action * self.scale if self.scale != 1.0 else action
        return (action, next_carry) if recurrent else action


def export_metadata(policy: TrainedPolicy, interface: PolicyInterface, opset: int) -> dict[str, Any]:
    """Everything a robot runtime needs next to the graphs, as JSON-ready values (see ``docs/export.md``)."""
    env, actuators = policy.env, policy.env.spec.actuators
    position = isinstance(actuators, PositionActuators)
    if position:
        joint_names = list(actuators.joint_names)
        kp = [k * actuators.kp_scale for k in actuators.kp]
        kd = [k * actuators.kd_scale for k in actuators.kd]
        limits = [t * actuators.torque_limit_scale for t in actuators.soft_torque_limit]
        meaning = "joint position targets, rad (absolute joint angles), in joint_names order"
    else:
        ids = getattr(actuators, "actuator_ids", range(env.model.nu))
        joint_names = [actuator_label(env.model, int(i)) for i in ids]
        kp = kd = limits = None
        meaning = "actuator commands (model ctrl units), in joint_names order"
    return {
        "format": FORMAT,
        "task": policy.config.task_name,
        "checkpoint": str(policy.checkpoint.resolve()),
        "iteration": policy.iteration,
        "ktorch_sim_version": __version__,
        "opset": opset,
        "ctrl_dt": float(env.ctrl_dt),
        "joint_names": joint_names,
        "kp": kp,
        "kd": kd,
        "torque_limits": limits,
        "home_pose": [float(v) for v in policy.spec.action_bias.cpu()],
        "action_scale": action_scale(policy),
        "action_meaning": meaning,
        "action_size": interface.num_actions,
        "observations": [{"name": n, "size": s} for n, s in interface.observations],
        "commands": [{"name": k, "size": s} for k, s in interface.commands],
        "command_definitions": _component_fields(env.spec.commands, {k for k, _ in interface.commands}),
        "observation_joint_names": _scalar_joint_names(env.model),
        "inputs": interface.input_names,
        "outputs": interface.output_names,
        "carry_shape": list(interface.carry_shape) if interface.carry_shape is not None else None,
        "batch": "dynamic (axis 0 of every input and output); the init graph returns batch 1",
        "normalization_in_graph": policy.task.normalizers is not None,
        "deterministic": "action is the mode of the policy's distribution",
    }


def export_policy(policy: TrainedPolicy, out: str | Path, opset: int = DEFAULT_OPSET) -> ExportPaths:
    """Write the step graph, init graph and metadata for ``policy`` to ``out`` and its companions.

    Raises :class:`ExportError` (one line) for an unsupported opset, an unwritable destination or a
    failed export; nothing is left under the final names in that case.
    """
    onnx = _import_onnx()
    paths = export_paths(out)
    check_writable(paths)
    check_opset(opset)
    interface = policy_interface(policy)
    metadata = export_metadata(policy, interface, opset)
    step = _step_model(policy, interface, opset)
    init = _init_model(interface, opset) if interface.carry_shape is not None else None
    for model in (step, init):
        if model is not None:
            _set_metadata(model, metadata)
            onnx.checker.check_model(model, full_check=True)
    with _staged(paths) as tmp:
        if init is not None:
            onnx.save(init, tmp.init)
        tmp.metadata.write_text(json.dumps(metadata, indent=2) + "\n")
        onnx.save(step, tmp.step)
    return paths


def check_opset(opset: int) -> None:
    """Fail with one line unless ``opset`` is one torch's exporter emits and the installed onnx knows."""
    newest = _import_onnx().defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise ExportError(f"--opset {opset} is not supported: use {MIN_OPSET}..{newest} "
                          f"(torch's ONNX exporter emits opset >= {MIN_OPSET}; onnxruntime >= 1.14 runs it)")


def read_metadata(onnx_path: str | Path) -> dict[str, Any]:
    """Return the metadata stored in an exported ONNX file's ``metadata_props``, decoded from JSON."""
    onnx = _import_onnx()
    model = onnx.load(str(onnx_path), load_external_data=False)
    return {p.key: json.loads(p.value) for p in model.metadata_props}


# --- building the graphs ----------------------------------------------------------------------


def _step_model(policy: TrainedPolicy, interface: PolicyInterface, opset: int) -> Any:
    """Trace :class:`ActorStep` with torch's export-based ONNX exporter; dynamic batch axis."""
    from onnx import helper

    step = ActorStep(policy, interface).eval()
    batch = 2  # not 1: a batch of 1 could be specialised into the graph
    device = policy.env.device
    args = [torch.zeros(batch, size, device=device) for _, size in interface.observations + interface.commands]
    if interface.carry_shape is not None:
        args.append(torch.zeros(batch, *interface.carry_shape, device=device))
    dim = torch.export.Dim("batch")
    dynamic_shapes = (tuple({0: dim} for _ in args),)  # one entry: the *inputs tuple
    try:
        with _quiet():
            program = torch.onnx.export(step, tuple(args), input_names=interface.input_names,
                                        output_names=interface.output_names, dynamic_shapes=dynamic_shapes,
                                        opset_version=opset, dynamo=True, optimize=True, verbose=False)
    except Exception as e:  # noqa: BLE001 - the exporter raises many types; report one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ExportError(f"torch.onnx.export failed for the {type(policy.model.actor).__name__}: {first}") from e
    model = program.model_proto
    # torch stamps its newest IR version (10, onnxruntime >= 1.18); the graph is plain opset-K operators on
    # float32, so the oldest IR version with this opset is valid and lets older robot runtimes load it.
    model.ir_version = helper.find_min_ir_version_for(model.opset_import)
    model.graph.doc_string = "ktorch_sim actor step: observations, commands[, carry] -> action[, next_carry]"
    return model


def _init_model(interface: PolicyInterface, opset: int) -> Any:
    """Build a graph with no inputs returning the zero carry [1, *carry_shape] (one Constant node)."""
    from onnx import TensorProto, helper

    shape = [1, *interface.carry_shape]
    zeros = helper.make_tensor("zero_carry", TensorProto.FLOAT, shape, [0.0] * _prod(shape))
    node = helper.make_node("Constant", inputs=[], outputs=[CARRY_INPUT], value=zeros)
    output = helper.make_tensor_value_info(CARRY_INPUT, TensorProto.FLOAT, shape)
    graph = helper.make_graph([node], "ktorch_sim_init", inputs=[], outputs=[output],
                              doc_string="ktorch_sim actor init: the zero carry of a new episode")
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="ktorch_sim")
    # The oldest IR version that has this opset, so any runtime that runs the step graph runs this too
    # (onnx's default is its own newest, which released onnxruntimes may not read yet).
    model.ir_version = helper.find_min_ir_version_for(opsets)
    return model


def _set_metadata(model: Any, metadata: dict[str, Any]) -> None:
    """Store each metadata entry as a JSON string under its key in ``metadata_props``."""
    del model.metadata_props[:]
    for key, value in metadata.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, json.dumps(value)


def _scalar_joint_names(model: mujoco.MjModel) -> list[str]:
    """Hinge/slide joints in qpos order: the column order of joint position/velocity observations."""
    scalar = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
    joints = sorted((int(model.jnt_qposadr[j]), model.joint(j).name) for j in range(model.njnt)
                    if int(model.jnt_type[j]) in scalar)
    return [name for _, name in joints]


def _component_fields(components: Sequence[Any], names: set[str]) -> dict[str, dict[str, Any]]:
    """Class and settings of each named component, JSON-ready: what a robot needs to compute a command itself."""
    out = {}
    for component in components:
        if component.name in names and dataclasses.is_dataclass(component):
            fields = {f.name: getattr(component, f.name) for f in dataclasses.fields(component)}
            out[component.name] = json.loads(json.dumps({"class": type(component).__name__, **fields}, default=str))
    return out


def _prod(values: Sequence[int]) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's progress prints, warnings and log lines (failures still raise)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


# --- writing ----------------------------------------------------------------------------------


def _import_onnx() -> Any:
    """Import onnx, checking for onnxscript too (torch's exporter needs it); one line if either is missing."""
    try:
        import onnx
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise ExportError(f'the {e.name or "onnx"} package is not installed: pip install -e ".[tools]"') from None
    return onnx


def check_writable(paths: ExportPaths) -> None:
    """Fail early, in one line, when the destination directory is missing or read-only."""
    folder = paths.step.parent
    if not folder.is_dir():
        raise ExportError(f"cannot write {paths.step}: directory {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write {paths.step}: directory {folder} is not writable")
    for path in (paths.step, paths.init, paths.metadata):
        if path.is_dir():
            raise ExportError(f"cannot write {path}: it is a directory")


@contextlib.contextmanager
def _staged(paths: ExportPaths) -> Iterator[ExportPaths]:
    """Temporary names for ``paths``; renamed into place (step last) if the block succeeds, else removed."""
    token = uuid.uuid4().hex[:8]
    tmp = ExportPaths(*(p.with_name(f".{p.name}.{token}.tmp") for p in (paths.step, paths.init, paths.metadata)))
    try:
        yield tmp
        for src, dst in ((tmp.init, paths.init), (tmp.metadata, paths.metadata), (tmp.step, paths.step)):
            if src.exists():
                os.replace(src, dst)
            elif dst.exists():
                dst.unlink()  # a feed-forward export replacing a recurrent one: no stale init graph
    except OSError as e:
        raise ExportError(f"cannot write {paths.step}: {e.strerror or e}") from None
    finally:
        for p in (tmp.step, tmp.init, tmp.metadata):
            p.unlink(missing_ok=True)
