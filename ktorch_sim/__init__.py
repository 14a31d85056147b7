"""ktorch_sim: humanoid locomotion training in PyTorch on MuJoCo Warp (a ksim rewrite).

The public API is flat, as in ksim: ``import ktorch_sim as ks`` then ``ks.MujocoEngine``,
``ks.load_kbot_pd_model`` and so on.
"""

from ktorch_sim.actuators import configure_pd_actuators, pd_torque
from ktorch_sim.engines import ENGINE_KINDS, Engine, EngineConfig, MujocoEngine, PhysicsState, make_engine
from ktorch_sim.robot_metadata import JointMetadata, MotorMetadata, RobotMetadata, load_robot_metadata
from ktorch_sim.robots import kbot_home_qpos, kbot_metadata, load_kbot_model, load_kbot_pd_model

__version__ = "0.1.0"

__all__ = [
    "ENGINE_KINDS",
    "Engine",
    "EngineConfig",
    "JointMetadata",
    "MotorMetadata",
    "MujocoEngine",
    "PhysicsState",
    "RobotMetadata",
    "configure_pd_actuators",
    "kbot_home_qpos",
    "kbot_metadata",
    "load_kbot_model",
    "load_kbot_pd_model",
    "load_robot_metadata",
    "make_engine",
    "pd_torque",
]
