"""Reference-motion clips (for AMP and imitation): a small checked ``.npz`` format, loader and saver.

File format: an uncompressed or compressed NumPy ``.npz`` archive (read with ``allow_pickle=False``)
holding

    fps          scalar, frames per second, finite and > 0
    joint_names  1-D array of J unique strings: the robot's hinge/slide joints in qpos order
    qpos         [T, 7 + J] real numbers, T >= 2: free-base position (x, y, z, metres), base
                 orientation quaternion (w, x, y, z, unit norm), then the J joint angles (rad)
    qvel         optional, [T, 6 + J]: base linear velocity (world frame, m/s), base angular
                 velocity (body frame, rad/s), then joint velocities (rad/s), as MuJoCo's qvel
    metadata     optional, a string holding one JSON object: free-form settings (the gait
                 generator writes its parameters there), with these keys checked when present:
                   cyclic          true/false: the clip repeats after its last frame
                   wrap_transform  [dx, dy, dyaw] (m, m, rad): the planar rigid motion that takes
                                   the first frame to the frame after the last one (required when
                                   cyclic is true; ktorch_sim.motion.velocity explains it)
                   command         [vx, vy, wz]: the velocity command the clip performs (m/s, m/s,
                                   rad/s, heading frame)
                   period          gait period in seconds, > 0
                   stance_fraction fraction of a period each foot is on the ground, in (0, 1)

This is MuJoCo's own qpos/qvel layout for a floating-base robot, so a frame can be written
straight into ``MjData.qpos``. Given a model, :func:`load_motion` also requires the joint names
to be the model's hinge/slide joints in the model's order and the widths to be ``model.nq`` /
``model.nv``.

Every problem with a file is one :class:`MotionError` line naming the file, what is wrong and
what is expected. :func:`save_motion` writes atomically (a temporary file renamed over the
target), so a crash never leaves a half-written clip, and refuses a clip that would not load.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import uuid
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
import torch

__all__ = ["BASE_QPOS", "BASE_QVEL", "MotionClip", "MotionError", "check_metadata", "load_motion", "save_motion"]

BASE_QPOS = 7
"""qpos entries of the free base: position (3) and quaternion w, x, y, z (4)."""
BASE_QVEL = 6
"""qvel entries of the free base: linear (3) and angular (3) velocity."""

_REQUIRED = ("fps", "joint_names", "qpos")
_OPTIONAL = ("qvel", "metadata")
_QUAT_TOLERANCE = 1e-3
_MOVABLE = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))


class MotionError(ValueError):
    """A motion file or clip that cannot be used; the one-line message names the file and what is expected."""


@dataclass(frozen=True)
class MotionClip:
    """One reference clip: ``qpos`` [T, 7 + J] (and optionally ``qvel`` [T, 6 + J]) sampled at ``fps``.

    Tensors are float32 on the CPU. ``metadata`` is a JSON-compatible dict (module docstring),
    empty when the file has none. Construction checks shapes, finiteness, ``fps``, the base
    quaternions and the known metadata keys, raising :class:`MotionError`.
    """

    fps: float
    joint_names: tuple[str, ...]
    qpos: torch.Tensor
    qvel: torch.Tensor | None = None
    metadata: Mapping[str, Any] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "joint_names", tuple(self.joint_names))
        _check_clip(self.fps, self.joint_names, self.qpos, self.qvel, source="motion clip")
        metadata = {} if self.metadata is None else self.metadata
        check_metadata(metadata, source="motion clip")
        object.__setattr__(self, "metadata", json.loads(json.dumps(dict(metadata))))  # a private deep copy
        object.__setattr__(self, "fps", float(self.fps))
        for name in ("qpos", "qvel"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, value.detach().to(device="cpu", dtype=torch.float32))

    @property
    def num_frames(self) -> int:
        """Number of frames T."""
        return int(self.qpos.shape[0])

    @property
    def duration(self) -> float:
        """Seconds from the first frame to the last: ``(T - 1) / fps``."""
        return (self.num_frames - 1) / self.fps

    @property
    def cyclic(self) -> bool:
        """True if the clip repeats after its last frame (metadata ``cyclic``)."""
        return bool(self.metadata.get("cyclic", False))  # type: ignore[union-attr]

    @property
    def wrap_transform(self) -> tuple[float, float, float] | None:
        """The cyclic clip's (dx, dy, dyaw) from the first frame to the one after the last; None if not cyclic."""
        if not self.cyclic:
            return None
        dx, dy, dyaw = self.metadata["wrap_transform"]  # type: ignore[index]
        return float(dx), float(dy), float(dyaw)


def _finite_number(value: Any) -> bool:
    """Tell whether ``value`` is a real, finite int or float (not a bool)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _triple(value: Any) -> bool:
    """Tell whether ``value`` is a list of three finite numbers."""
    return isinstance(value, (list, tuple)) and len(value) == 3 and all(_finite_number(v) for v in value)


# key -> (is the value acceptable?, what is expected)
_METADATA_KEYS: dict[str, tuple[Any, str]] = {
    "cyclic": (lambda v: isinstance(v, bool), "true or false"),
    "wrap_transform": (_triple, "[dx, dy, dyaw]: three finite numbers (m, m, rad)"),
    "command": (_triple, "[vx, vy, wz]: three finite numbers (m/s, m/s, rad/s)"),
    "period": (lambda v: _finite_number(v) and v > 0, "a finite number of seconds > 0"),
    "stance_fraction": (lambda v: _finite_number(v) and 0 < v < 1, "a number in (0, 1)"),
}


def check_metadata(metadata: Any, source: str) -> None:
    """Raise MotionError (one line) if ``metadata`` is not a JSON object or a known key has a bad value."""
    if not isinstance(metadata, Mapping) or not all(isinstance(k, str) for k in metadata):
        raise MotionError(f"{source}: metadata is {type(metadata).__name__}; expected a JSON object "
                          "(a dict with string keys)")
    for key, (acceptable, expected) in _METADATA_KEYS.items():
        if key in metadata and not acceptable(metadata[key]):
            raise MotionError(f"{source}: metadata {key!r} is {metadata[key]!r}; expected {expected}")
    try:
        json.dumps(dict(metadata), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise MotionError(f"{source}: metadata holds a value JSON cannot store ({e}); expected strings, finite "
                          "numbers, booleans, lists and objects") from None
    if metadata.get("cyclic") is True and "wrap_transform" not in metadata:
        raise MotionError(f"{source}: metadata says cyclic but has no 'wrap_transform'; expected [dx, dy, dyaw] "
                          "(use [0, 0, 0] for a clip that does not move)")


def _parse_metadata(array: np.ndarray, source: str) -> dict[str, Any]:
    """Return the metadata dict stored in ``array`` (a string holding a JSON object); MotionError if malformed."""
    if array.ndim != 0 or array.dtype.kind != "U":
        raise MotionError(f"{source}: metadata has shape {list(array.shape)} and dtype {array.dtype}; expected "
                          "one string holding a JSON object")
    try:
        metadata = json.loads(str(array))
    except json.JSONDecodeError as e:
        raise MotionError(f"{source}: metadata is not valid JSON ({e.msg} at character {e.pos}); expected "
                          "one JSON object") from None
    check_metadata(metadata, source)
    return metadata


def _check_clip(fps: Any, joint_names: Any, qpos: Any, qvel: Any, source: str) -> None:
    """Raise MotionError (``<source>: <problem>; expected ...``) for anything the format forbids."""

    def fail(problem: str) -> None:
        raise MotionError(f"{source}: {problem}")

    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
        fail(f"fps is {fps!r}; expected a finite number of frames per second > 0")
    if not isinstance(joint_names, tuple) or not all(isinstance(n, str) and n for n in joint_names):
        fail("joint_names must be a 1-D array of non-empty strings")
    duplicates = sorted({n for n in joint_names if joint_names.count(n) > 1})
    if duplicates:
        fail(f"joint_names lists {duplicates[0]!r} twice; expected each joint once")
    num_joints = len(joint_names)
    for name, value, base in (("qpos", qpos, BASE_QPOS), ("qvel", qvel, BASE_QVEL)):
        if value is None:
            continue
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            fail(f"{name} must be an array of real numbers")
        width = base + num_joints
        if value.ndim != 2 or value.shape[1] != width:
            fail(f"{name} has shape {list(value.shape)}; expected [frames, {width}] "
                 f"({base} free-base values + {num_joints} joints)")
        if not torch.isfinite(value).all():
            frame = int(torch.nonzero(~torch.isfinite(value))[0, 0])
            fail(f"{name} has a non-finite value (NaN or inf) in frame {frame}; expected finite numbers")
    if qpos.shape[0] < 2:
        fail(f"qpos has {qpos.shape[0]} frame(s); expected at least 2")
    if qvel is not None and qvel.shape[0] != qpos.shape[0]:
        fail(f"qvel has {qvel.shape[0]} frames but qpos has {qpos.shape[0]}; expected the same number")
    norm_error = (torch.linalg.vector_norm(qpos[:, 3:7].double(), dim=1) - 1).abs()
    if norm_error.max() > _QUAT_TOLERANCE:
        frame = int(norm_error.argmax())
        fail(f"the base quaternion qpos[:, 3:7] has norm {float(norm_error[frame]) + 1:.4g} in frame {frame}; "
             "expected unit quaternions (w, x, y, z)")


def _read_archive(path: Path) -> dict[str, np.ndarray]:
    """Return the arrays of the .npz at ``path``; MotionError for a missing, unreadable or non-npz file."""
    if not path.exists():
        raise MotionError(f"{path}: no such motion file; expected an .npz with fps, joint_names, qpos[, qvel, "
                          "metadata]")
    if not path.is_file():
        raise MotionError(f"{path}: is a directory; expected an .npz motion file")
    if not zipfile.is_zipfile(path):
        raise MotionError(f"{path}: not a complete .npz (zip) archive (another format, or truncated); expected an "
                          ".npz written by numpy.savez or ktorch_sim.motion.save_motion")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MotionError(f"{path}: cannot read the archive ({reason}); expected an .npz of plain arrays "
                          "(no pickled objects)") from None


def _model_joints(model: mujoco.MjModel) -> tuple[str, ...]:
    return tuple(mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in range(model.njnt)
                 if int(model.jnt_type[j]) in _MOVABLE)


def _check_against_model(clip: MotionClip, model: mujoco.MjModel, source: str) -> None:
    expected = _model_joints(model)
    if clip.joint_names != expected:
        missing = [n for n in expected if n not in clip.joint_names]
        extra = [n for n in clip.joint_names if n not in expected]
        if missing:
            problem = f"joint_names lacks the model's joint {missing[0]!r}"
        elif extra:
            problem = f"joint_names has {extra[0]!r}, which is not a hinge/slide joint of the model"
        else:
            first = next(i for i, (a, b) in enumerate(zip(clip.joint_names, expected, strict=True)) if a != b)
            problem = f"joint_names[{first}] is {clip.joint_names[first]!r} but the model's joint {first} is " \
                      f"{expected[first]!r}"
        raise MotionError(f"{source}: {problem}; expected the model's {len(expected)} hinge/slide joints in "
                          "model order")
    if clip.qpos.shape[1] != model.nq:
        raise MotionError(f"{source}: qpos has width {clip.qpos.shape[1]} but the model has nq = {model.nq}; "
                          "expected a free-base model whose qpos is the base then these joints")
    if clip.qvel is not None and clip.qvel.shape[1] != model.nv:
        raise MotionError(f"{source}: qvel has width {clip.qvel.shape[1]} but the model has nv = {model.nv}")


def _as_tensor(array: np.ndarray, name: str, source: str) -> torch.Tensor:
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)) or \
            array.dtype == np.bool_:
        raise MotionError(f"{source}: {name} has dtype {array.dtype}; expected an array of real numbers")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def load_motion(path: str | Path, model: mujoco.MjModel | None = None) -> MotionClip:
    """Read and check the clip at ``path`` (format in the module docstring); optionally against ``model``.

    Raises :class:`MotionError` (one line naming the file) for every malformed case.
    """
    path = Path(path).expanduser()
    data = _read_archive(path)
    source = str(path)
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise MotionError(f"{source}: missing key {missing[0]!r} (has: {', '.join(sorted(data)) or 'nothing'}); "
                          f"expected keys {', '.join(_REQUIRED)} and optionally {', '.join(_OPTIONAL)}")
    unknown = sorted(set(data) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise MotionError(f"{source}: unknown key {unknown[0]!r}; expected only "
                          f"{', '.join(_REQUIRED + _OPTIONAL)}")
    fps_array, names_array = data["fps"], data["joint_names"]
    if fps_array.size != 1 or not np.issubdtype(fps_array.dtype, np.number) or fps_array.dtype == np.bool_:
        raise MotionError(f"{source}: fps has shape {list(fps_array.shape)} and dtype {fps_array.dtype}; "
                          "expected one number (frames per second)")
    if names_array.ndim != 1 or names_array.dtype.kind != "U":
        raise MotionError(f"{source}: joint_names has shape {list(names_array.shape)} and dtype "
                          f"{names_array.dtype}; expected a 1-D array of strings")
    qpos = _as_tensor(data["qpos"], "qpos", source)
    qvel = _as_tensor(data["qvel"], "qvel", source) if "qvel" in data else None
    fps, names = float(fps_array.reshape(())), tuple(str(n) for n in names_array)
    _check_clip(fps, names, qpos, qvel, source)
    metadata = _parse_metadata(data["metadata"], source) if "metadata" in data else None
    clip = MotionClip(fps=fps, joint_names=names, qpos=qpos, qvel=qvel, metadata=metadata)
    if model is not None:
        _check_against_model(clip, model, source)
    return clip


def save_motion(path: str | Path, clip: MotionClip) -> Path:
    """Write ``clip`` to ``path`` as an .npz atomically; returns the path.

    The clip is checked first, so a file that :func:`load_motion` would reject is never written.
    Raises :class:`MotionError` if the file cannot be written (the previous file, if any, is kept).
    """
    path = Path(path).expanduser()
    _check_clip(clip.fps, clip.joint_names, clip.qpos, clip.qvel, source=str(path))
    check_metadata(clip.metadata or {}, source=str(path))
    arrays = {"fps": np.asarray(clip.fps, dtype=np.float64), "joint_names": np.asarray(clip.joint_names, dtype=str),
              "qpos": clip.qpos.detach().cpu().numpy()}
    if clip.qvel is not None:
        arrays["qvel"] = clip.qvel.detach().cpu().numpy()
    if clip.metadata:
        arrays["metadata"] = np.asarray(json.dumps(dict(clip.metadata), allow_nan=False, sort_keys=True))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise MotionError(f"{path}: cannot write the motion file ({e.strerror or e}); expected a writable "
                          "directory") from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    return path
