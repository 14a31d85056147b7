"""Run directories and RunLogger: JSONL always written, wandb offline without network, failures fall back."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ktorch_sim.training.logging import (
    RunDirError,
    RunLogger,
    make_run_dir,
    read_metrics,
    resolve_wandb_mode,
    wandb_api_key_configured,
)

# Tests that start a real (offline) wandb run are marked slow: the first wandb.init in a process starts the
# wandb-core service and imports wandb's launch/public-API modules: 8-30 s measured on this loaded 2-core machine.
CONFIG = {"task": {"num_envs": 4}, "ppo": {"learning_rate": 3e-4}}


@pytest.fixture
def no_wandb_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


# ----------------------------------------------------------------------------------------------------------------------
# make_run_dir
# ----------------------------------------------------------------------------------------------------------------------


def test_make_run_dir_suffixes(tmp_path: Path) -> None:
    base = tmp_path / "runs" / "nested"
    a = make_run_dir(base, "walk")
    b = make_run_dir(base, "walk")
    c = make_run_dir(base, "walk")
    assert (a, b, c) == (base / "walk", base / "walk-1", base / "walk-2")
    assert all(p.is_dir() for p in (a, b, c))


def test_make_run_dir_default_name(tmp_path: Path) -> None:
    path = make_run_dir(tmp_path, None, task="kbot_walk")
    assert path.parent == tmp_path and path.is_dir()
    stamp, task = path.name[:15], path.name[16:]
    assert task == "kbot_walk"
    assert time.strptime(stamp, "%Y%m%d-%H%M%S")


def test_make_run_dir_unwritable_base(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a directory")
    with pytest.raises(RunDirError) as info:
        make_run_dir(blocker / "runs", "x")
    msg = str(info.value)
    assert msg.startswith(f"cannot create run directory {blocker / 'runs' / 'x'}: ")
    assert msg.endswith("; choose another logging.run_dir") and "\n" not in msg


def test_make_run_dir_bad_name(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="invalid run name '../x'"):
        make_run_dir(tmp_path, "../x")


# ----------------------------------------------------------------------------------------------------------------------
# JSONL
# ----------------------------------------------------------------------------------------------------------------------


def test_disabled_logger_writes_jsonl(tmp_path: Path) -> None:
    with RunLogger(tmp_path, CONFIG, mode="disabled") as logger:
        assert logger.mode == "disabled" and logger.wandb_run is None
        logger.log(
            {
                "loss": torch.tensor(0.25),
                "kl": np.float32(0.5),
                "reward": {"feet_air": torch.tensor([1.5]), "alive": 2},
                "done": True,
                "bad": float("nan"),
                "big": -math.inf,
            },
            iteration=3,
            env_steps=4096,
        )
        # Visible on disk before close: every line is flushed.
        first = (tmp_path / "metrics.jsonl").read_text().splitlines()
        assert len(first) == 1
        assert json.loads(first[0])["bad"] == "NaN"
        logger.log({"loss": 0.125}, iteration=4, env_steps=8192)
        logger.log_video(tmp_path / "missing.mp4", "video", 4)  # no wandb: a silent no-op
    logger.close()  # idempotent
    rows = read_metrics(tmp_path)
    assert rows[1] == {"iteration": 4, "env_steps": 8192, "loss": 0.125}
    row = rows[0]
    keys = ["iteration", "env_steps", "loss", "kl", "reward/feet_air", "reward/alive", "done", "bad", "big"]
    assert list(row) == keys
    assert [row[k] for k in keys[:7]] == [3, 4096, 0.25, 0.5, 1.5, 2.0, 1.0]
    assert math.isnan(row["bad"]) and row["big"] == -math.inf
    assert not (tmp_path / "wandb").exists()


def test_log_rejects_non_scalars_and_reserved_names(tmp_path: Path) -> None:
    with RunLogger(tmp_path, CONFIG, mode="disabled") as logger:
        with pytest.raises(ValueError, match=r"metric 'x' has shape \(3,\)"):
            logger.log({"x": torch.zeros(3)}, 0, 0)
        with pytest.raises(TypeError, match="metric 'name' is a str"):
            logger.log({"name": "walk"}, 0, 0)
        with pytest.raises(ValueError, match="'iteration' is reserved"):
            logger.log({"iteration": 1}, 0, 0)
    assert read_metrics(tmp_path) == []


def test_read_metrics_skips_partial_last_line(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text('{"iteration": 0, "env_steps": 0, "a": 1.0}\n{"iteration": 1, "env_st')
    assert read_metrics(tmp_path) == [{"iteration": 0, "env_steps": 0, "a": 1.0}]
    assert read_metrics(tmp_path / "nothing-here") == []


# ----------------------------------------------------------------------------------------------------------------------
# wandb
# ----------------------------------------------------------------------------------------------------------------------


def test_auto_mode_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_wandb_credentials: None) -> None:
    assert not wandb_api_key_configured()
    assert resolve_wandb_mode("auto") == "offline"
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    os.chmod(netrc, 0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert resolve_wandb_mode("auto") == "online"
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert resolve_wandb_mode("auto") == "online"
    assert resolve_wandb_mode("disabled") == "disabled"
    with pytest.raises(ValueError, match="unknown wandb mode 'cloud'"):
        resolve_wandb_mode("cloud")


@pytest.mark.slow
def test_offline_logger_without_network(
    tmp_path: Path, no_wandb_credentials: None, capfd: pytest.CaptureFixture
) -> None:
    with RunLogger(tmp_path, CONFIG, mode="auto") as logger:
        assert logger.mode == "offline" and logger.wandb_run is not None
        logger.log({"loss": torch.tensor(1.0)}, iteration=0, env_steps=10)
        logger.log({"loss": torch.tensor(0.5)}, iteration=1, env_steps=20)
    assert [r["loss"] for r in read_metrics(tmp_path)] == [1.0, 0.5]
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("run-*.wandb"))
    assert "wandb failed" not in capfd.readouterr().err


def test_wandb_init_failure_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    import wandb

    def broken_init(*args: object, **kwargs: object) -> None:
        raise ConnectionError("no route to host\nsecond line of details")

    monkeypatch.setattr(wandb, "init", broken_init)
    with RunLogger(tmp_path, CONFIG, mode="online") as logger:
        assert logger.mode == "disabled" and logger.wandb_run is None
        logger.log({"loss": 1.0}, iteration=0, env_steps=1)
        logger.log({"loss": 2.0}, iteration=1, env_steps=2)
        logger.log_video(tmp_path / "v.mp4", "video", 1)
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == ["wandb failed (ConnectionError: no route to host); continuing with metrics.jsonl only (offline)"]
    assert [r["loss"] for r in read_metrics(tmp_path)] == [1.0, 2.0]


@pytest.mark.slow
def test_online_failure_falls_back_to_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    import wandb

    real_init = wandb.init
    modes = []

    def online_fails(*args: object, mode: str, **kwargs: object) -> object:
        modes.append(mode)
        if mode == "online":
            raise RuntimeError("bad API key")
        return real_init(*args, mode=mode, **kwargs)

    monkeypatch.setattr(wandb, "init", online_fails)
    with RunLogger(tmp_path, CONFIG, mode="online") as logger:
        assert modes == ["online", "offline"] and logger.mode == "offline"
        logger.log({"loss": 1.0}, iteration=0, env_steps=1)
    err = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("wandb failed (RuntimeError: bad API key); continuing offline")
    assert list((tmp_path / "wandb").glob("offline-run-*"))


@pytest.mark.slow
def test_wandb_log_failure_keeps_jsonl(
    tmp_path: Path, no_wandb_credentials: None, capfd: pytest.CaptureFixture
) -> None:
    with RunLogger(tmp_path, CONFIG, mode="offline") as logger:
        run = logger.wandb_run

        def broken_log(*args: object, **kwargs: object) -> None:
            raise OSError("disk quota exceeded")

        run.log = broken_log
        logger.log({"loss": 1.0}, iteration=0, env_steps=1)
        assert logger.mode == "disabled" and logger.wandb_run is None
        logger.log({"loss": 2.0}, iteration=1, env_steps=2)
    err = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert err == ["wandb failed (OSError: disk quota exceeded); continuing with metrics.jsonl only (offline)"]
    assert [r["loss"] for r in read_metrics(tmp_path)] == [1.0, 2.0]
