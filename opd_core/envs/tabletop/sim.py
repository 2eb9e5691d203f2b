"""The built-in tabletop simulator: a batch of pick-and-place scenes advanced together in numpy.

A top-down camera sees a table with receptacles (plate, bowl, tray, basket), small coloured blocks and the
gripper, whose drawn size grows with its height and whose colour shows whether it is closed. Actions are
LIBERO's 7-D deltas (dx, dy, dz, droll, dpitch, dyaw, gripper); rotations do not move anything here, and the
gripper closes when its action is positive. A block is grasped when the gripper closes low and close to it.
Small deterministic execution noise (a hash of the episode seed and the time step) perturbs every step while every
episode stays reproducible from its initial state. (What makes an open-loop replay of a demo fail is the DART noise
the demos are recorded with: the actions executed differ from the clean expert actions stored.)

Rendering is the hot path: the static part of each scene (table and receptacles) is drawn once per episode, and
per step only blocks and gripper are scattered into a copy of it with precomputed pixel offsets.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from opd_core.envs.base import Observation
from opd_core.envs.common import hash_normal as _hash_normal
from opd_core.envs.tabletop.tasks import (
    CATALOG,
    MAX_OBJECTS,
    OBJECT_KINDS,
    OBJECT_NAMES,
    RECEPTACLE_KINDS,
    RELATIONS,
    Task,
)

MOVE_SCALE = np.array([0.1, 0.1, 0.2])
"""World units moved per unit of action in x, y, z."""
EXEC_NOISE_STD = 0.006
GRASP_HEIGHT = 0.12
GRASP_RADIUS = 0.14
SUCCESS_RADIUS = 0.15
MAX_GOALS = 2
FINGER_OPEN, FINGER_HOLD = 0.04, 0.02
TABLE_RGB = np.array([196, 172, 140], dtype=np.uint8)
OBJECT_PALETTE = np.array(list(OBJECT_KINDS.values()), dtype=np.uint8)
GRIPPER_OPEN_RGB = np.array([60, 60, 60], dtype=np.uint8)
GRIPPER_CLOSED_RGB = np.array([200, 0, 200], dtype=np.uint8)


@dataclass(frozen=True)
class InitState:
    """A task's fixed initial state: everything `reset` needs, with spatial selectors already resolved."""

    gripper: tuple[float, float, float]
    objects: tuple[tuple[float, float], ...]
    receptacles: tuple[tuple[float, float], ...]
    goal_objects: tuple[int, ...]
    goal_xy: tuple[tuple[float, float], ...]
    seed: int


def _task_seed(task: str) -> int:
    return zlib.crc32(task.encode())


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


def _far_from(point: np.ndarray, others: list[np.ndarray], distance: float) -> bool:
    return all(np.linalg.norm(point - other) >= distance for other in others)


def _sample_layout(task: Task, rng: np.random.Generator, init_id: int) -> InitState | None:
    receptacles: list[np.ndarray] = []
    for _ in task.receptacles:
        point = rng.uniform(-0.7, 0.7, 2)
        if not _far_from(point, receptacles, 0.6):
            return None
        receptacles.append(point)
    goal_xy = []
    for goal in task.goals:
        xy = receptacles[goal.receptacle_slot] + np.array(RELATIONS[goal.relation])
        if np.abs(xy).max() > 0.85:
            return None
        goal_xy.append(xy)
    objects: list[np.ndarray] = []
    for _ in task.objects:
        point = rng.uniform(-0.85, 0.85, 2)
        if not (
            _far_from(point, objects, 0.25) and _far_from(point, receptacles, 0.3) and _far_from(point, goal_xy, 0.35)
        ):
            return None
        objects.append(point)
    goal_objects = []
    for goal in task.goals:
        slot = goal.object_slot
        if goal.selector:
            slot = _resolve_selector(goal.selector, objects[:2], task, receptacles)
            if slot is None:
                return None
        goal_objects.append(slot)
    gripper = (float(rng.uniform(-0.3, 0.3)), float(rng.uniform(-0.9, -0.7)), 0.6)
    return InitState(
        gripper,
        tuple(map(tuple, np.round(objects, 6))),
        tuple(map(tuple, np.round(receptacles, 6))),
        tuple(goal_objects),
        tuple(map(tuple, np.round(goal_xy, 6))),
        int(rng.integers(0, 2**31 - 1)) ^ init_id,
    )


def _resolve_selector(selector: str, pair: list[np.ndarray], task: Task, receptacles: list[np.ndarray]) -> int | None:
    """Which of the two identical blocks the phrase names; None when the layout is ambiguous."""

    def landmark(name: str) -> np.ndarray:
        return receptacles[task.receptacles.index(name)]

    scores = {
        "on the left": lambda p: p[0],
        "on the right": lambda p: -p[0],
        "in front": lambda p: p[1],
        "at the back": lambda p: -p[1],
    }
    for name in ("bowl", "tray", "plate"):
        scores[f"nearest to the {name}"] = lambda p, n=name: np.linalg.norm(p - landmark(n))
        scores[f"farthest from the {name}"] = lambda p, n=name: -np.linalg.norm(p - landmark(n))
    values = [scores[selector](p) for p in pair]
    if abs(values[0] - values[1]) < 0.2:
        return None
    return int(np.argmin(values))


class TabletopVecEnv:
    """A batch of tabletop episodes (implements envs.base.VectorEnv)."""

    def __init__(self, num_envs: int, image_size: int = 64, max_episode_steps: int = 0):
        self.num_envs = num_envs
        self.image_size = image_size
        self._default_max_steps = max_episode_steps
        self.max_episode_steps = max_episode_steps or 60
        n = num_envs
        self.failed = np.zeros(n, dtype=bool)  # the built-in simulator never loses an episode
        self.gripper = np.zeros((n, 3))
        self.closed = np.zeros(n, dtype=bool)
        self.held = np.full(n, -1)
        self.obj_xy = np.zeros((n, MAX_OBJECTS, 2))
        self.obj_kind = np.full((n, MAX_OBJECTS), -1)
        self.goal_obj = np.full((n, MAX_GOALS), -1)
        self.goal_xy = np.zeros((n, MAX_GOALS, 2))
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
        self.goal_obj[:] = -1
        self.t = 0
        self.tasks = list(tasks)
        for i, (task_name, init_id) in enumerate(zip(tasks, init_ids)):
            task, state = CATALOG.task(task_name), init_state(task_name, int(init_id))
            self.instructions[i] = task.instruction
            self.gripper[i] = state.gripper
            for slot, (kind, xy) in enumerate(zip(task.objects, state.objects)):
                self.obj_kind[i, slot] = OBJECT_NAMES.index(kind)
                self.obj_xy[i, slot] = xy
            for g, (slot, xy) in enumerate(zip(state.goal_objects, state.goal_xy)):
                self.goal_obj[i, g] = slot
                self.goal_xy[i, g] = xy
            self.seed[i] = state.seed
            self._background[i] = self._draw_static(task, state)
        return self._observe()

    def step(self, actions: np.ndarray) -> tuple[Observation, np.ndarray]:
        actions = np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0)
        noise = _hash_normal(self.seed, self.t, 2) * EXEC_NOISE_STD
        self.gripper += actions[:, :3] * MOVE_SCALE
        self.gripper[:, :2] += noise
        self.gripper[:, :2] = np.clip(self.gripper[:, :2], -1.0, 1.0)
        self.gripper[:, 2] = np.clip(self.gripper[:, 2], 0.0, 1.0)
        self._actuate_gripper(actions[:, 6] > 0)
        holding = self.held >= 0
        rows = np.nonzero(holding)[0]
        self.obj_xy[rows, self.held[rows]] = self.gripper[rows, :2]
        self.t += 1
        return self._observe(), self.success()

    def _actuate_gripper(self, want_closed: np.ndarray) -> None:
        closing = want_closed & ~self.closed
        opening = ~want_closed & self.closed
        self.held[opening] = -1
        self.closed = want_closed.copy()
        distance = np.linalg.norm(self.obj_xy - self.gripper[:, None, :2], axis=2)
        distance[self.obj_kind < 0] = np.inf
        nearest = distance.argmin(axis=1)
        grasps = closing & (self.gripper[:, 2] < GRASP_HEIGHT) & (distance.min(axis=1) < GRASP_RADIUS)
        self.held[grasps] = nearest[grasps]

    def goals_satisfied(self) -> np.ndarray:
        """[N, MAX_GOALS] bool: each goal's block rests (not held) within tolerance of its goal position."""
        n = self.num_envs
        slots = np.clip(self.goal_obj, 0, MAX_OBJECTS - 1)
        xy = self.obj_xy[np.arange(n)[:, None], slots]
        near = np.linalg.norm(xy - self.goal_xy, axis=-1) < SUCCESS_RADIUS
        released = self.held[:, None] != self.goal_obj
        return np.where(self.goal_obj >= 0, near & released, True)

    def success(self) -> np.ndarray:
        return self.goals_satisfied().all(axis=1)

    def close(self) -> None:
        pass

    # ------------------------------------------------------------------ observation
    def proprio(self) -> np.ndarray:
        finger = np.where(self.closed, np.where(self.held >= 0, FINGER_HOLD, 0.0), FINGER_OPEN)
        return np.concatenate([self.gripper, finger[:, None], -finger[:, None]], axis=1).astype(np.float32)

    def _observe(self) -> Observation:
        return Observation(self.render(), self.proprio(), list(self.instructions))

    def _to_pixels(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        size = self.image_size
        col = np.floor((xy[..., 0] + 1.0) / 2.0 * size).astype(np.int64)
        row = np.floor((1.0 - xy[..., 1]) / 2.0 * size).astype(np.int64)
        return row, col

    def _build_sprites(self) -> None:
        half = max(1, round(0.075 * self.image_size / 2))
        grid = np.arange(-half, half + 1)
        self._block_offsets = np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
        big = half + 4
        grid = np.arange(-big, big + 1)
        offsets = np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
        self._ring_offsets = offsets
        self._ring_radius = np.abs(offsets).max(axis=1)

    def _scatter(
        self, image: np.ndarray, env: np.ndarray, row: np.ndarray, col: np.ndarray, colors: np.ndarray
    ) -> None:
        size = self.image_size
        inside = (row >= 0) & (row < size) & (col >= 0) & (col < size)
        image[env[inside], row[inside], col[inside]] = colors[inside]

    def render(self) -> np.ndarray:
        """Agent-view RGB frames [N, H, W, 3] (uint8) of the current state."""
        image = self._background.copy()
        n = self.num_envs
        env_ids = np.repeat(np.arange(n)[:, None], MAX_OBJECTS, 1)
        drawn = (self.obj_kind >= 0) & (np.arange(MAX_OBJECTS)[None, :] != self.held[:, None])
        self._draw_blocks(image, env_ids[drawn], self.obj_xy[drawn], self.obj_kind[drawn])
        holding = self.held >= 0
        if holding.any():
            rows = np.nonzero(holding)[0]
            self._draw_blocks(image, rows, self.gripper[rows, :2], self.obj_kind[rows, self.held[rows]])
        self._draw_gripper(image)
        return image

    def _draw_blocks(self, image: np.ndarray, env: np.ndarray, xy: np.ndarray, kind: np.ndarray) -> None:
        row, col = self._to_pixels(xy)
        offsets = self._block_offsets
        rows = (row[:, None] + offsets[None, :, 0]).ravel()
        cols = (col[:, None] + offsets[None, :, 1]).ravel()
        envs = np.repeat(env, len(offsets))
        colors = np.repeat(OBJECT_PALETTE[kind], len(offsets), axis=0)
        self._scatter(image, envs, rows, cols, colors)

    def _draw_gripper(self, image: np.ndarray) -> None:
        row, col = self._to_pixels(self.gripper[:, :2])
        radius = np.round((0.05 + 0.07 * self.gripper[:, 2]) * self.image_size / 2).astype(np.int64) + 1
        on_ring = self._ring_radius[None, :] == radius[:, None]
        env, point = np.nonzero(on_ring)
        rows = row[env] + self._ring_offsets[point, 0]
        cols = col[env] + self._ring_offsets[point, 1]
        colors = np.where(self.closed[env, None], GRIPPER_CLOSED_RGB, GRIPPER_OPEN_RGB)
        self._scatter(image, env, rows, cols, colors)

    def _draw_static(self, task: Task, state: InitState) -> np.ndarray:
        size = self.image_size
        coords = (np.arange(size) + 0.5) / size * 2.0 - 1.0
        x = coords[None, :]
        y = -coords[:, None]
        image = np.empty((size, size, 3), dtype=np.uint8)
        image[:] = TABLE_RGB
        for name, (cx, cy) in zip(task.receptacles, state.receptacles):
            rgb, shape = RECEPTACLE_KINDS[name]
            dx, dy = x - cx, y - cy
            radius = np.sqrt(dx**2 + dy**2)
            box = np.maximum(np.abs(dx), np.abs(dy))
            if shape == "disc":
                mask = radius < 0.17
            elif shape == "ring":
                mask = (radius < 0.17) & (radius > 0.09)
            elif shape == "rect":
                mask = (np.abs(dx) < 0.2) & (np.abs(dy) < 0.13)
            else:  # frame: a basket seen from above
                mask = (box < 0.18) & (box > 0.12)
                image[box <= 0.12] = (150, 110, 55)
            image[mask] = rgb
        return image
