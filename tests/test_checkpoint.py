"""Checkpoints: atomic writes survive crashes, corrupt files give one clear error, RNG state round-trips."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import ktorch_sim.checkpoint as ckpt_mod
from ktorch_sim.checkpoint import (
    CheckpointError,
    CheckpointManager,
    capture_rng_state,
    check_compatible,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)


def make_state(seed: int = 0, iteration: int = 0) -> dict:
    """A complete, realistic checkpoint state: a tiny model after one AdamW step."""
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    return {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "normalizer": None,
        "curriculum": {"level": torch.tensor([0.5, 0.25])},
        "ppo": {"kl_coef": 0.01, "learning_rate": 3e-4},
        "rng": capture_rng_state({}),
        "counters": {"iteration": iteration, "env_steps": 1000 * iteration, "elapsed_seconds": 1.5},
        "config": {"task": {"num_envs": 4}, "model": {"hidden_size": 256, "depth": 2}},
    }


def test_save_load_roundtrip(tmp_path: Path) -> None:
    state = make_state(seed=3, iteration=7)
    path = tmp_path / "a" / "ckpt.pt"
    save_checkpoint(path, state)
    loaded = load_checkpoint(path)
    assert loaded["format_version"] == 1
    assert loaded["counters"] == {"iteration": 7, "env_steps": 7000, "elapsed_seconds": 1.5}
    assert loaded["config"] == state["config"]
    for k, v in state["model"].items():
        assert torch.equal(loaded["model"][k], v)
    assert torch.equal(loaded["optimizer"]["state"][0]["exp_avg"], state["optimizer"]["state"][0]["exp_avg"])
    assert torch.equal(loaded["curriculum"]["level"], torch.tensor([0.5, 0.25]))
    assert not list(path.parent.glob("*.tmp"))


def test_save_rejects_incomplete_state(tmp_path: Path) -> None:
    state = make_state()
    del state["optimizer"]
    with pytest.raises(CheckpointError, match="missing keys: optimizer"):
        save_checkpoint(tmp_path / "x.pt", state)
    assert not (tmp_path / "x.pt").exists()


def test_crash_before_rename_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, make_state(seed=1, iteration=1))
    old_bytes = path.read_bytes()

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt("simulated crash before os.replace")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, make_state(seed=2, iteration=2))
    monkeypatch.undo()
    assert path.read_bytes() == old_bytes
    assert load_checkpoint(path)["counters"]["iteration"] == 1


def test_crash_mid_write_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.save dies after writing half its bytes: the final name still holds the old complete file."""
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, make_state(iteration=1))
    real_save = torch.save

    def half_save(obj: object, f: object) -> None:
        import io

        buf = io.BytesIO()
        real_save(obj, buf)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt_mod.torch, "save", half_save)
    with pytest.raises(CheckpointError, match=r"cannot write checkpoint .*No space left"):
        save_checkpoint(path, make_state(iteration=2))
    monkeypatch.undo()
    assert load_checkpoint(path)["counters"]["iteration"] == 1
    assert not list(tmp_path.glob("*.tmp"))


def test_manager_latest_after_crash_leftovers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mgr = CheckpointManager(tmp_path, keep_last=3)
    first = mgr.save(make_state(iteration=10), 10)
    assert first == tmp_path / "checkpoints" / "ckpt_00000010.pt"
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "ckpt_00000010.pt"

    # A crash while writing iteration 20: os.replace never happens, and a truncated temp file is left behind.
    full = first.read_bytes()
    leftover = tmp_path / "checkpoints" / "ckpt_00000020.pt.1234.deadbeef.tmp"
    leftover.write_bytes(full[: len(full) // 2])
    monkeypatch.setattr(os, "replace", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        mgr.save(make_state(iteration=20), 20)
    monkeypatch.undo()

    assert not (tmp_path / "checkpoints" / "ckpt_00000020.pt").exists()
    latest = mgr.latest()
    assert latest == first
    assert load_checkpoint(latest)["counters"]["iteration"] == 10

    # The next successful save cleans the leftover up.
    mgr.save(make_state(iteration=30), 30)
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))


def test_manager_latest_falls_back_when_pointer_is_bad(tmp_path: Path) -> None:
    mgr = CheckpointManager(tmp_path, keep_last=5)
    assert mgr.latest() is None
    p10 = mgr.save(make_state(iteration=10), 10)
    p20 = mgr.save(make_state(iteration=20), 20)
    pointer = tmp_path / "checkpoints" / "latest"

    pointer.unlink()  # missing pointer -> newest file
    assert mgr.latest() == p20

    pointer.write_text("ckpt_00000099.pt\n")  # points to a missing file
    assert mgr.latest() == p20

    pointer.write_text("../../etc/passwd\n")  # never follows a path outside the directory
    assert mgr.latest() == p20

    # Pointer to a corrupt newest file (e.g. copied in by hand, cut short) -> newest loadable.
    data = p20.read_bytes()
    p20.write_bytes(data[: len(data) // 2])
    pointer.write_text("ckpt_00000020.pt\n")
    assert mgr.latest() == p10


def test_keep_last_pruning(tmp_path: Path) -> None:
    mgr = CheckpointManager(tmp_path, keep_last=2)
    for it in (1, 2, 3, 4):
        mgr.save(make_state(iteration=it), it)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["ckpt_00000003.pt", "ckpt_00000004.pt", "latest"]
    assert mgr.latest() == tmp_path / "checkpoints" / "ckpt_00000004.pt"
    with pytest.raises(ValueError, match="keep_last"):
        CheckpointManager(tmp_path, keep_last=0)


def test_due_is_time_based(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(ckpt_mod.time, "monotonic", lambda: now[0])
    mgr = CheckpointManager(tmp_path, save_every_seconds=60.0)
    assert not mgr.due()
    now[0] = 159.9
    assert not mgr.due()
    now[0] = 160.0
    assert mgr.due()
    mgr.save(make_state(), 0)
    assert not mgr.due()
    now[0] = 220.0
    assert mgr.due()


def test_truncated_checkpoint_error(tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    save_checkpoint(good, make_state())
    data = good.read_bytes()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt checkpoint") as info:
        load_checkpoint(bad)
    msg = str(info.value)
    assert str(bad) in msg and "delete it or resume from an earlier one" in msg
    assert "\n" not in msg


def test_garbage_and_empty_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint at all \x00\x01\x02" * 10)
    with pytest.raises(CheckpointError, match="truncated or corrupt checkpoint"):
        load_checkpoint(garbage)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="truncated or corrupt checkpoint"):
        load_checkpoint(empty)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"checkpoint .*nope\.pt does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="is not a file"):
        load_checkpoint(tmp_path)


def test_wrong_format(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"model": {}}, path)
    with pytest.raises(CheckpointError, match=r"is not a ktorch_sim checkpoint \(missing keys: format_version, opt"):
        load_checkpoint(path)
    torch.save(torch.zeros(3), path)
    with pytest.raises(CheckpointError, match="not a ktorch_sim checkpoint"):
        load_checkpoint(path)
    state = {**make_state(), "format_version": 2}
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="format_version 2; this ktorch_sim reads format_version 1"):
        load_checkpoint(path)


def _draws(gen: torch.Generator) -> tuple:
    return (
        torch.rand(5).tolist(),
        np.random.rand(5).tolist(),
        [random.random() for _ in range(5)],
        torch.rand(5, generator=gen).tolist(),
        torch.randn(3).tolist(),
    )


def test_rng_capture_restore_repeats_draws(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(1234)
    torch.manual_seed(5)
    np.random.seed(6)
    random.seed(7)
    _draws(gen)  # advance everything away from the seeds
    state = capture_rng_state({"env": gen})
    expected = _draws(gen)

    # Scramble every source, then restore through a real checkpoint file.
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    gen.manual_seed(99)
    save_checkpoint(tmp_path / "c.pt", {**make_state(), "rng": state})
    # make_state itself reseeded torch; restore must undo that too.
    restore_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"], {"env": gen})
    assert _draws(gen) == expected


def test_rng_restore_missing_generator() -> None:
    state = capture_rng_state({"env": torch.Generator()})
    with pytest.raises(CheckpointError, match="no RNG state for generator 'policy' \\(it has: env\\)"):
        restore_rng_state(state, {"policy": torch.Generator()})


def test_check_compatible_message() -> None:
    old = {"task": {"num_envs": 4}, "model": {"hidden_size": 256, "depth": 2, "obs": ["a", "b"]}}
    new = {"task": {"num_envs": 4}, "model": {"hidden_size": 128, "depth": 3, "obs": ("a", "b")}}
    check_compatible(old, new, ["task.num_envs", "model.obs"])  # lists and tuples are the same
    with pytest.raises(CheckpointError) as info:
        check_compatible(old, new, ["task.num_envs", "model.hidden_size", "model.depth"], path="runs/x/ckpt.pt")
    assert str(info.value) == ("checkpoint runs/x/ckpt.pt was trained with model.hidden_size=256, this config has 128; "
                               "use the checkpoint's value to continue it, or start a new run")
    with pytest.raises(CheckpointError, match="trained with model.width=<unset>, this config has 64"):
        check_compatible(old, {"model": {"width": 64}}, ["model.width"])
