"""ktorch_sim: humanoid locomotion training in PyTorch on MuJoCo Warp (a ksim rewrite).

The public API is flat, as in ksim: ``import ktorch_sim as ks`` then ``ks.RLTask``,
``ks.JointPositionObservation``, ``ks.PositionActuators``, ``ks.make_engine`` and so on.
"""

from ktorch_sim.actuators import (
    Actuators,
    MITPositionActuators,
    PositionActuators,
    TorqueActuators,
    configure_pd_actuators,
    pd_torque,
)
from ktorch_sim.checkpoint import CheckpointError, CheckpointManager, load_checkpoint, save_checkpoint
from ktorch_sim.components import *  # noqa: F403
from ktorch_sim.components import __all__ as _components
from ktorch_sim.config import (
    CheckpointConfig,
    ConfigError,
    LoggingConfig,
    ModelConfig,
    PPOConfig,
    TrainConfig,
    config_help,
    load_config,
)
from ktorch_sim.engines import ENGINE_KINDS, Engine, EngineConfig, MujocoEngine, PhysicsState, make_engine
from ktorch_sim.env import Env, EnvSpec
from ktorch_sim.motion import MotionClip, MotionError, load_motion, save_motion
from ktorch_sim.ppo_task import PolicySpec, PPOTask, PPOVariables
from ktorch_sim.robot_metadata import JointMetadata, MotorMetadata, RobotMetadata, load_robot_metadata
from ktorch_sim.robots import kbot_home_qpos, kbot_metadata, load_kbot_model, load_kbot_pd_model
from ktorch_sim.sim2real import ControlPipeline, Sim2RealConfig
from ktorch_sim.task import RLConfig, RLTask, config_field
from ktorch_sim.trained import TrainedPolicy, load_trained_policy

__version__ = "0.1.0"

__all__ = [
    "ENGINE_KINDS",
    "MotionClip",
    "MotionError",
    "TrainedPolicy",
    "load_motion",
    "load_trained_policy",
    "save_motion",
    "CheckpointConfig",
    "CheckpointError",
    "CheckpointManager",
    "ConfigError",
    "LoggingConfig",
    "ModelConfig",
    "PPOConfig",
    "PPOTask",
    "PPOVariables",
    "PolicySpec",
    "TrainConfig",
    "config_help",
    "load_checkpoint",
    "load_config",
    "save_checkpoint",
    "Actuators",
    "ControlPipeline",
    "Engine",
    "EngineConfig",
    "Env",
    "EnvSpec",
    "JointMetadata",
    "MITPositionActuators",
    "MotorMetadata",
    "MujocoEngine",
    "PhysicsState",
    "PositionActuators",
    "RLConfig",
    "RLTask",
    "RobotMetadata",
    "Sim2RealConfig",
    "TorqueActuators",
    "config_field",
    "configure_pd_actuators",
    "kbot_home_qpos",
    "kbot_metadata",
    "load_kbot_model",
    "load_kbot_pd_model",
    "load_robot_metadata",
    "make_engine",
    "pd_torque",
    *_components,
]
