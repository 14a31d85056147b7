"""The static-buffer step body collects exactly what the plain collector collects."""

from __future__ import annotations

import pytest
import torch

from ktorch_sim.algorithms.graphed_rollout import GraphedRolloutCollector
from ktorch_sim.algorithms.rollout import RolloutCollector
from ktorch_sim.config import load_config
from ktorch_sim.training.trainer import Trainer


def _trainer(tmp_path, name, *extra: str):
    config = load_config(None, [*extra, "task.name=kbot_walk", "task.num_envs=4", "task.engine=mujoco", "task.device=cpu",
                                "ppo.batch_size=2", "model.hidden_size=16", "model.depth=2", "model.num_mixtures=2",
                                "ppo.normalize_observations=true", "task.episode_length_seconds=0.1",
                                "logging.wandb_mode=disabled", f"logging.run_dir={tmp_path / name}"])
    return Trainer(config)


@pytest.mark.parametrize("limit", [0, 20])
@pytest.mark.parametrize("step_statistics", [False, True])
def test_eager_body_equals_plain_collector_over_rollouts_with_resets(tmp_path, step_statistics, limit):
    """Also with ``ppo.normalizer_steps``: the step body stops the statistics where the plain collector does."""
    extra = f"ppo.normalizer_steps={limit}"
    plain, graphed = _trainer(tmp_path, "a", extra), _trainer(tmp_path, "b", extra)
    steps = 12
    collectors = [RolloutCollector(plain.env, plain.task, steps, plain.generator, step_statistics),
                  GraphedRolloutCollector(graphed.env, graphed.task, steps, graphed.generator, mode="eager",
                                          step_statistics=step_statistics)]
    carries = [plain.carry, graphed.carry]
    for trainer, collector in zip((plain, graphed), collectors, strict=True):
        collector.current = trainer.collector.current
    for _ in range(2):  # the second rollout starts from the carry and observations the first left
        outs = []
        for i, (trainer, collector) in enumerate(zip((plain, graphed), collectors, strict=True)):
            buffer, start, end, last = collector.collect(trainer.model, carries[i])
            carries[i] = end
            outs.append((buffer.clone(), start, end, last))
        (b1, s1, e1, l1), (b2, s2, e2, l2) = outs
        assert b1["next", "done"].any(), "the test needs episode ends inside the rollout"
        for key in b1.keys(include_nested=True, leaves_only=True):
            assert torch.equal(b1[key], b2[key]), key
        for x, y in zip(s1 + e1, s2 + e2, strict=True):
            assert torch.equal(x, y)
        assert torch.equal(l1, l2)
        assert ("actor_input" in b1.keys()) == step_statistics
    for name, value in plain.task.normalizers.state_dict().items():
        assert torch.equal(value, graphed.task.normalizers.state_dict()[name]), name
    assert (float(plain.task.normalizers["actor"].count) > 1) == step_statistics  # moved while collecting
    if step_statistics and limit:  # 4 worlds a step: the fifth step's inputs reach 20 rows, then nothing moves
        assert float(graphed.task.normalizers["actor"].count) == pytest.approx(1e-4 + limit)


def test_cuda_graph_mode_needs_cuda(tmp_path):
    trainer = _trainer(tmp_path, "c")
    with pytest.raises(ValueError, match="needs the env on a CUDA device"):
        GraphedRolloutCollector(trainer.env, trainer.task, 4, trainer.generator, mode="cuda_graph")


def test_capture_rollout_config_needs_cuda_and_warp():
    from ktorch_sim.config import ConfigError

    with pytest.raises(ConfigError, match="ppo.capture_rollout: needs task.device cuda and the warp engine"):
        load_config(None, ["task.device=cpu", "ppo.capture_rollout=true"])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")
def test_captured_rollout_equals_eager_on_cuda(tmp_path):
    """On a GPU: the replayed graph fills the same buffer as the eager body from the same state."""
    def build(name, mode):
        config = load_config(None, ["task.name=kbot_walk", "task.num_envs=64", "task.engine=warp", "task.device=cuda",
                                    "ppo.batch_size=64", "model.hidden_size=32", "model.depth=2",
                                    "logging.wandb_mode=disabled", f"logging.run_dir={tmp_path / name}"])
        trainer = Trainer(config)
        collector = GraphedRolloutCollector(trainer.env, trainer.task, 16, trainer.generator, mode=mode)
        collector.current = trainer.collector.current
        return trainer, collector

    runs = [build("eager", "eager"), build("graph", "cuda_graph")]
    buffers = []
    for trainer, collector in runs:
        carry = trainer.carry
        for _ in range(3):  # rollout 1 eager warm-up, 2 captures + replays, 3 replays
            buffer, _, carry, _ = collector.collect(trainer.model, carry)
        buffers.append(buffer.clone())
    for key in buffers[0].keys(include_nested=True, leaves_only=True):
        torch.testing.assert_close(buffers[1][key], buffers[0][key], rtol=1e-4, atol=1e-4, msg=str(key))
