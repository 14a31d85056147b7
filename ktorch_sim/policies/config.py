"""The ``[model]`` section: which actor-critic :meth:`ktorch_sim.ppo_task.PPOTask.get_model` builds and its sizes.

Torch-free, like every config section, so the config loader checks it before the heavy imports.
"""

from __future__ import annotations

from dataclasses import dataclass

from ktorch_sim.errors import ConfigError
from ktorch_sim.task_config import config_field

INITS = ("orthogonal", "torch")  # Linear-layer initializations (ktorch_sim.policies.gru.init_linear)


@dataclass(kw_only=True)
class ModelConfig:
    """Actor-critic sizes. The defaults are the sizes measured best on the Gymnasium benchmark at 204,800 steps
    (docs/learning.md); the K-Bot configs set ksim's larger networks."""

    policy: str = config_field("gru", "Network: gru (GRU stack, mixture-of-Gaussians actor) or mlp (Gaussian MLP).",
                               choices=("gru", "mlp"))
    hidden_size: int = config_field(64, "GRU hidden size (the K-Scale humanoid benchmark notebook: 128).")
    depth: int = config_field(1, "Number of stacked GRU cells (the notebook: 5).")
    num_mixtures: int = config_field(3, "Gaussians per joint in the actor's mixture (the notebook: 5).")
    min_std: float = config_field(0.01, "Lower clip of each Gaussian's std (after softplus; gru policy "
                                          "with state_dependent_std only).")
    max_std: float = config_field(1.0, "Upper clip of each Gaussian's std (gru policy with "
                                         "state_dependent_std only).")
    var_scale: float = config_field(1.0, "Scale on the softplus std output (gru policy with "
                                           "state_dependent_std only).")
    critic: str = config_field("same", "Critic network: same (the policy's kind: a GRU critic for policy gru) or mlp "
                                       "(a feed-forward critic of mlp_hidden and activation; with a gru policy it "
                                       "halves the recurrent work of the update, and a critic that sees privileged "
                                       "state such as base velocity needs no memory).", choices=("same", "mlp"))
    head_hidden: tuple[int, ...] = config_field((64, 64), "gru policy: hidden layer sizes of an MLP between the GRU "
                                                          "and the output layer of the actor and of a gru critic, "
                                                          "with activation (rsl_rl's recurrent actor-critic: memory, "
                                                          "then an MLP; [64, 64] tanh lifted the GRU's Hopper score "
                                                          "from 1,107 to 1,743, "
                                                          "docs/learning.md); empty: the GRU's output feeds the "
                                                          "output layer (ksim).")
    mlp_hidden: tuple[int, ...] = config_field((64, 64), "Hidden layer sizes of the mlp policy and of an mlp critic "
                                                      "(SB3, CleanRL; rsl_rl: 512, 256, 128).")
    activation: str = config_field("tanh", "Hidden activation of the mlp policy and critic and of a gru's head_hidden "
                                          "layers (rsl_rl: elu; SB3 and CleanRL: tanh).", choices=("elu", "tanh", "relu", "silu"))
    history: int = config_field(1, "Control steps of actor input the mlp policy sees: the current one and history - 1 "
                                   "before it (Isaac Lab's and mjlab's observation history_length, for all the actor's "
                                   "inputs), carried like a GRU state; 1: the current step only. A history > 1 trains "
                                   "on sequences of ppo.sequence_length steps, as a recurrent policy.")
    state_dependent_std: bool = config_field(True, "gru policy: each Gaussian's std is an output of the network "
                                                   "(ksim) or, false, a learned per-joint parameter independent of "
                                                   "the input, starting at init_std (the mlp policy's, SB3's and "
                                                   "rsl_rl's choice).")
    init_std: float = config_field(1.0, "Initial action std of the mlp policy's Gaussian (a learned, "
                                        "state-independent log std; SB3: 1.0) and of the gru policy's Gaussians "
                                        "when model.state_dependent_std is false.")
    init: str = config_field("orthogonal", "Initialization of the Linear layers: orthogonal (gain sqrt(2) hidden, "
                                           "0.01 actor output, 1 critic output, zero biases; SB3, CleanRL) or torch "
                                           "(PyTorch's default, as rsl_rl's MLPs).", choices=INITS)
    sequence_method: str = config_field("auto", "GRU training pass with resets: loop (GRUCell per step), packed (cut "
                                                "at resets, one fused nn.GRU call; cuDNN on CUDA) or auto (packed on "
                                                "CUDA, loop on CPU). Both are exact.",
                                        choices=("auto", "loop", "packed"))

    @property
    def trains_on_sequences(self) -> bool:
        """Whether PPO trains this policy on sequences (a gru, or an mlp with a history) rather than on
        shuffled single transitions."""
        return self.policy == "gru" or self.history > 1

    def check(self) -> None:
        """Ranges of the fields; raises :class:`ConfigError` (key ``model.<field>``) at the first bad one."""
        for name in ("hidden_size", "depth", "num_mixtures", "history"):
            _require(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        _require(self.min_std > 0, "min_std", f"must be > 0, got {self.min_std}")
        _require(self.max_std >= self.min_std, "max_std",
                 f"must be >= model.min_std ({self.min_std}), got {self.max_std}")
        _require(self.var_scale > 0, "var_scale", f"must be > 0, got {self.var_scale}")
        _require(self.history == 1 or self.policy == "mlp", "history",
                 f"is an input window for the mlp policy (a gru carries its own memory); got {self.history} with "
                 f'model.policy = "{self.policy}": set model.history = 1 or model.policy = "mlp"')
        _require(self.init_std > 0, "init_std", f"must be > 0, got {self.init_std}")
        sizes = "[" + ", ".join(str(h) for h in self.mlp_hidden) + "]"
        _require(len(self.mlp_hidden) >= 1 and all(h >= 1 for h in self.mlp_hidden), "mlp_hidden",
                 f"must be a non-empty array of sizes >= 1, got {sizes}")
        head = "[" + ", ".join(str(h) for h in self.head_hidden) + "]"
        _require(all(h >= 1 for h in self.head_hidden), "head_hidden", f"must be an array of sizes >= 1, got {head}")


def _require(ok: bool, name: str, problem: str) -> None:
    if not ok:
        raise ConfigError(problem, key=f"model.{name}")
