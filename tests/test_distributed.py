"""Training on several processes (torch.distributed, Gloo, 2 CPU processes): ranks stay bit-identical, the
all-reduced gradient is the gradient of the whole batch, only rank 0 writes, a 2-rank checkpoint resumes on
1 rank, and a single process is unchanged.

One 2-rank job (``torch.multiprocessing.spawn``) runs every multi-process check at once and saves what each
rank saw; the tests below read it (:func:`two_ranks`), so the processes start once per test session.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from ktorch_sim.algorithms import ppo as ppo_module
from ktorch_sim.algorithms.normalizer import RunningNormalizer
from ktorch_sim.algorithms.ppo import PPOLossConfig, ppo_losses
from ktorch_sim.training import distributed
from ktorch_sim.training.distributed import Distributed
from ktorch_sim.training.trainer import Trainer
from tests.test_learning import cartpole_config

WORLD = 2
ITERATIONS = 3
ENVS, STEPS = 8, 20  # worlds per rank, steps per rollout (0.4 s at ctrl_dt 0.02)


def small_config(run_dir: str) -> Any:
    """The cart-pole GRU run, small, with every synchronized statistic switched on.

    A KL target so small that every update's actor stops after its first minibatch makes the rest of each
    update value-only steps (the critic's replay alone), and ``preserve_values`` rescales the critic's output
    layer when the all-reduced return scale moves: both must keep the ranks bit-identical too.
    """
    config = cartpole_config(run_dir)
    ppo = dataclasses.replace(config.ppo, batch_size=4, num_passes=2, rollout_length_seconds=0.4,
                              normalize_observations=True, normalize_rewards=True, adaptive_lr=True,
                              target_kl=1e-9, target_kl_stops="actor", preserve_values=True,
                              max_steps=ITERATIONS * ENVS * STEPS * WORLD)
    return dataclasses.replace(config, task=dataclasses.replace(config.task, num_envs=ENVS), ppo=ppo,
                               model=dataclasses.replace(config.model, hidden_size=16))


# --- pieces each rank computes on its half of a batch ------------------------------------------

def ppo_gradient(sync: Distributed, rows: slice) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Gradients of the PPO loss (no advantage normalization: a plain mean) of a tiny Gaussian policy on
    ``rows`` of a fixed batch, averaged over ranks by ``sync``; and the summed (loss, valid count)."""
    g = torch.Generator().manual_seed(0)
    obs, actions = torch.randn(8, 5, 3, generator=g), torch.randn(8, 5, 2, generator=g)
    old_log_probs, old_values = -torch.rand(8, 5, generator=g) * 3, torch.randn(8, 5, generator=g)
    advantages, targets = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 3)
    out = model(obs[rows])
    policy = torch.distributions.Normal(out[..., :2], 1.0)
    mask = torch.ones_like(advantages[rows], dtype=torch.bool)
    losses = ppo_losses(policy.log_prob(actions[rows]).sum(-1), old_log_probs[rows], out[..., 2], old_values[rows],
                        advantages[rows], targets[rows], policy.entropy().sum(-1), mask,
                        PPOLossConfig(normalize_advantages=False, entropy_coef=0.01))
    total = losses["loss_objective"] + losses["loss_critic"] + losses["loss_entropy"]
    total.backward()
    checks = sync.average_gradients(model.parameters(), torch.stack([total.detach(), mask.sum().float()]))
    return [p.grad.clone() for p in model.parameters()], checks


def normalizer_after_update(sync: Distributed, rows: slice) -> dict[str, torch.Tensor]:
    """A running normalizer's state after one update with ``rows`` of a fixed batch, synchronized by ``sync``."""
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(1)) * 3 + 5
    norm = RunningNormalizer(4)
    distributed.attach_normalizers([norm], sync)
    norm.update(x[rows])
    return {k: v.clone() for k, v in norm.state_dict().items()}


def _write_watch(root: str, seen: list[str]) -> Any:
    """An audit hook recording every file opened for writing, directory made or file moved under ``root``.

    ``torch.save`` to a path writes from C++ (no audit event), but a checkpoint is written to a temporary
    name and moved into place (``os.replace``), and the run directory is made with ``os.mkdir``: both seen.
    """
    def hook(event: str, args: tuple) -> None:
        if event == "open" and isinstance(args[0], (str, Path)) and str(args[0]).startswith(root):
            mode, flags = args[1], args[2]
            if (mode and any(c in mode for c in "wax+")) or (flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)):
                seen.append(f"open {args[0]}")
        elif event in ("os.mkdir", "os.rename", "os.replace") and str(args[0]).startswith(root):
            seen.append(f"{event} {args[0]}")
    return hook


def _rank_main(rank: int, world: int, port: int, root: str, results: str) -> None:
    """One rank of the 2-rank job: the gradient and normalizer checks, then a short training run."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), KTORCH_SIM_DIST_TIMEOUT_S="60")
    writes: list[str] = []
    if rank != 0:
        sys.addaudithook(_write_watch(root, writes))
    assert distributed.init_from_env()
    sync = Distributed.current()
    half = slice(rank * 8 // world, (rank + 1) * 8 // world)
    out: dict[str, Any] = {"grads": ppo_gradient(sync, half),
                           "normalizer": normalizer_after_update(sync, slice(rank * 32, (rank + 1) * 32))}
    # Rank 1 is told another run_dir: it must use rank 0's directory and create nothing of its own.
    trainer = Trainer(small_config(f"{root}/runs" if rank == 0 else f"{root}/rank{rank}_runs"))
    generator_state = trainer.env.generator.get_state().clone()
    trainer.train(progress=False)
    out.update(model={k: v.clone() for k, v in trainer.model.state_dict().items()},
               normalizers={k: v.clone() for k, v in trainer.task.normalizers.state_dict().items()},
               reward_scale=trainer.ppo.reward_scaler.stats.state_dict(), lr=trainer.ppo.learning_rate,
               kl=trainer.ppo.kl.state_dict(), level=trainer.curriculum_state["level"].clone(),
               iteration=trainer.iteration, env_steps=trainer.env_steps, run_dir=str(trainer.run_dir),
               env_seed_state=generator_state, last=trainer.last_metrics, writes=writes)
    distributed.shutdown()
    torch.save(out, f"{results}/rank{rank}.pt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> tuple[Path, list[dict[str, Any]]]:
    """(the job's root directory, what each rank saved) for one 2-rank run."""
    root, results = tmp_path_factory.mktemp("dist_root"), tmp_path_factory.mktemp("dist_results")
    torch.multiprocessing.spawn(_rank_main, args=(WORLD, _free_port(), str(root), str(results)), nprocs=WORLD,
                                join=True)
    return root, [torch.load(results / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


# --- the tests -----------------------------------------------------------------------------------

def test_parameters_stay_bit_identical_across_ranks(two_ranks):
    _, (a, b) = two_ranks
    assert a["iteration"] == b["iteration"] == ITERATIONS
    for key in ("model", "normalizers", "reward_scale"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs between ranks"
    assert a["lr"] == b["lr"] and a["kl"] == b["kl"] and torch.equal(a["level"], b["level"])
    assert a["last"] == {**b["last"], **{k: a["last"][k] for k in a["last"] if k.startswith(("time/", "perf/"))}}
    # Every update stepped the actor once, then the critic alone (small_config's KL target).
    assert a["last"]["loss/minibatches_applied"] == 1.0
    # ... while each rank ran its own worlds: a seed stream of its own.
    assert not torch.equal(a["env_seed_state"], b["env_seed_state"])


def test_all_reduced_gradient_equals_the_whole_batch_gradient(two_ranks):
    _, ranks = two_ranks
    whole, checks = ppo_gradient(Distributed(), slice(0, 8))
    for rank in ranks:
        grads, summed = rank["grads"]
        for g, expected in zip(grads, whole, strict=True):
            torch.testing.assert_close(g, expected, rtol=1e-5, atol=1e-6)
        assert summed[1].item() == checks[1].item() == 40  # valid steps summed over ranks
    for name, value in normalizer_after_update(Distributed(), slice(0, 64)).items():
        for rank in ranks:
            torch.testing.assert_close(rank["normalizer"][name], value, rtol=1e-5, atol=1e-5)


def test_only_rank_zero_writes(two_ranks):
    root, (a, b) = two_ranks
    assert b["writes"] == [], "rank 1 wrote: " + "; ".join(b["writes"][:5])
    assert a["run_dir"] == b["run_dir"] and Path(a["run_dir"]).parent == root / "runs"
    assert sorted(p.name for p in root.iterdir()) == ["runs"]
    lines = (Path(a["run_dir"]) / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == ITERATIONS  # one line per iteration, not one per rank
    assert a["env_steps"] == ITERATIONS * ENVS * STEPS * WORLD  # env steps count every rank's worlds


def test_two_rank_checkpoint_resumes_on_one_rank(two_ranks):
    _, (a, _) = two_ranks
    config = small_config(str(Path(a["run_dir"]).parent))
    config = dataclasses.replace(config, ppo=dataclasses.replace(config.ppo, max_steps=config.ppo.max_steps * 2))
    latest = Path(a["run_dir"], "checkpoints", "latest").read_text().strip()
    assert torch.load(Path(a["run_dir"], "checkpoints", latest), weights_only=False)["distributed"] == {"world_size": 2}
    trainer = Trainer(config, resume=a["run_dir"])
    assert trainer.dist.world_size == 1 and trainer.iteration == ITERATIONS
    for name, tensor in a["model"].items():
        assert torch.equal(trainer.model.state_dict()[name], tensor), name
    for name, tensor in a["normalizers"].items():
        assert torch.equal(trainer.task.normalizers.state_dict()[name], tensor), name
    metrics = trainer.iterate()
    assert trainer.iteration == ITERATIONS + 1 and trainer.env_steps == a["env_steps"] + ENVS * STEPS
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())


def test_single_process_path_is_unchanged(tmp_path, monkeypatch):
    """No torchrun: nothing initialized, the PPO hooks and normalizers are the one-process defaults; and
    ``WORLD_SIZE=1`` (torchrun with one process) trains exactly the same numbers."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    plain = Trainer(small_config(str(tmp_path / "a")))
    assert not plain.dist.active and plain.dist.is_main
    assert plain.ppo.average_gradients is ppo_module._keep_extras and plain.ppo.average_kl is ppo_module._identity
    assert all(n.reduce is None for n in plain.task.normalizers.values())
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    one = Trainer(small_config(str(tmp_path / "b")))
    first, second = plain.iterate(), one.iterate()
    assert {k: v for k, v in first.items() if not k.startswith(("time/", "perf/"))} == \
        {k: v for k, v in second.items() if not k.startswith(("time/", "perf/"))}
    for name, tensor in plain.model.state_dict().items():
        assert torch.equal(tensor, one.model.state_dict()[name]), name


def _dying_rank_main(rank: int, world: int, port: int, results: str) -> None:
    """Rank 1 dies right after joining; rank 0's next collective must fail with one clear line, fast."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), KTORCH_SIM_DIST_TIMEOUT_S="20")
    distributed.init_from_env()
    sync = Distributed.current()
    sync.sum_(torch.ones(3))  # both alive: fine
    if rank == 1:
        os._exit(3)  # as a crash or a SIGKILL would: no goodbye to the group
    start = time.monotonic()
    try:
        for _ in range(100):
            sync.sum_(torch.ones(3))
        message = "no error"
    except distributed.DistributedError as e:
        message = str(e)
    Path(results, "rank0.txt").write_text(f"{time.monotonic() - start:.1f}\n{message}")
    os._exit(0)  # the group is broken: skip its teardown


def test_a_dying_rank_is_one_clear_error_not_a_hang(tmp_path):
    context = torch.multiprocessing.spawn(_dying_rank_main, args=(WORLD, _free_port(), str(tmp_path)), nprocs=WORLD,
                                          join=False)
    for process in context.processes:
        process.join(60)
        assert not process.is_alive(), "a rank hung"
    seconds, message = (tmp_path / "rank0.txt").read_text().split("\n", 1)
    assert float(seconds) < 25, f"rank 0 noticed only after {seconds} s"
    assert message.startswith("rank 0/2: all_reduce failed") and "--resume" in message and "\n" not in message


def test_rank_seeds():
    """Rank 0 of a fresh run keeps the run seed (one process is unchanged); every other (rank, iteration)
    gets its own seed, a valid torch seed, the same in every process."""
    assert distributed.rank_seed(1337, 0) == 1337
    seeds = {distributed.rank_seed(1337, r, i) for r in range(4) for i in (0, 10)}
    assert len(seeds) == 8 and all(0 <= s < 2**63 for s in seeds)
    again = distributed.rank_seed(1337, 1, 10)
    assert distributed.rank_seed(1337, 1, 10) == again != distributed.rank_seed(1338, 1, 10)


def test_torchrun_cli_two_processes(tmp_path):
    """``torchrun --nproc-per-node 2 -m ktorch_sim.train``: one run directory, one metrics line per iteration
    with every rank's env steps, one summary; the run then resumes in a single process."""
    tiny = ["--set", "task.name=tests.cartpole:CartpoleTask", "--set", "task.num_envs=8", "--set", "ppo.batch_size=4",
            "--set", "ppo.rollout_length_seconds=0.2", "--set", "model.hidden_size=16", "--set", "model.depth=1",
            "--set", "logging.wandb_mode=disabled", "--set", f"logging.run_dir={tmp_path}", "--no-progress"]
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                          str(_free_port()), "-m", "ktorch_sim.train", *tiny, "--set", "ppo.max_steps=320"],
                         cwd=repo, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("run directory: ") == 1 and out.stdout.count("last iteration") == 1, out.stdout
    (run_dir,) = tmp_path.iterdir()
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["iteration"] for x in lines] == [1, 2] and lines[-1]["env_steps"] == 320  # 2 x (8 worlds x 10 steps x 2)
    again = subprocess.run([sys.executable, "-m", "ktorch_sim.train", *tiny, "--set", "ppo.max_steps=400",
                            "--resume", str(run_dir)], cwd=repo, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["iteration"] for x in lines] == [1, 2, 3] and lines[-1]["env_steps"] == 400  # + 8 x 10, one process


# --- AMP under torchrun: the discriminator is one network across ranks ------------------------------------

def _amp_rank_main(rank: int, world: int, port: int, root: str, results: str) -> None:
    """One rank of a 2-rank AMP job (the arm of benchmarks/amp_arm.py, 2 iterations); saves what must agree."""
    from tools.amp_learning_check import arm_config

    from benchmarks.amp_arm import AMPArmTask

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), KTORCH_SIM_DIST_TIMEOUT_S="60")
    assert distributed.init_from_env()
    config = arm_config(f"{root}/runs")
    config = dataclasses.replace(config, task=dataclasses.replace(config.task, num_envs=8),
                                 ppo=dataclasses.replace(config.ppo, rollout_length_seconds=0.5, minibatch_size=40,
                                                         num_passes=2, max_steps=2 * 8 * 10 * world),
                                 amp=dataclasses.replace(config.amp, batch_size=32, hidden_sizes=(16,)))
    trainer = Trainer(config, task=AMPArmTask(config.task))
    trainer.train(progress=False)
    amp = trainer.ppo.amp
    torch.save({"discriminator": {k: v.clone() for k, v in amp.discriminator.state_dict().items()},
                "normalizer": {k: v.clone() for k, v in amp.normalizer.state_dict().items()},
                "model": {k: v.clone() for k, v in trainer.model.state_dict().items()},
                "replay": amp.replay.state_dict(), "iteration": trainer.iteration}, f"{results}/amp{rank}.pt")
    distributed.shutdown()


def test_amp_discriminator_and_its_normalizer_stay_identical_across_ranks(tmp_path):
    """Two ranks train AMP for 2 iterations: discriminator weights, its feature statistics and the policy are
    bit-equal on both (rank 0's copies broadcast at the start, gradients averaged, moments merged), while each
    rank's replay buffer holds its own worlds' transitions."""
    root, results = tmp_path / "root", tmp_path / "results"
    root.mkdir()
    results.mkdir()
    torch.multiprocessing.spawn(_amp_rank_main, args=(WORLD, _free_port(), str(root), str(results)), nprocs=WORLD,
                                join=True)
    ranks = [torch.load(results / f"amp{r}.pt", weights_only=False) for r in range(WORLD)]
    assert ranks[0]["iteration"] == ranks[1]["iteration"] == 2
    for part in ("discriminator", "normalizer", "model"):
        for name, value in ranks[0][part].items():
            assert torch.equal(value, ranks[1][part][name]), f"{part}.{name} differs between ranks"
    assert not torch.equal(ranks[0]["replay"]["data"], ranks[1]["replay"]["data"])
