"""Physics randomizers on both engines: values drawn relative to the nominal model (in range for
masked worlds, exactly nominal elsewhere, no compounding when applied again), derived constants
equal to MuJoCo's own mj_setConst on a copied model, and the physical effects (kinematics, IMU
readings, sliding) equal to mj_forward / hand expectations."""

from __future__ import annotations

import copy

import mujoco
import numpy as np
import pytest
import torch

from ktorch_sim.components.randomizers import (
    FIELDS_NEEDING_RECOMPUTE,
    AllBodiesCOMRandomizer,
    AllBodiesInertiaRandomizer,
    AllBodiesMassMultiplicationRandomizer,
    ArmatureRandomizer,
    CollisionBodyRandomizer,
    COMRandomizer,
    FloorFrictionRandomizer,
    FootFrictionRandomizer,
    GeomFrictionRandomizer,
    IMUAlignmentRandomizer,
    JointDampingRandomizer,
    JointZeroPositionRandomizer,
    MassAdditionRandomizer,
    MassMultiplicationRandomizer,
    StaticFrictionRandomizer,
    check_randomizers,
    needs_recompute,
    randomized_fields,
)
from ktorch_sim.robots.kbot import KBOT_FOOT_GEOMS
from tests.conftest import ENGINE_IDS, ENGINE_SPECS, build_engine, make_context, reset_engine

N = 4
MASK = [True, False, True, False]
FIELDS = ("dof_frictionloss", "dof_armature", "dof_damping", "body_mass", "body_ipos", "body_inertia", "qpos0",
          "geom_friction", "site_quat", "site_pos", "geom_size", "geom_pos", "geom_rbound", "geom_aabb")
FEET = ("left_foot_collision_0", "left_foot_collision_1", "right_foot_collision_0", "right_foot_collision_1")


@pytest.fixture(scope="module")
def damped_model(kbot_model) -> mujoco.MjModel:
    """K-Bot with passive joint damping (the real model has none), so damping scaling is visible."""
    model = copy.copy(kbot_model)
    model.dof_damping[6:] = np.linspace(0.5, 1.5, model.nv - 6)
    return model


@pytest.fixture(scope="module", params=ENGINE_SPECS, ids=ENGINE_IDS)
def engine(request, damped_model):
    """One engine per kind with every randomized field batched; tests restore the defaults first."""
    return build_engine(request.param, damped_model, num_envs=N, batched_fields=FIELDS)


def _restore(engine) -> None:
    """Put every batched field of every world back to its nominal value."""
    for name in engine.batched_fields:
        shape = engine.model_field(name).shape[1:]  # geom_aabb: (ngeom, 6) in MuJoCo, (ngeom, 2, 3) in Warp
        default = engine.default_model_field(name).reshape(shape)
        engine.set_model_field(name, default.expand(N, *shape).to(engine.device))
    engine.recompute_constants()


def _mask(engine, values=MASK) -> torch.Tensor:
    return torch.tensor(values, device=engine.device)


def _id(model, obj, name) -> int:
    return mujoco.mj_name2id(model, obj, name)


def _cases(model: mujoco.MjModel) -> dict[str, tuple[object, str, tuple, str, tuple[float, float]]]:
    """name -> (randomizer, field, randomized entries, how values relate to nominal, range).

    Ranges exclude the identity, so a value drawn relative to the current one (compounding) would
    leave the range on the second application."""
    torso = _id(model, mujoco.mjtObj.mjOBJ_BODY, "torso")
    floor = _id(model, mujoco.mjtObj.mjOBJ_GEOM, "floor")
    feet = [_id(model, mujoco.mjtObj.mjOBJ_GEOM, g) for g in FEET]
    hinge_dofs, bodies = (slice(6, None),), (slice(1, None),)
    return {
        "static_friction": (StaticFrictionRandomizer(scale_lower=1.5, scale_upper=2.0), "dof_frictionloss", hinge_dofs,
                            "times", (1.5, 2.0)),
        "armature": (ArmatureRandomizer(scale_lower=1.5, scale_upper=2.0), "dof_armature", hinge_dofs, "times",
                     (1.5, 2.0)),
        "damping": (JointDampingRandomizer(scale_lower=1.5, scale_upper=2.0), "dof_damping", hinge_dofs, "times",
                    (1.5, 2.0)),
        "all_mass": (AllBodiesMassMultiplicationRandomizer(scale_lower=1.5, scale_upper=2.0), "body_mass", bodies,
                     "times", (1.5, 2.0)),
        "mass_times": (MassMultiplicationRandomizer.from_body_name(model, "torso", 1.5, 2.0), "body_mass", (torso,),
                       "times", (1.5, 2.0)),
        "mass_plus": (MassAdditionRandomizer.from_body_name(model, "torso", 0.6, 1.0), "body_mass", (torso,), "plus",
                      (0.6, 1.0)),
        "com": (COMRandomizer.from_body_name(model, "torso", scale=0.02), "body_ipos", (torso,), "plus",
                (-0.02, 0.02)),
        "all_com": (AllBodiesCOMRandomizer(scale=0.02), "body_ipos", bodies, "plus", (-0.02, 0.02)),
        "zero_position": (JointZeroPositionRandomizer(scale_lower=0.3, scale_upper=0.5), "qpos0", (slice(7, None),),
                          "plus", (0.3, 0.5)),
        "floor_friction": (FloorFrictionRandomizer.from_geom_name(model, "floor", 0.2, 0.3), "geom_friction",
                           (floor, 0), "equals", (0.2, 0.3)),
        "foot_friction": (FootFrictionRandomizer.from_geom_names(model, KBOT_FOOT_GEOMS, scale_lower=0.2, scale_upper=0.3),
                          "geom_friction", (feet, 0), "equals", (0.2, 0.3)),
    }


CASES = ["static_friction", "armature", "damping", "all_mass", "mass_times", "mass_plus", "com", "all_com",
         "zero_position", "floor_friction", "foot_friction"]


def _check_range(value: torch.Tensor, nominal: torch.Tensor, how: str, bounds: tuple[float, float]) -> None:
    low, high = bounds
    drawn = {"times": value / nominal, "plus": value - nominal, "equals": value}[how]
    assert float(drawn.min()) >= low - 1e-5 and float(drawn.max()) <= high + 1e-5, (how, drawn)


@pytest.mark.parametrize("case", CASES)
def test_randomizer_draws_relative_to_nominal_for_masked_worlds_only(engine, case):
    _restore(engine)
    randomizer, field, index, how, bounds = _cases(engine.model)[case]
    assert field in randomizer.fields
    ctx = make_context(engine, seed=11)
    nominal = engine.default_model_field(field)
    selected = torch.zeros(nominal.shape, dtype=torch.bool)
    selected[index] = True

    for round_, mask in enumerate((MASK, [True, True, True, False])):  # the second round must not compound
        randomizer.apply(engine, _mask(engine, mask), ctx)
        values = engine.model_field(field).cpu()
        for w, hit in enumerate(mask):
            if not hit:
                torch.testing.assert_close(values[w], nominal, atol=0, rtol=0)
                continue
            _check_range(values[w][selected], nominal[selected], how, bounds)
            torch.testing.assert_close(values[w][~selected], nominal[~selected], atol=0, rtol=0)
        assert not torch.equal(values[0][selected], values[2][selected]), "each world draws its own values"
        if round_ == 0:
            first = values.clone()
    assert not torch.equal(first[0], values[0]), "masked worlds are redrawn at every application"


def test_compounding_would_be_caught_for_single_entry_randomizers(engine):
    """Ten applications of a +-2 cm COM shift stay within +-2 cm of the nominal value."""
    _restore(engine)
    randomizer = COMRandomizer.from_body_name(engine.model, "torso", scale=0.02)
    ctx = make_context(engine, seed=3)
    nominal = engine.default_model_field("body_ipos")[randomizer.body_id]
    for _ in range(10):
        randomizer.apply(engine, _mask(engine, [True] * N), ctx)
        shift = engine.model_field("body_ipos")[:, randomizer.body_id].cpu() - nominal
        assert float(shift.abs().max()) <= 0.02 + 1e-6


def _set_const_copy(model: mujoco.MjModel, **fields: np.ndarray) -> mujoco.MjModel:
    """A copy of ``model`` with ``fields`` replaced and MuJoCo's mj_setConst applied."""
    other = copy.copy(model)
    for name, value in fields.items():
        getattr(other, name)[...] = value
    mujoco.mj_setConst(other, mujoco.MjData(other))
    return other


@pytest.mark.parametrize("case", ["mass", "inertia", "armature"])
def test_recompute_constants_matches_mj_set_const(engine, case):
    _restore(engine)
    randomizer = {"mass": AllBodiesMassMultiplicationRandomizer(scale_lower=0.8, scale_upper=1.25),
                  "inertia": AllBodiesInertiaRandomizer(scale=0.2),
                  "armature": ArmatureRandomizer(scale_lower=0.5, scale_upper=2.0)}[case]
    assert needs_recompute([randomizer])
    randomizer.apply(engine, _mask(engine), make_context(engine, seed=7))
    engine.recompute_constants()
    written = {f: engine.model_field(f).cpu().double().numpy() for f in randomizer.fields}
    for w in range(N):
        want = _set_const_copy(engine.model, **{f: v[w] for f, v in written.items()})
        got_subtree = engine.model_field("body_subtreemass")[w].cpu().numpy()
        np.testing.assert_allclose(got_subtree, want.body_subtreemass, rtol=1e-5)
        np.testing.assert_allclose(engine.model_field("dof_invweight0")[w].cpu().numpy(), want.dof_invweight0,
                                   rtol=2e-3, atol=1e-6)
        if not MASK[w]:
            np.testing.assert_allclose(got_subtree, engine.model.body_subtreemass, rtol=1e-6)
    base = _id(engine.model, mujoco.mjtObj.mjOBJ_BODY, "base")
    total = engine.model_field("body_subtreemass")[:, base].cpu()
    if case != "armature":
        assert abs(float(total[0]) - 36.344) > 0.01  # the robot's mass really changed
    reset_engine(engine, engine.model.key_qpos[0])
    mass = written.get("body_mass")
    if mass is not None:  # cinert[..., 9] is each body's mass in the new state
        np.testing.assert_allclose(engine.state.cinert[:, 1:, 9].cpu().numpy(), mass[:, 1:], rtol=1e-5)


def test_inertia_randomizer_scales_mass_and_inertia_together(engine):
    _restore(engine)
    randomizer = AllBodiesInertiaRandomizer(scale=0.1)
    randomizer.apply(engine, _mask(engine), make_context(engine, seed=5))
    mass = engine.model_field("body_mass").cpu()[0, 2:]
    inertia = engine.model_field("body_inertia").cpu()[0, 2:]
    s = mass / engine.default_model_field("body_mass")[2:]
    p = inertia / engine.default_model_field("body_inertia")[2:] / s.unsqueeze(-1)
    assert float((s - 1).abs().max()) <= 0.1 + 1e-5 and float((p - 1).abs().max()) <= 0.1 + 1e-5
    corr = torch.corrcoef(torch.stack((s, p[:, 0])))[0, 1]
    assert abs(float(corr)) < 0.6  # ksim's shared key makes s and p_x identical (corr = 1)


def test_joint_zero_position_shifts_kinematics_like_mujoco(engine):
    _restore(engine)
    randomizer = JointZeroPositionRandomizer(scale_lower=-0.05, scale_upper=0.05)
    randomizer.apply(engine, _mask(engine), make_context(engine, seed=9))
    engine.recompute_constants()
    home = engine.model.key_qpos[0]
    reset_engine(engine, home)
    qpos0 = engine.model_field("qpos0").cpu().double().numpy()
    for w in range(N):
        model = _set_const_copy(engine.model, qpos0=qpos0[w])
        data = mujoco.MjData(model)
        data.qpos[:] = home.astype(np.float32)
        mujoco.mj_forward(model, data)
        np.testing.assert_allclose(engine.state.xpos[w].cpu().numpy(), data.xpos, atol=2e-5)
    feet = engine.state.xpos[:, _id(engine.model, mujoco.mjtObj.mjOBJ_BODY, "LFootBushing_GPF_1517_12")].cpu()
    assert float((feet[0] - feet[1]).abs().max()) > 1e-3  # the same qpos puts the foot elsewhere


def test_imu_alignment_rotates_the_imu_readings_like_mujoco(engine):
    _restore(engine)
    randomizer = IMUAlignmentRandomizer(tilt_std_rad=0.1, yaw_std_rad=0.1, translate_std_m=0.01)
    assert set(randomizer.fields) == {"site_quat", "site_pos"} and not needs_recompute([randomizer])
    randomizer.apply(engine, _mask(engine), make_context(engine, seed=13))
    qvel = np.zeros(engine.model.nv)
    qvel[3:6] = [0.4, -0.3, 0.7]
    reset_engine(engine, engine.model.key_qpos[0], qvel)
    site = _id(engine.model, mujoco.mjtObj.mjOBJ_SITE, "imu_site")
    quat = engine.model_field("site_quat").cpu().double().numpy()
    pos = engine.model_field("site_pos").cpu().double().numpy()
    sensors = [engine.model.sensor(n) for n in ("imu_site_quat", "imu_site_pos", "imu_gyro")]
    for w in range(N):
        model = copy.copy(engine.model)
        model.site_quat[site], model.site_pos[site] = quat[w, site], pos[w, site]
        data = mujoco.MjData(model)
        data.qpos[:], data.qvel[:] = model.key_qpos[0].astype(np.float32), qvel
        mujoco.mj_forward(model, data)
        for s in sensors:
            got = engine.state.sensordata[w, s.adr[0]:s.adr[0] + s.dim[0]].cpu().numpy()
            np.testing.assert_allclose(got, data.sensordata[s.adr[0]:s.adr[0] + s.dim[0]], atol=2e-5)
    nominal = engine.model.site_quat[site]
    angle = 2 * np.arccos(np.clip(np.abs(quat[:, site] @ nominal), 0, 1))
    assert np.all(angle[[0, 2]] > 0.01) and np.all(angle[[0, 2]] < 0.8)  # 0.1 rad stds, three axes
    np.testing.assert_array_equal(quat[[1, 3], site], np.tile(nominal.astype(np.float32), (2, 1)))


def test_foot_friction_changes_sliding_but_floor_friction_cannot(engine_spec, kbot_model, home_qpos):
    """World 0: slippery feet slide under a 60 N push. World 1: a slippery floor does nothing,
    because the feet have geom priority 1 and their friction wins. World 2: nominal."""
    engine = build_engine(engine_spec, kbot_model, num_envs=3, batched_fields=("geom_friction",))
    ctx = make_context(engine)
    dev = engine.device
    FootFrictionRandomizer.from_geom_names(kbot_model, KBOT_FOOT_GEOMS, scale_lower=0.01, scale_upper=0.01).apply(
        engine, torch.tensor([True, False, False], device=dev), ctx)
    FloorFrictionRandomizer.from_geom_name(kbot_model, "floor", 0.01, 0.01).apply(
        engine, torch.tensor([False, True, False], device=dev), ctx)
    friction = engine.model_field("geom_friction").cpu()
    floor = _id(kbot_model, mujoco.mjtObj.mjOBJ_GEOM, "floor")
    assert float(friction[0, floor, 0]) == 1.0 and float(friction[1, floor, 0]) == pytest.approx(0.01)
    reset_engine(engine, home_qpos)
    base = _id(kbot_model, mujoco.mjtObj.mjOBJ_BODY, "base")
    engine.state.xfrc_applied[:, base, 0] = 60.0
    targets = torch.tensor(np.tile(home_qpos[7:], (3, 1)), dtype=torch.float32, device=dev)
    for _ in range(10):
        engine.step(targets)
    foot = _id(kbot_model, mujoco.mjtObj.mjOBJ_BODY, "LFootBushing_GPF_1517_12")
    data = mujoco.MjData(kbot_model)
    data.qpos[:] = home_qpos
    mujoco.mj_forward(kbot_model, data)
    dx = engine.state.xpos[:, foot, 0].cpu().numpy() - data.xpos[foot, 0]
    assert abs(dx[0]) > 0.004 and abs(dx[1]) < 0.001 and abs(dx[2]) < 0.001, dx


def test_geom_friction_per_geom_and_shared_draws(engine):
    _restore(engine)
    feet = [_id(engine.model, mujoco.mjtObj.mjOBJ_GEOM, g) for g in FEET]
    ctx = make_context(engine, seed=2)
    GeomFrictionRandomizer.from_geom_names(engine.model, FEET, 0.3, 0.9).apply(engine, _mask(engine), ctx)
    shared = engine.model_field("geom_friction")[0, feet, 0].cpu()
    assert float(shared.max() - shared.min()) == 0.0  # one surface value per world
    GeomFrictionRandomizer.from_geom_names(engine.model, FEET, 0.3, 0.9, per_geom=True).apply(
        engine, _mask(engine), ctx)
    separate = engine.model_field("geom_friction")[0, feet, 0].cpu()
    assert float(separate.max() - separate.min()) > 0.0


def test_field_bookkeeping_and_conflicts(kbot_model):
    mass = AllBodiesMassMultiplicationRandomizer()
    torso = MassMultiplicationRandomizer.from_body_name(kbot_model, "torso")
    feet = FootFrictionRandomizer.from_geom_names(kbot_model, KBOT_FOOT_GEOMS)
    floor = FloorFrictionRandomizer.from_geom_name(kbot_model)
    assert randomized_fields([mass, feet, floor]) == ("body_mass", "geom_friction")
    assert needs_recompute([mass]) and not needs_recompute([feet, floor])
    assert {"body_mass", "body_inertia", "body_ipos", "dof_armature", "qpos0"} <= FIELDS_NEEDING_RECOMPUTE
    check_randomizers([feet, floor, mass], kbot_model)  # different entries of geom_friction compose
    with pytest.raises(ValueError, match="body_mass"):
        check_randomizers([mass, torso], kbot_model)


@pytest.mark.parametrize("build", [
    lambda m: FloorFrictionRandomizer.from_geom_name(m, "no_floor"),
    lambda m: MassAdditionRandomizer.from_body_name(m, "no_body"),
    lambda m: FootFrictionRandomizer.from_geom_names(m, ["left_foot_collision_0", "nope"]),
    lambda m: StaticFrictionRandomizer(scale_lower=2.0, scale_upper=1.0),
])
def test_bad_names_and_ranges_are_clear_errors(kbot_model, build):
    with pytest.raises(ValueError, match="no_floor|no_body|nope|scale_lower"):
        build(kbot_model)


def _compiled_bounds(kind: str, radius: float, half_length: float) -> tuple[float, np.ndarray]:
    """geom_rbound and geom_aabb that MuJoCo's compiler gives a lone geom of this shape."""
    xml = f'<mujoco><worldbody><geom type="{kind}" size="{radius} {half_length}"/></worldbody></mujoco>'
    model = mujoco.MjModel.from_xml_string(xml)
    return float(model.geom_rbound[0]), model.geom_aabb[0].copy()


@pytest.mark.parametrize("kind", ["sphere", "capsule", "cylinder"])
def test_collision_body_bounds_match_the_compiler_for_each_shape(kind):
    xml = f'''<mujoco><worldbody><body><freejoint/>
        <geom name="g" type="{kind}" size="0.05 0.2"/></body></worldbody></mujoco>'''
    model = mujoco.MjModel.from_xml_string(xml)
    engine = build_engine(("mujoco", "cpu"), model, num_envs=2, batched_fields=("geom_size", "geom_pos", "geom_rbound",
                                                                              "geom_aabb"))
    CollisionBodyRandomizer.from_geom_names(model, ["g"], radius_scale=0.4, length_scale=0.4).apply(
        engine, torch.tensor([True, True]), make_context(engine, seed=1))
    for w in range(2):
        size = engine.model_field("geom_size")[w, 0]
        want_rbound, want_aabb = _compiled_bounds(kind, float(size[0]), float(size[1]))
        assert float(engine.model_field("geom_rbound")[w, 0]) == pytest.approx(want_rbound, rel=1e-6)
        np.testing.assert_allclose(engine.model_field("geom_aabb")[w, 0].numpy(), want_aabb, rtol=1e-6, atol=1e-7)
    assert float(engine.model_field("geom_size")[0, 0, 0]) != 0.05


def test_collision_body_randomizer_sizes_positions_and_bounds(engine, kbot_model):
    _restore(engine)
    randomizer = CollisionBodyRandomizer.from_geom_names(engine.model, FEET, radius_scale=0.5, length_scale=0.2,
                                                         position_jitter_x=0.004, position_jitter_y=0.004,
                                                         position_jitter_z=0.001)
    randomizer.apply(engine, _mask(engine), make_context(engine, seed=21))
    feet = list(randomizer.geom_ids)
    size = engine.model_field("geom_size").cpu()
    pos = engine.model_field("geom_pos").cpu()
    rbound = engine.model_field("geom_rbound").cpu()
    aabb = engine.model_field("geom_aabb").cpu().reshape(N, -1, 6)
    nominal_size, nominal_pos = engine.default_model_field("geom_size"), engine.default_model_field("geom_pos")
    for w in (0, 2):
        ratio = size[w, feet] / nominal_size[feet]
        assert torch.all((ratio[:, 0] >= 0.5 - 1e-6) & (ratio[:, 0] <= 1.5 + 1e-6))
        assert torch.all((ratio[:, 1] >= 0.8 - 1e-6) & (ratio[:, 1] <= 1.2 + 1e-6))
        jitter = (pos[w, feet] - nominal_pos[feet]).abs()
        assert float(jitter[:, :2].max()) <= 0.004 + 1e-6 and float(jitter[:, 2].max()) <= 0.001 + 1e-6
    for w in (1, 3):
        torch.testing.assert_close(size[w], nominal_size, atol=0, rtol=0)

    # the bounding sphere and box are what MuJoCo's compiler gives for the new sizes
    for g in feet:
        want_rbound, want_aabb = _compiled_bounds("capsule", *size[0, g, :2].tolist())
        assert float(rbound[0, g]) == pytest.approx(want_rbound, rel=1e-6)
        np.testing.assert_allclose(aabb[0, g].numpy(), want_aabb, rtol=1e-6, atol=1e-7)


def _touching_geoms(model: mujoco.MjModel, qpos: np.ndarray) -> set[int]:
    """Geoms in penetrating contact per MuJoCo with the mid-phase off (its compile-time body BVH,
    kept in each body's inertial frame, goes stale when geom sizes or centres of mass change)."""
    model = copy.copy(model)
    model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_MIDPHASE
    data = mujoco.MjData(model)
    data.qpos[:] = qpos
    mujoco.mj_forward(model, data)
    return {int(g) for c in data.contact[: data.ncon] if c.dist < 0 for g in c.geom}


def test_randomized_geometry_and_com_keep_foot_contacts_right(engine_spec, kbot_model, home_qpos):
    """Worlds 0, 1: resized foot capsules, soles 1 mm above the floor (only grown capsules touch).
    World 2: the left foot's centre of mass moved, soles 2 mm into the floor (all capsules touch).
    World 3: nominal, 2 mm into the floor. The engine must find the contacts the new geometry has:
    Warp's broad phase reads the bounding volumes the randomizer writes; native MuJoCo's mid-phase
    BVH (kept in each body's inertial frame) is rebuilt by recompute_constants (mj_setConst)."""
    fields = ("geom_size", "geom_pos", "geom_rbound", "geom_aabb", "body_ipos")
    engine = build_engine(engine_spec, kbot_model, num_envs=N, batched_fields=fields)
    ctx = make_context(engine, seed=21)
    dev = engine.device
    CollisionBodyRandomizer.from_geom_names(kbot_model, FEET, radius_scale=0.5, length_scale=0.2).apply(
        engine, torch.tensor([True, True, False, False], device=dev), ctx)
    com = COMRandomizer.from_body_name(kbot_model, "LFootBushing_GPF_1517_12", scale=0.02)
    com.apply(engine, torch.tensor([False, False, True, False], device=dev), ctx)
    assert needs_recompute([com]) and needs_recompute([CollisionBodyRandomizer(geom_ids=(11,), geom_types=(3,))])
    engine.recompute_constants()
    qpos = np.tile(home_qpos, (N, 1))
    qpos[2:, 2] -= 0.003
    reset_engine(engine, qpos)
    contact = engine.state.geom_contact.cpu().numpy()
    fields_now = {f: engine.model_field(f).cpu().double().numpy() for f in fields}
    expected = []
    for w in range(N):
        model = copy.copy(engine.model)
        for f, v in fields_now.items():
            getattr(model, f)[...] = v[w].reshape(getattr(model, f).shape)
        mujoco.mj_setConst(model, mujoco.MjData(model))
        expected.append(_touching_geoms(model, qpos[w].astype(np.float32)))
        assert set(np.flatnonzero(contact[w])) == expected[w], w
    assert expected[0] and expected[2] == expected[3]  # grown capsules touch; a moved COM changes no contact

