"""One LIBERO episode simulator, as it runs inside an environment worker process (see `worker.py`).

This module imports LIBERO (robosuite, mujoco) only inside `TaskSim`, so it is safe to import anywhere. It
implements the standard evaluation protocol's per-episode part:
- initial state `init_id` < 50 is the task's fixed initial state (LIBERO's `.pruned_init` file); larger ids are
  fresh layouts sampled by LIBERO's own placement sampler, seeded by (task, init_id), so training never sees the
  evaluation states and every episode is reproducible;
- 10 no-op steps (`[0, 0, 0, 0, 0, 0, -1]`) after the reset let objects settle before the policy acts;
- both cameras (agent view and wrist) are flipped 180 degrees, as the standard evaluation scripts do;
- `done` from LIBERO's `step()` is the success flag.

It also computes the privileged state vector the scripted expert reads (layout in `PRIV`).
"""

from __future__ import annotations

import os
import zlib

import numpy as np

NOOP_ACTION = np.array([0, 0, 0, 0, 0, 0, -1], dtype=np.float64)
NUM_NOOP_STEPS = 10


class PRIV:
    """Index layout of the privileged state vector (float32 [PRIV.SIZE])."""

    EEF = slice(0, 3)  # end-effector (grip site) position, world frame
    APPROACH = slice(3, 6)  # hand approach axis (unit vector; (0, 0, -1) is pointing straight down)
    FINGER_YAW = 6  # yaw of the finger-to-finger (closing) axis, radians
    OPENING = 7  # finger opening: left minus right finger joint, metres (about 0.08 fully open)
    TARGET_CENTER = slice(8, 11)  # target object: world axis-aligned bounding box centre
    TARGET_HALF = slice(11, 14)  # ... and half extents
    TARGET_YAW = 14  # yaw of the target's long horizontal axis, radians
    TARGET_LONG = 15  # the target's horizontal extent along that axis, metres
    TARGET_SHORT = 16  # ... and across it
    BASKET_CENTER = slice(17, 19)  # receptacle: xy centre of its bounding box
    BASKET_TOP = 19  # receptacle rim height
    BASKET_INNER = 20  # receptacle inner half width (smaller horizontal side, walls excluded)
    GRASPED = 21  # 1 when both fingers (pads or finger bodies) touch the target
    FLOOR = 22  # height of the surface the objects rest on
    SUCCESS = 23  # LIBERO's success predicate
    VALID = 24  # 1 when the task has the pick-and-place layout the expert understands
    OBSTACLES = slice(25, 49)  # up to 6 other objects, nearest to the target first: (x, y, radius, top) each
    MAX_OBSTACLES = 6
    SIZE = 49


def episode_seed(task: str, init_id: int) -> int:
    """Seed of LIBERO's placement sampler for a sampled (non-fixed) initial state."""
    return zlib.crc32(f"{task}#{init_id}".encode()) & 0x7FFFFFFF


def flip(image: np.ndarray) -> np.ndarray:
    """LIBERO renders upside down; the standard scripts rotate by 180 degrees (both axes)."""
    return np.ascontiguousarray(image[::-1, ::-1])


class TaskSim:
    """One LIBERO environment for one task that runs any number of episodes, one at a time.

    An episode is a small *slot state*: MuJoCo's integration state (which includes the solver warm-start) plus the
    Python-side values robosuite carries between steps (gripper command, OSC goal, step counter, and each
    observable's sampling clock and last value). `step(slot_state, action)` loads it, steps, and returns the next
    observation with the new slot state. Many episodes of a task thus share one simulator and its renderer (each
    simulator costs about 0.75-2 GB), and an episode lost with a crashed worker is replayed exactly from its last
    slot state. The environment uses robosuite's soft reset; the warm-start, gripper command and controller goal
    are cleared at each reset, so an episode does not depend on what ran before it: observations and images were
    checked bitwise equal to a dedicated, hard-reset environment running the standard protocol, with another
    episode of the same task interleaved step by step.
    """

    def __init__(self, suite: str, task: str, image_size: int = 128, cameras: bool = True, wrist: bool = True):
        os.environ.setdefault("MUJOCO_GL", "egl")
        from libero.libero import get_libero_path
        from libero.libero.envs import OffScreenRenderEnv
        from libero.libero.envs.env_wrapper import ControlEnv
        from opd_core.envs.libero.tasks import libero_task

        self.suite, self.task = suite, task
        spec, self.fixed_init_states = libero_task(suite, task)
        bddl = os.path.join(get_libero_path("bddl_files"), spec.problem_folder, spec.bddl_file)
        self.image_size = image_size
        self.cameras, self.wrist = cameras, cameras and wrist
        if cameras:  # the wrist camera can be left out where nothing looks at it (halves the rendering)
            names = ["agentview", "robot0_eye_in_hand"] if self.wrist else ["agentview"]
            self.env = OffScreenRenderEnv(
                bddl_file_name=bddl,
                camera_heights=image_size,
                camera_widths=image_size,
                camera_names=names,
                hard_reset=False,
            )
        else:  # physics only (expert checks, benchmarks): no renderer at all
            self.env = ControlEnv(
                bddl_file_name=bddl, use_camera_obs=False, has_offscreen_renderer=False, hard_reset=False
            )
        self.instruction = self.env.language_instruction
        self.last_obs: dict | None = None
        self.success = False
        self._geometry = None
        self._was_reset = False
        """A simulator fresh from construction steps differently until its first reset (robosuite sets up the
        robot and controller there); loading a slot state into one resets it first."""

    # ------------------------------------------------------------------ episodes
    def reset(self, init_id: int) -> dict:
        """Start an episode from initial state `init_id`, run the no-op warm-up; returns its first observation."""
        import mujoco

        env = self.env
        fixed = init_id < len(self.fixed_init_states)
        env.seed(0 if fixed else episode_seed(self.task, init_id))
        env.reset()
        self._was_reset = True
        if fixed:
            env.set_init_state(self.fixed_init_states[init_id])
        inner = env.env
        inner.sim.data._data.qacc_warmstart[:] = 0.0  # as a freshly built simulator: no memory of past episodes
        robot = inner.robots[0]
        robot.gripper.current_action = np.zeros_like(robot.gripper.current_action)
        robot.controller.reset_goal()
        mujoco.mj_forward(inner.sim.model._model, inner.sim.data._data)
        inner.timestep, inner.cur_time, inner.done = 0, float(inner.sim.data.time), False
        self.success = False
        done = False
        for _ in range(NUM_NOOP_STEPS):
            obs, _, done, _ = env.step(NOOP_ACTION)
        self.success = bool(done)
        self.last_obs = obs
        return self.observation()

    def step(self, slot_state: dict | None, action: np.ndarray) -> dict:
        """Load an episode's slot state (None: continue the loaded one), apply `action`, observe."""
        if slot_state is not None:
            self.load(slot_state)
        obs, _, done, _ = self.env.step(np.asarray(action, dtype=np.float64))
        self.success = bool(done)
        self.last_obs = obs
        return self.observation()

    def save(self) -> dict:
        import mujoco

        inner = self.env.env
        model, data = inner.sim.model._model, inner.sim.data._data
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        state = np.empty(mujoco.mj_stateSize(model, spec))
        mujoco.mj_getState(model, data, state, spec)
        robot = inner.robots[0]
        # robosuite samples each observable at some sub-step of a step, with its own clock: part of the state
        observables = {
            name: (o._time_since_last_sample, o._sampled, o._current_delay, _copy(o._current_observed_value))
            for name, o in inner._observables.items()
        }
        return {
            "mj": state,
            "timestep": int(inner.timestep),
            "cur_time": float(inner.cur_time),
            "gripper": np.array(robot.gripper.current_action),
            "goal_pos": np.array(robot.controller.goal_pos),
            "goal_ori": np.array(robot.controller.goal_ori),
            "observables": observables,
            "obs_cache": {k: _copy(v) for k, v in inner._obs_cache.items()},
            "success": self.success,
            "task": self.task,
        }

    def load(self, slot_state: dict) -> None:
        import mujoco

        if slot_state.get("task", self.task) != self.task:
            raise ValueError(f"slot state of {slot_state.get('task')!r} loaded into the simulator of {self.task!r}")
        if not self._was_reset:
            self.env.reset()
            self._was_reset = True
        inner = self.env.env
        model, data = inner.sim.model._model, inner.sim.data._data
        mujoco.mj_setState(
            model, data, np.asarray(slot_state["mj"], dtype=np.float64), mujoco.mjtState.mjSTATE_INTEGRATION
        )
        mujoco.mj_forward(model, data)
        inner.timestep, inner.cur_time, inner.done = int(slot_state["timestep"]), float(slot_state["cur_time"]), False
        robot = inner.robots[0]
        robot.gripper.current_action = np.array(slot_state["gripper"])
        robot.controller.goal_pos = np.array(slot_state["goal_pos"])
        robot.controller.goal_ori = np.array(slot_state["goal_ori"])
        robot.controller.new_update = True
        for name, (since, sampled, delay, value) in slot_state["observables"].items():
            observable = inner._observables[name]
            observable._time_since_last_sample, observable._sampled = since, sampled
            observable._current_delay, observable._current_observed_value = delay, _copy(value)
        inner._obs_cache = {k: _copy(v) for k, v in slot_state["obs_cache"].items()}
        self.success = bool(slot_state["success"])

    def close(self) -> None:
        try:
            self.env.close()
        except Exception:  # noqa: BLE001 - closing a broken renderer must not hide the real error
            pass

    # ------------------------------------------------------------------ observations
    def observation(self) -> dict:
        obs = self.last_obs
        size = self.image_size
        if self.cameras:
            image = flip(obs["agentview_image"])
            wrist = flip(obs["robot0_eye_in_hand_image"]) if self.wrist else np.zeros_like(image)
        else:
            image = wrist = np.zeros((size, size, 3), np.uint8)
        proprio = np.concatenate([obs["robot0_eef_pos"], obs["robot0_gripper_qpos"][:2]]).astype(np.float32)
        return {
            "image": image,
            "wrist": wrist,
            "proprio": proprio,
            "success": self.success,
            "state": self.privileged(),
            "slot_state": self.save(),
        }

    def privileged(self) -> np.ndarray:
        """The privileged state vector (see `PRIV`): poses of the robot, the target object and the receptacle."""
        out = np.zeros(PRIV.SIZE, np.float32)
        e = self.env.env
        sim = e.sim
        data = sim.data
        robot = e.robots[0]
        out[PRIV.EEF] = data.site_xpos[robot.eef_site_id]
        out[PRIV.APPROACH] = np.asarray(data.site_xmat[robot.eef_site_id]).reshape(3, 3)[:, 2]
        geometry = self._geometry_ids()
        left, right = data.xpos[geometry["left_finger"]], data.xpos[geometry["right_finger"]]
        out[PRIV.FINGER_YAW] = np.arctan2(right[1] - left[1], right[0] - left[0])
        qpos = self.last_obs["robot0_gripper_qpos"]
        out[PRIV.OPENING] = qpos[0] - qpos[1]
        out[PRIV.SUCCESS] = float(self.success)
        out[PRIV.FLOOR] = geometry["floor"]
        if geometry["target"] is None:
            return out
        center, half, corners = _bounding_box(sim, geometry["target"])
        out[PRIV.TARGET_CENTER], out[PRIV.TARGET_HALF] = center, half
        out[PRIV.TARGET_YAW], out[PRIV.TARGET_LONG], out[PRIV.TARGET_SHORT] = _long_axis(corners)
        b_center, b_half, _ = _bounding_box(sim, geometry["basket"])
        out[PRIV.BASKET_CENTER] = b_center[:2]
        out[PRIV.BASKET_TOP] = b_center[2] + b_half[2]
        out[PRIV.BASKET_INNER] = max(float(min(b_half[0], b_half[1])) - 0.015, 0.01)
        fingers = [robot.gripper.important_geoms["left_finger"], robot.gripper.important_geoms["right_finger"]]
        out[PRIV.GRASPED] = float(e._check_grasp(gripper=fingers, object_geoms=e.objects_dict[geometry["names"][0]]))
        out[PRIV.VALID] = 1.0
        obstacles = []
        for geoms in geometry["others"]:
            o_center, o_half, _ = _bounding_box(sim, geoms)
            obstacles.append((o_center[0], o_center[1], float(np.hypot(o_half[0], o_half[1])), o_center[2] + o_half[2]))
        obstacles.sort(key=lambda o: np.hypot(o[0] - center[0], o[1] - center[1]))
        slots = np.tile(np.array([10.0, 10.0, 0.0, -1.0], np.float32), PRIV.MAX_OBSTACLES)
        for k, obstacle in enumerate(obstacles[: PRIV.MAX_OBSTACLES]):
            slots[4 * k : 4 * k + 4] = obstacle
        out[PRIV.OBSTACLES] = slots
        return out

    def _geometry_ids(self) -> dict:
        if self._geometry is not None:
            return self._geometry
        e = self.env.env
        model = e.sim.model
        raw = model._model
        names = list(getattr(e, "obj_of_interest", []) or [])
        geometry: dict = {
            "names": names,
            "target": None,
            "basket": None,
            "others": [],
            "left_finger": model.body_name2id("gripper0_leftfinger"),
            "right_finger": model.body_name2id("gripper0_rightfinger"),
        }
        planes = [g for g in range(raw.ngeom) if raw.geom_type[g] == 0]
        geometry["floor"] = float(max((e.sim.data.geom_xpos[g][2] for g in planes), default=0.0))
        # The expert's layout: exactly one movable object to pick and one receptacle (LIBERO-Object's tasks).
        if len(names) == 2 and names[0] in e.objects_dict and names[1] in e.objects_dict and "basket" in names[1]:
            geometry["target"] = _collision_geoms(raw, e.obj_body_id[names[0]])
            geometry["basket"] = _collision_geoms(raw, e.obj_body_id[names[1]])
            geometry["others"] = [
                _collision_geoms(raw, e.obj_body_id[name])
                for name in e.objects_dict
                if name not in names and name in e.obj_body_id
            ]
        self._geometry = geometry
        return geometry


def _copy(value):
    return value.copy() if isinstance(value, np.ndarray) else value


def _collision_geoms(raw, body_id: int) -> np.ndarray:
    """Colliding geoms of a body and every body below it."""
    bodies = {body_id}
    for b in range(raw.nbody):
        parent = b
        while parent > 0:
            if parent == body_id:
                bodies.add(b)
                break
            parent = int(raw.body_parentid[parent])
    geoms = [
        g
        for g in range(raw.ngeom)
        if int(raw.geom_bodyid[g]) in bodies and (raw.geom_contype[g] or raw.geom_conaffinity[g])
    ]
    if not geoms:  # visual-only model: fall back to every geom of the body
        geoms = [g for g in range(raw.ngeom) if int(raw.geom_bodyid[g]) in bodies]
    return np.array(geoms, dtype=np.int64)


_CORNER_SIGNS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)


def _bounding_box(sim, geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World AABB (centre, half extents) of the geoms' local bounding boxes, and all their corners [8G, 3]."""
    raw = sim.model._model
    xpos = np.asarray(sim.data.geom_xpos)[geoms]
    xmat = np.asarray(sim.data.geom_xmat)[geoms].reshape(-1, 3, 3)
    aabb = np.asarray(raw.geom_aabb)[geoms]
    local = aabb[:, None, :3] + _CORNER_SIGNS[None] * aabb[:, None, 3:]
    corners = (xpos[:, None, :] + np.einsum("gij,gkj->gki", xmat, local)).reshape(-1, 3)
    low, high = corners.min(axis=0), corners.max(axis=0)
    return (low + high) / 2, (high - low) / 2, corners


def _long_axis(corners: np.ndarray) -> tuple[float, float, float]:
    """Yaw of the principal horizontal axis of a point cloud and its extents along and across that axis."""
    xy = corners[:, :2] - corners[:, :2].mean(axis=0)
    _, vectors = np.linalg.eigh(xy.T @ xy)
    major, minor = vectors[:, 1], vectors[:, 0]
    long_extent = np.ptp(xy @ major)
    short_extent = float(np.ptp(xy @ minor))
    return float(np.arctan2(major[1], major[0])), float(long_extent), short_extent
