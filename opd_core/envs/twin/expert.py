"""The dual-arm scripted expert: solves every twin task from privileged state (positions, grasps, goals).

Like the tabletop's it is a stateless function of the simulator state, so it can label any state (DART-style noisy
demos, or as an oracle in tests). Each task names a skill (`tasks.PLANS`); a skill gives each arm a target position
and a gripper command from three primitives: pick (hover over the grasp point, descend, close), carry (hover to
a destination, descend, open) and hold (stay or lift, closed). The arms coordinate through the state alone: the
receiving arm of a handover closes only once the giver holds the object still at the handover point, the arm that
stacks waits above the middle until the base rests there, both arms lift a heavy object only once both hold it.

The skills are written per environment (plain Python on scalars, for clarity); batches are small and the expert
runs only to generate demos and in tests, never in the training loop.
"""

from __future__ import annotations

import numpy as np

from opd_core.envs.twin.sim import HANDLE_X, HOME, KIND_HEAVY, LIFT_Z, STACK_HEIGHT, TwinVecEnv
from opd_core.envs.twin.tasks import CATALOG

HOVER_Z = 0.4
ALIGN_RADIUS = 0.05
HANDOVER_XY = np.array([0.0, -0.1])
HANDOVER_Z = 0.3
HANDOVER_TOLERANCE = 0.09
PLACE_Z = 0.05
HOLD_X = 0.6
"""Where the receiving arm of `handover_hold` shows the object: its own side of the table."""

Target = tuple[np.ndarray, bool]
"""(xyz the gripper heads for, whether it should be closed)."""


def expert_actions(env: TwinVecEnv) -> np.ndarray:
    """Continuous 14-D expert actions [N, 14] in [-1, 1] (left arm's 7, then the right arm's) for every env."""
    actions = np.zeros((env.num_envs, 14))
    for i in range(env.num_envs):
        plan = CATALOG.task(env.tasks[i]).plan
        targets = _SKILLS[plan](_Scene(env, i))
        for arm, (xyz, close) in enumerate(targets):
            a = actions[i, 7 * arm : 7 * arm + 7]
            a[:2] = np.clip((xyz[:2] - env.arm[i, arm, :2]) / 0.1, -1.0, 1.0)
            a[2] = np.clip((xyz[2] - env.arm[i, arm, 2]) / 0.2, -1.0, 1.0)
            a[6] = 1.0 if close else -1.0
    finished = env.success()
    actions[finished] = np.where(np.arange(14) % 7 == 6, actions[finished], 0.0)
    return actions


class _Scene:
    """One environment's state, read by the skills."""

    def __init__(self, env: TwinVecEnv, i: int):
        self.env, self.i = env, i
        self.side = int(env.side[i])

    def pos(self, arm: int) -> np.ndarray:
        return self.env.arm[self.i, arm]

    def obj(self, m: int) -> np.ndarray:
        return np.array([*self.env.obj_xy[self.i, m], self.env.obj_z[self.i, m]])

    def holds(self, arm: int, m: int) -> bool:
        return bool(self.env.held[self.i, arm] == m)

    def held_by_any(self, m: int) -> bool:
        return bool((self.env.held[self.i] == m).any())

    def heavy(self, m: int) -> bool:
        return bool(KIND_HEAVY[self.env.obj_kind[self.i, m]])

    def receptacle(self, slot: int = 0) -> np.ndarray:
        return self.env.receptacle_xy[self.i, slot]

    # ------------------------------------------------------------------ primitives
    def home(self, arm: int) -> Target:
        return np.array(HOME[arm]), False

    def pick(self, arm: int, m: int, align: float = ALIGN_RADIUS) -> Target:
        point = self.obj(m)
        if self.heavy(m):
            point[0] += HANDLE_X[arm]
        here = self.pos(arm)
        if self.env.closed[self.i, arm] and not self.holds(arm, m):  # a missed grasp, or something else in hand
            return np.array([here[0], here[1], point[2] + 0.25]), False
        distance = np.linalg.norm(point[:2] - here[:2])
        if distance >= align:
            return np.array([point[0], point[1], max(point[2] + 0.25, HOVER_Z if point[2] < 0.05 else 0.0)]), False
        return point, abs(here[2] - point[2]) < 0.06

    def carry(self, arm: int, m: int, destination: np.ndarray, release_z: float = PLACE_Z) -> Target:
        """Bring the held object `m` over `destination` (its centre) and let it go at `release_z`."""
        offset = HANDLE_X[arm] if self.heavy(m) else 0.0
        target = np.array([destination[0] + offset, destination[1], HOVER_Z])
        if np.linalg.norm(self.obj(m)[:2] - destination) >= ALIGN_RADIUS:
            return target, True
        target[2] = release_z
        return target, self.pos(arm)[2] > release_z + 0.04

    def hold(self, arm: int, z: float | None = None) -> Target:
        here = self.pos(arm).copy()
        if z is not None:
            here[2] = z
        return here, True


# ------------------------------------------------------------------------------------------------ skills
def _dual_lift(s: _Scene) -> list[Target]:
    return [s.hold(arm, LIFT_Z + 0.1) if s.holds(arm, arm) else s.pick(arm, arm) for arm in (0, 1)]


def _place(s: _Scene) -> list[Target]:
    arm = s.side
    targets = [s.home(0), s.home(1)]
    targets[arm] = s.carry(arm, 0, s.receptacle()) if s.holds(arm, 0) else s.pick(arm, 0)
    return targets


def _handover(s: _Scene, finish) -> list[Target]:
    giver, receiver = s.side, 1 - s.side
    targets = [s.home(0), s.home(1)]
    by_giver, by_receiver = s.holds(giver, 0), s.holds(receiver, 0)
    if by_receiver and not by_giver:
        targets[receiver] = finish(receiver)
    elif by_giver and by_receiver:
        targets[giver] = s.pos(giver).copy(), False
        targets[receiver] = s.hold(receiver)
    elif by_giver:
        point = np.array([*HANDOVER_XY, HANDOVER_Z])
        targets[giver] = point, True
        if np.linalg.norm(s.obj(0) - point) < HANDOVER_TOLERANCE:  # held out there: take it (it may still jitter)
            targets[receiver] = s.pick(receiver, 0, align=HANDOVER_TOLERANCE)
        else:
            wait = point + np.array([0.15 if receiver else -0.15, 0.0, 0.15])
            targets[receiver] = wait, False
    else:
        targets[giver] = s.pick(giver, 0)
        targets[receiver] = np.array([*HANDOVER_XY, HANDOVER_Z + 0.15]), False
    return targets


def _handover_place(s: _Scene) -> list[Target]:
    return _handover(s, lambda arm: s.carry(arm, 0, s.receptacle()))


def _handover_hold(s: _Scene) -> list[Target]:
    def show(arm: int) -> Target:
        return np.array([HOLD_X if arm else -HOLD_X, s.pos(arm)[1], LIFT_Z + 0.1]), True

    return _handover(s, show)


def _stack(s: _Scene) -> list[Target]:
    below, above = s.side, 1 - s.side  # object 0 (the base) starts on the `side` arm's half, object 1 on the other
    base = s.obj(0)
    middle = np.array([0.0, base[1]])
    settled = not s.held_by_any(0) and abs(base[0]) < ALIGN_RADIUS + 0.02
    targets = [s.home(0), s.home(1)]
    if not settled:
        targets[below] = s.carry(below, 0, middle) if s.holds(below, 0) else s.pick(below, 0)
    if not s.holds(above, 1):
        targets[above] = s.pick(above, 1)
    elif not settled:
        targets[above] = np.array([0.25 if above else -0.25, s.pos(above)[1], HOVER_Z]), True
    else:
        targets[above] = s.carry(above, 1, base[:2], base[2] + STACK_HEIGHT + 0.04)
    return targets


def _hammer(s: _Scene) -> list[Target]:
    arm = s.side
    targets = [s.home(0), s.home(1)]
    if not s.holds(arm, 0):
        targets[arm] = s.pick(arm, 0)
    else:
        block = s.obj(1)
        aligned = np.linalg.norm(block[:2] - s.pos(arm)[:2]) < ALIGN_RADIUS
        targets[arm] = np.array([block[0], block[1], 0.04 if aligned else HOVER_Z]), True
    return targets


def _heavy(s: _Scene, destination: np.ndarray | None) -> list[Target]:
    both = s.holds(0, 0) and s.holds(1, 0)
    targets = []
    for arm in (0, 1):
        if not s.holds(arm, 0):
            targets.append(s.pick(arm, 0))
        elif not both:
            targets.append(s.hold(arm))
        elif destination is None:
            targets.append(s.hold(arm, LIFT_Z + 0.1))
        else:
            targets.append(s.carry(arm, 0, destination))
    return targets


def _heavy_lift(s: _Scene) -> list[Target]:
    return _heavy(s, None)


def _heavy_place(s: _Scene) -> list[Target]:
    if not s.held_by_any(0) and np.linalg.norm(s.obj(0)[:2] - s.receptacle()) < ALIGN_RADIUS:
        return [s.home(0), s.home(1)]
    return _heavy(s, s.receptacle())


def _dual_place(s: _Scene) -> list[Target]:
    targets = []
    for arm in (0, 1):
        spot = s.receptacle() + np.array([0.1 if arm else -0.1, 0.0])
        if s.holds(arm, arm):
            targets.append(s.carry(arm, arm, spot))
        elif not s.held_by_any(arm) and np.linalg.norm(s.obj(arm)[:2] - spot) < ALIGN_RADIUS + 0.02:
            targets.append(s.home(arm))
        else:
            targets.append(s.pick(arm, arm))
    return targets


_SKILLS = {
    "dual_lift": _dual_lift,
    "place": _place,
    "handover_place": _handover_place,
    "handover_hold": _handover_hold,
    "stack": _stack,
    "hammer": _hammer,
    "heavy_lift": _heavy_lift,
    "heavy_place": _heavy_place,
    "dual_place": _dual_place,
}
