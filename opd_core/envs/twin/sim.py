"""The built-in dual-arm simulator `twin`: a batch of two-gripper table scenes advanced together in numpy.

A top-down camera sees the table (the strip both arms reach is drawn lighter), flat receptacles, the objects and
the two grippers (left blue, right red; a ring whose drawn size grows with its height and whose colour brightens
when it closes). Actions are 14-D: per arm, left first, the 7-D deltas (dx, dy, dz, droll, dpitch, dyaw, gripper);
rotations move nothing here, and a gripper closes when its action is positive. Each arm is clipped to its reach
(`tasks.REACH_X`). A gripper grasps the nearest object (a heavy object: its own handle) when it closes close to it
in 3-D, also an object the other gripper holds (a handover); a light object follows the mean of its holders, a heavy
one moves only while both hold it. A released object rests on the table, or on a stackable object it was dropped
onto. Small deterministic execution noise per arm (a hash of the episode seed and the time step) makes open-loop
replay fail while every episode stays reproducible from its initial state, as on the tabletop.

Rendering is the hot path: the static part of each scene is drawn once per episode, and per step the objects and
grippers are scattered into a copy of it with precomputed pixel offsets (one scatter for all objects).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from opd_core.envs.base import Observation
from opd_core.envs.common import hash_normal, scatter, square_offsets
from opd_core.envs.twin.tasks import (
    ARMS,
    CATALOG,
    HANDLE_OFFSET,
    MAX_GOALS,
    MAX_OBJECTS,
    MAX_RECEPTACLES,
    OBJECT_KINDS,
    OBJECT_NAMES,
    REACH_X,
    RECEPTACLE_KINDS,
    ZONE_Y,
    ZONES_X,
    Task,
)

ACTION_DIM = 14
PROPRIO_DIM = 10
MOVE_SCALE = np.array([0.1, 0.1, 0.2])
"""World units moved per unit of action in x, y, z."""
EXEC_NOISE_STD = 0.006
GRASP_HEIGHT = 0.1
GRASP_RADIUS = 0.12
SLIP_RADIUS = 0.16
"""A lone gripper holding a heavy object's handle loses it once it moves this far away (the object stays)."""
STACK_RADIUS = 0.1
STACK_HEIGHT = 0.1
LIFT_Z = 0.3
HIT_Z, HIT_RADIUS = 0.1, 0.12
HOME = ((-0.55, -0.85, 0.5), (0.55, -0.85, 0.5))
FINGER_OPEN, FINGER_HOLD = 0.04, 0.02
REACH_LOW = np.array([low for low, _ in REACH_X])
REACH_HIGH = np.array([high for _, high in REACH_X])
HANDLE_X = np.array([-HANDLE_OFFSET, HANDLE_OFFSET])
"""Per arm: where its handle of a heavy object sits, relative to the object's centre."""

GOAL_TYPES = {"none": 0, "place": 1, "stack": 2, "lift": 3, "hit": 4}
TABLE_RGB = np.array([196, 172, 140], dtype=np.uint8)
SHARED_RGB = np.array([212, 190, 160], dtype=np.uint8)
GRIPPER_RGB = np.array([[[40, 60, 170], [0, 200, 255]], [[170, 40, 40], [255, 170, 0]]], dtype=np.uint8)
"""[arm, closed] -> RGB."""
KIND_HEAVY = np.array([OBJECT_KINDS[k].heavy for k in OBJECT_NAMES])
KIND_STACKABLE = np.array([OBJECT_KINDS[k].stackable for k in OBJECT_NAMES])
KIND_TOOL = np.array([OBJECT_KINDS[k].tool for k in OBJECT_NAMES])
KIND_RGB = np.array([OBJECT_KINDS[k].rgb for k in OBJECT_NAMES], dtype=np.uint8)


@dataclass(frozen=True)
class InitState:
    """A task's fixed initial state: everything `reset` needs, with zones and goal arms already resolved."""

    arms: tuple[tuple[float, float, float], ...]
    objects: tuple[tuple[float, float], ...]
    receptacles: tuple[tuple[float, float], ...]
    side: int
    """0: the task's `side` items start on the left (`other` on the right), 1: the reverse."""
    goals: tuple[tuple[int, int, int, float, float, float], ...]
    """(goal type, object, other object or arm, goal x, goal y, radius) per goal."""
    seed: int


def _task_seed(task: str) -> int:
    return zlib.crc32(("twin:" + task).encode())


@lru_cache(maxsize=65536)
def init_state(task_name: str, init_id: int) -> InitState:
    """The deterministic initial state number `init_id` of a task (ids 0-49 are the evaluation set)."""
    task = CATALOG.task(task_name)
    rng = np.random.default_rng([_task_seed(task_name), init_id])
    for _ in range(1000):
        state = _sample_layout(task, rng, init_id)
        if state is not None:
            return state
    raise RuntimeError(f"could not sample a layout for {task_name}")


def _zone_x(zone: str, side: int) -> tuple[float, float]:
    if zone in ("side", "other"):
        zone = ARMS[side] if zone == "side" else ARMS[1 - side]
    return ZONES_X[zone]


def _sample_layout(task: Task, rng: np.random.Generator, init_id: int) -> InitState | None:
    side = int(rng.integers(0, 2))
    placed: list[np.ndarray] = []
    points = []
    for item in (*task.receptacles, *task.objects):
        point = np.array([rng.uniform(*_zone_x(item.zone, side)), rng.uniform(*ZONE_Y)])
        if any(np.linalg.norm(point - other) < 0.36 for other in placed):
            return None
        placed.append(point)
        points.append(point)
    receptacles = points[: len(task.receptacles)]
    objects = points[len(task.receptacles) :]
    goals = []
    for goal in task.goals:
        xy, radius, arg = (0.0, 0.0), 0.0, goal.arg
        if goal.kind == "place":
            name = task.receptacles[goal.arg].kind
            xy, radius = tuple(receptacles[goal.arg]), RECEPTACLE_KINDS[name][2] * 0.9
        if goal.kind == "lift":
            arg = (
                -1
                if not goal.arm
                else ARMS.index(goal.arm)
                if goal.arm in ARMS
                else (side if goal.arm == "side" else 1 - side)
            )
        goals.append((GOAL_TYPES[goal.kind], goal.obj, arg, float(xy[0]), float(xy[1]), float(radius)))
    arms = tuple((float(hx + rng.uniform(-0.1, 0.1)), float(hy + rng.uniform(0.0, 0.1)), hz) for hx, hy, hz in HOME)
    return InitState(
        arms,
        tuple(tuple(np.round(p, 6)) for p in objects),
        tuple(tuple(np.round(p, 6)) for p in receptacles),
        side,
        tuple(goals),
        int(rng.integers(0, 2**31 - 1)) ^ init_id,
    )


class TwinVecEnv:
    """A batch of dual-arm episodes (implements envs.base.VectorEnv)."""

    def __init__(self, num_envs: int, image_size: int = 64, max_episode_steps: int = 0):
        self.num_envs = num_envs
        self.image_size = image_size
        self._default_max_steps = max_episode_steps
        self.max_episode_steps = max_episode_steps or 90
        n, m = num_envs, MAX_OBJECTS
        self.failed = np.zeros(n, dtype=bool)  # the built-in simulator never loses an episode
        self.arm = np.zeros((n, 2, 3))
        self.closed = np.zeros((n, 2), dtype=bool)
        self.held = np.full((n, 2), -1)
        self.obj_xy = np.zeros((n, m, 2))
        self.obj_z = np.zeros((n, m))
        self.obj_kind = np.full((n, m), -1)
        self.on = np.full((n, m), -1)
        """Which object each one rests on (-1: the table)."""
        self.hit = np.zeros((n, m), dtype=bool)
        self.goal = np.zeros((n, MAX_GOALS, 3), dtype=np.int64)
        self.goal_xy = np.zeros((n, MAX_GOALS, 2))
        self.goal_radius = np.zeros((n, MAX_GOALS))
        self.receptacle_xy = np.zeros((n, MAX_RECEPTACLES, 2))
        self.side = np.zeros(n, dtype=np.int64)
        self.seed = np.zeros(n, dtype=np.int64)
        self.t = 0
        self.tasks: list[str] = [""] * n
        self.instructions: list[str] = [""] * n
        self._background = np.zeros((n, image_size, image_size, 3), dtype=np.uint8)
        self._build_sprites()

    # ------------------------------------------------------------------ episode control
    def reset(self, tasks: list[str], init_ids: list[int]) -> Observation:
        self.max_episode_steps = self._default_max_steps or CATALOG.reset_max_steps(self.num_envs, tasks, init_ids)
        self.closed[:] = False
        self.held[:] = -1
        self.obj_kind[:] = -1
        self.obj_z[:] = 0.0
        self.on[:] = -1
        self.hit[:] = False
        self.goal[:] = 0
        self.t = 0
        self.tasks = list(tasks)
        for i, (task_name, init_id) in enumerate(zip(tasks, init_ids, strict=True)):
            task, state = CATALOG.task(task_name), init_state(task_name, int(init_id))
            self.instructions[i] = task.instruction
            self.arm[i] = state.arms
            for slot, (item, xy) in enumerate(zip(task.objects, state.objects, strict=True)):
                self.obj_kind[i, slot] = OBJECT_NAMES.index(item.kind)
                self.obj_xy[i, slot] = xy
            for slot, xy in enumerate(state.receptacles):
                self.receptacle_xy[i, slot] = xy
            for g, (kind, obj, arg, gx, gy, radius) in enumerate(state.goals):
                self.goal[i, g] = (kind, obj, arg)
                self.goal_xy[i, g] = (gx, gy)
                self.goal_radius[i, g] = radius
            self.side[i] = state.side
            self.seed[i] = state.seed
            self._background[i] = self._draw_static(task, state)
        return self._observe()

    def step(self, actions: np.ndarray) -> tuple[Observation, np.ndarray]:
        n = self.num_envs
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (n, ACTION_DIM):
            raise ValueError(
                f"twin actions are [{n}, {ACTION_DIM}] (per arm 7: left then right), got {list(actions.shape)}"
            )
        actions = np.clip(actions, -1.0, 1.0).reshape(n, 2, 7)
        noise = hash_normal(self.seed, self.t, 4).reshape(n, 2, 2) * EXEC_NOISE_STD
        self.arm += actions[:, :, :3] * MOVE_SCALE
        self.arm[:, :, :2] += noise
        self.arm[:, :, 0] = np.clip(self.arm[:, :, 0], REACH_LOW, REACH_HIGH)
        self.arm[:, :, 1] = np.clip(self.arm[:, :, 1], -1.0, 1.0)
        self.arm[:, :, 2] = np.clip(self.arm[:, :, 2], 0.0, 1.0)
        was_held = self._holders().any(axis=1)
        self._actuate_grippers(actions[:, :, 6] > 0)
        self._carry()
        self._settle(was_held)
        self._strike()
        self.t += 1
        return self._observe(), self.success()

    def _holders(self) -> np.ndarray:
        """[N, 2, M] bool: arm a holds object m."""
        return self.held[:, :, None] == np.arange(MAX_OBJECTS)[None, None, :]

    def _heavy(self) -> np.ndarray:
        return np.where(self.obj_kind >= 0, KIND_HEAVY[self.obj_kind], False)

    def _actuate_grippers(self, want_closed: np.ndarray) -> None:
        closing = want_closed & ~self.closed
        self.held[~want_closed] = -1
        self.closed = want_closed.copy()
        heavy = self._heavy()
        grasp_x = self.obj_xy[:, None, :, 0] + np.where(heavy[:, None, :], HANDLE_X[None, :, None], 0.0)
        dx = grasp_x - self.arm[:, :, None, 0]
        dy = self.obj_xy[:, None, :, 1] - self.arm[:, :, None, 1]
        distance = np.sqrt(dx**2 + dy**2)
        reachable = (
            (self.obj_kind >= 0)[:, None, :]
            & (distance < GRASP_RADIUS)
            & (np.abs(self.obj_z[:, None, :] - self.arm[:, :, None, 2]) < GRASP_HEIGHT)
        )
        distance = np.where(reachable, distance, np.inf)
        grasps = closing & reachable.any(axis=2)
        self.held[grasps] = distance.argmin(axis=2)[grasps]

    def _carry(self) -> None:
        holders = self._holders()
        count = holders.sum(axis=1)
        heavy = self._heavy()
        lone_heavy = heavy & (count == 1)
        if lone_heavy.any():  # one gripper cannot move a heavy object: it slips off once it has moved away
            handle = self.obj_xy[:, None, :, :] + np.stack(
                [np.broadcast_to(HANDLE_X[None, :, None], holders.shape), np.zeros(holders.shape)], -1
            )
            gap = np.linalg.norm(handle - self.arm[:, :, None, :2], axis=-1)
            slipped = (holders & lone_heavy[:, None, :] & (gap > SLIP_RADIUS)).any(axis=2)
            self.held[slipped] = -1
            holders = self._holders()
            count = holders.sum(axis=1)
        moves = (count > 0) & (~heavy | (count == 2))
        if not moves.any():
            return
        grip = self.arm[:, :, None, :] - np.where(
            heavy[:, None, :, None],
            np.stack(
                [
                    np.broadcast_to(HANDLE_X[None, :, None], holders.shape),
                    np.zeros(holders.shape),
                    np.zeros(holders.shape),
                ],
                -1,
            ),
            0.0,
        )
        mean = (holders[..., None] * grip).sum(axis=1) / np.maximum(count, 1)[..., None]
        self.obj_xy[moves] = mean[..., :2][moves]
        self.obj_z[moves] = mean[..., 2][moves]

    def _settle(self, was_held: np.ndarray) -> None:
        """Released objects drop onto the table or a stackable object below; a support taken away drops its load."""
        held = self._holders().any(axis=1)
        n, m = self.num_envs, MAX_OBJECTS
        rows = np.arange(n)[:, None]
        support = np.clip(self.on, 0, m - 1)
        lost = (self.on >= 0) & (
            held[rows, support] | (np.linalg.norm(self.obj_xy - self.obj_xy[rows, support], axis=-1) > STACK_RADIUS)
        )
        self.on[lost] = -1
        self.obj_z[lost] = 0.0
        released = was_held & ~held & (self.obj_kind >= 0)
        if not released.any():
            return
        stackable = np.where(self.obj_kind >= 0, KIND_STACKABLE[self.obj_kind], False)
        gap = np.linalg.norm(self.obj_xy[:, :, None, :] - self.obj_xy[:, None, :, :], axis=-1)
        below = (
            stackable[:, :, None]
            & stackable[:, None, :]
            & ~was_held[:, None, :]
            & ~held[:, None, :]
            & ~np.eye(m, dtype=bool)[None]
            & (gap < STACK_RADIUS)
        )
        gap = np.where(below, gap, np.inf)
        lands_on = np.where(below.any(axis=2), gap.argmin(axis=2), -1)
        self.on[released] = lands_on[released]
        base_z = self.obj_z[rows, np.clip(lands_on, 0, m - 1)] + STACK_HEIGHT
        self.obj_z[released] = np.where(lands_on >= 0, base_z, 0.0)[released]

    def _strike(self) -> None:
        in_hand = self.obj_kind[np.arange(self.num_envs)[:, None], np.clip(self.held, 0, None)]
        kind = np.where(self.held >= 0, in_hand, -1)
        striking = (kind >= 0) & np.where(kind >= 0, KIND_TOOL[kind], False) & (self.arm[:, :, 2] < HIT_Z)
        if not striking.any():
            return
        distance = np.linalg.norm(self.obj_xy[:, None, :, :] - self.arm[:, :, None, :2], axis=-1)
        held = self._holders().any(axis=1)
        target = (self.obj_kind >= 0) & ~held
        self.hit |= (striking[:, :, None] & target[:, None, :] & (distance < HIT_RADIUS)).any(axis=1)

    def goals_satisfied(self) -> np.ndarray:
        """[N, MAX_GOALS] bool (a padding goal is satisfied)."""
        n = self.num_envs
        rows = np.arange(n)[:, None]
        kind, obj, arg = self.goal[..., 0], self.goal[..., 1], self.goal[..., 2]
        holders = self._holders()
        held_by = holders[rows, :, obj]  # [N, G, 2]
        resting = ~held_by.any(axis=-1)
        xy = self.obj_xy[rows, obj]
        placed = resting & (np.linalg.norm(xy - self.goal_xy, axis=-1) < self.goal_radius)
        other = np.clip(arg, 0, MAX_OBJECTS - 1)
        stacked = resting & (self.on[rows, obj] == other) & ~holders[rows, :, other].any(axis=-1)
        up = self.obj_z[rows, obj] >= LIFT_Z
        arm = np.clip(arg, 0, 1)
        only_arm = (
            held_by[rows, np.arange(MAX_GOALS)[None, :], arm] & ~held_by[rows, np.arange(MAX_GOALS)[None, :], 1 - arm]
        )
        lifted = up & held_by.any(axis=-1) & np.where(arg >= 0, only_arm, True)
        hit = self.hit[rows, obj]
        return np.select([kind == 1, kind == 2, kind == 3, kind == 4], [placed, stacked, lifted, hit], True)

    def success(self) -> np.ndarray:
        return self.goals_satisfied().all(axis=1)

    def close(self) -> None:
        pass

    # ------------------------------------------------------------------ observation
    def proprio(self) -> np.ndarray:
        """[N, 10] float32: both grippers' xyz (left, right), then each one's two finger positions, so that the
        demo files' `ee_pos` and `gripper_states` are its first 6 and last 4 columns (as LIBERO's 3 and 2)."""
        finger = np.where(self.closed, np.where(self.held >= 0, FINGER_HOLD, 0.0), FINGER_OPEN)
        fingers = np.stack([finger, -finger], axis=2).reshape(self.num_envs, 4)
        return np.concatenate([self.arm.reshape(self.num_envs, 6), fingers], axis=1).astype(np.float32)

    def _observe(self) -> Observation:
        return Observation(self.render(), self.proprio(), list(self.instructions))

    def _to_pixels(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        size = self.image_size
        col = np.floor((xy[..., 0] + 1.0) / 2.0 * size).astype(np.int64)
        row = np.floor((1.0 - xy[..., 1]) / 2.0 * size).astype(np.int64)
        return row, col

    def _build_sprites(self) -> None:
        """Per object kind its pixel offsets, padded to one table [K, P, 2] with a validity mask [K, P]."""
        scale = self.image_size / 2
        sprites = []
        for name in OBJECT_NAMES:
            kind = OBJECT_KINDS[name]
            half = max(1, round(kind.size * scale))
            if kind.shape == "square":
                offsets = square_offsets(half)
            elif kind.shape == "ring":
                offsets = square_offsets(half)
                radius = np.sqrt((offsets**2).sum(1))
                offsets = offsets[(radius <= half) & (radius >= half - 1.5)]
            else:  # rect, bar: x half extent `size`, y half extent `size_y` (a bar adds a handle at each end)
                half_y = max(1, round(kind.size_y * scale))
                rows, cols = np.meshgrid(np.arange(-half_y, half_y + 1), np.arange(-half, half + 1), indexing="ij")
                offsets = np.stack([rows.ravel(), cols.ravel()], 1)
                if kind.shape == "bar":
                    handle = max(1, round(HANDLE_OFFSET * scale))
                    knob = square_offsets(max(1, round(0.04 * scale)))
                    offsets = np.concatenate([offsets, knob + (0, -handle), knob + (0, handle)])
            sprites.append(offsets)
        width = max(len(s) for s in sprites)
        self._sprite = np.zeros((len(sprites), width, 2), dtype=np.int64)
        self._sprite_valid = np.zeros((len(sprites), width), dtype=bool)
        for k, offsets in enumerate(sprites):
            self._sprite[k, : len(offsets)] = offsets
            self._sprite_valid[k, : len(offsets)] = True
        big = max(1, round(0.075 * scale)) + 5
        self._ring_offsets = square_offsets(big)
        self._ring_radius = np.abs(self._ring_offsets).max(axis=1)

    def render(self) -> np.ndarray:
        """Agent-view RGB frames [N, H, W, 3] (uint8) of the current state."""
        image = self._background.copy()
        present = self.obj_kind >= 0
        raised = present & ((self.obj_z > 0.01) | self._holders().any(axis=1))
        for layer in (present & ~raised, raised):  # what rests on the table first, stacked and held objects on top
            env, slot = np.nonzero(layer)
            if len(env):
                self._draw_objects(image, env, self.obj_xy[env, slot], self.obj_kind[env, slot])
        self._draw_grippers(image)
        return image

    def _draw_objects(self, image: np.ndarray, env: np.ndarray, xy: np.ndarray, kind: np.ndarray) -> None:
        row, col = self._to_pixels(xy)
        offsets, valid = self._sprite[kind], self._sprite_valid[kind]
        rows = (row[:, None] + offsets[..., 0])[valid]
        cols = (col[:, None] + offsets[..., 1])[valid]
        envs = np.broadcast_to(env[:, None], valid.shape)[valid]
        colors = np.broadcast_to(KIND_RGB[kind][:, None, :], (*valid.shape, 3))[valid]
        scatter(image, envs, rows, cols, colors)

    def _draw_grippers(self, image: np.ndarray) -> None:
        n = self.num_envs
        row, col = self._to_pixels(self.arm[:, :, :2].reshape(-1, 2))
        radius = np.round((0.05 + 0.07 * self.arm[:, :, 2].ravel()) * self.image_size / 2).astype(np.int64) + 1
        gripper, point = np.nonzero(self._ring_radius[None, :] == radius[:, None])
        env, arm = gripper // 2, gripper % 2
        colors = GRIPPER_RGB[arm, self.closed.reshape(n * 2)[gripper].astype(np.int64)]
        scatter(
            image, env, row[gripper] + self._ring_offsets[point, 0], col[gripper] + self._ring_offsets[point, 1], colors
        )

    def _draw_static(self, task: Task, state: InitState) -> np.ndarray:
        size = self.image_size
        coords = (np.arange(size) + 0.5) / size * 2.0 - 1.0
        x = coords[None, :]
        y = -coords[:, None]
        image = np.empty((size, size, 3), dtype=np.uint8)
        image[:] = TABLE_RGB
        image[:, np.abs(coords) < REACH_HIGH[0]] = SHARED_RGB  # the strip both arms reach
        for item, (cx, cy) in zip(task.receptacles, state.receptacles, strict=True):
            rgb, shape, half = RECEPTACLE_KINDS[item.kind]
            dx, dy = np.broadcast_arrays(x - cx, y - cy)
            mask = np.sqrt(dx**2 + dy**2) < half if shape == "disc" else np.maximum(np.abs(dx), np.abs(dy)) < half
            image[mask] = rgb
        return image
