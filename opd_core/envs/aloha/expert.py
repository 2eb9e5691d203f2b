"""The privileged scripted ALOHA expert (runs inside the environment workers, next to the MuJoCo physics).

Like the scripts ACT and gym-aloha record their demos with, it plans end-effector waypoints from the objects'
poses and turns them into joint targets; unlike an open-loop replay it re-plans at every step from the current
state, so it also labels states a student drove off the expert's path:
- a plan (`transfer_plan`, `insertion_plan`) gives, for the episode's time t, each gripper's target grip point
  (between the fingertips), its orientation (tilts of the start pose) and its opening. Before a grasp the targets
  follow the object's current pose; a carried object is steered by where it is, not where the gripper is;
- damped least-squares inverse kinematics (`ArmIK`) on a scratch copy of the physics turns each arm's target into
  its 6 joint targets, starting from the arm's current joints.
The expert's action at a state is written into the privileged state (`tasks.STATE_DIM`), where the `aloha_expert`
teacher reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

GRIP_OFFSET = 0.13
"""Grip point: this far along the gripper link's x axis (the approach axis), between the outer finger pads (the
fingers span about 0.055-0.15 m of it)."""
MAX_JOINT_STEP = 0.06
"""A joint target is at most this far (rad) from the joint's position: about 3 rad/s at 50 Hz, so that a target
that jumped (a re-planned waypoint, a student's off-path state) never makes the arm whip and fling what it holds."""
MAX_HOLD_OFFSET = 0.03
"""A carried object's offset from the grip point counts up to this far (m): an object that slipped out is not
chased away (steering a dropped object by its offset would lift the gripper without end)."""
ARMS = ("left", "right")
ARM_QPOS = {"left": slice(0, 6), "right": slice(8, 14)}
FINGER_QPOS = {"left": slice(6, 8), "right": slice(14, 16)}


def rot_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


@dataclass(frozen=True)
class Waypoint:
    t: int
    point: np.ndarray
    """Grip point target (world xyz); with `carry`, the target of the object the arm holds."""
    tilt: float
    """Rotation of the start orientation about the world y axis (rad): tips the approach axis down."""
    roll: float
    """Rotation about the world x axis (rad): 90 degrees closes the fingers vertically."""
    gripper: float
    """Opening: 0 closed, 1 open (gym-aloha's normalized gripper action)."""
    carry: bool = False


def interpolate(plan: list[Waypoint], t: float) -> Waypoint:
    """The target at time t, linear between the waypoints around it (held after the last one)."""
    if t <= plan[0].t:
        return plan[0]
    for a, b in zip(plan, plan[1:]):
        if t <= b.t:
            f = (t - a.t) / max(b.t - a.t, 1e-9)
            return Waypoint(
                int(t),
                a.point + f * (b.point - a.point),
                a.tilt + f * (b.tilt - a.tilt),
                a.roll + f * (b.roll - a.roll),
                a.gripper + f * (b.gripper - a.gripper),
                b.carry,
            )
    return plan[-1]


POSTURE_WEIGHT = np.array([0.0, 0.0, 0.0, 0.03, 0.0, 0.03])
"""IK pulls the two roll joints (forearm roll, wrist rotate) gently towards their posture (0, and the target's
roll for the wrist): the grip orientations here need little else, and without the pull the solve drifts into the
flipped-roll twin of a pose (roll and rotate at +-pi), far outside the action range."""


class ArmIK:
    """Damped least-squares IK of one arm's grip point and orientation on a scratch `MjData`."""

    def __init__(
        self,
        model,
        side: str,
        iterations: int = 10,
        damping: float = 1e-3,
        rotation_weight: float = 0.35,
        max_step: float = 0.15,
    ):
        self.model = model
        self.data = mujoco.MjData(model)
        self.body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, f"vx300s_{side}/gripper_link")
        self.qpos = ARM_QPOS[side]
        self.dofs = np.arange(self.qpos.start, self.qpos.stop)  # hinge joints: qpos and dof indices coincide
        self.low = model.jnt_range[self.dofs, 0]
        self.high = model.jnt_range[self.dofs, 1]
        self.iterations, self.damping, self.rotation_weight = iterations, damping, rotation_weight
        self.max_step = max_step
        """Largest joint change of one iteration (rad): keeps the solve near the current configuration."""
        self.jacp = np.zeros((3, model.nv))
        self.jacr = np.zeros((3, model.nv))

    def solve(self, qpos: np.ndarray, point: np.ndarray, rotation: np.ndarray, roll: float = 0.0) -> np.ndarray:
        data = self.data
        data.qpos[:] = qpos
        q = qpos[self.qpos].copy()
        posture = np.array([0.0, 0.0, 0.0, 0.0, 0.0, roll])
        for _ in range(self.iterations):
            data.qpos[self.qpos] = q
            mujoco.mj_kinematics(self.model, data)
            mujoco.mj_comPos(self.model, data)
            frame = data.xmat[self.body].reshape(3, 3)
            grip = data.xpos[self.body] + GRIP_OFFSET * frame[:, 0]
            position_error = point - grip
            rotation_error = 0.5 * sum(np.cross(frame[:, i], rotation[:, i]) for i in range(3))
            mujoco.mj_jac(self.model, data, self.jacp, self.jacr, grip, self.body)
            jac = np.vstack(
                [self.jacp[:, self.dofs], self.rotation_weight * self.jacr[:, self.dofs], np.diag(POSTURE_WEIGHT)]
            )
            error = np.concatenate(
                [position_error, self.rotation_weight * rotation_error, POSTURE_WEIGHT * (posture - q)]
            )
            if np.linalg.norm(error[:6]) < 1e-4:
                break
            step = np.linalg.solve(jac.T @ jac + self.damping * np.eye(6), jac.T @ error)
            step *= min(1.0, self.max_step / max(np.abs(step).max(), 1e-12))
            q = np.clip(q + step, self.low, self.high)
        now = qpos[self.qpos]
        return now + np.clip(q - now, -MAX_JOINT_STEP, MAX_JOINT_STEP)


def grip_points(physics) -> dict[str, np.ndarray]:
    """Each gripper's grip point (world xyz)."""
    points = {}
    for side in ARMS:
        name = f"vx300s_{side}/gripper_link"
        frame = physics.named.data.xmat[name].reshape(3, 3)
        points[side] = physics.named.data.xpos[name] + GRIP_OFFSET * frame[:, 0]
    return points


# ------------------------------------------------------------------------------------------------ plans
# Plans are rebuilt at every step from the objects' current positions, so every target is closed-loop: before a
# grasp the gripper follows where the object is; a `carry` waypoint says where the held object should go.
MEET = np.array([0.0, 0.5, 0.25])
"""Where the cube changes hands (world xyz)."""
TILT = np.deg2rad(60.0)
"""How far a picking gripper's approach axis points down from horizontal."""
VERTICAL = np.pi / 2
"""Roll that makes a horizontal gripper close its fingers vertically."""


CUBE_GRASP, PEG_GRASP, SOCKET_GRASP = 0.012, 0.020, 0.012
"""Height of the grip point above each object's centre at the grasp: about 1 cm below its top face for the cube
and the socket (4 cm tall), at the flat peg's top (2 cm tall; taken nearly vertically, PEG_TILT): fingertips that
press on the table jam and never close, and the 256-bin joint grid moves the grip a few mm either way."""
PEG_TILT = np.deg2rad(80.0)


def _pick(t0: int, obj: np.ndarray, start: np.ndarray, tilt: float, side: float, lift: float) -> list[Waypoint]:
    """Start -> above the object (back along the tilted approach) -> down onto it -> close, and hold still until
    the fingers have closed (closing while moving flings the object): ends at t0 + 105."""
    above = obj + np.array([0.05 * side, 0.0, 0.09])
    grasp = obj + np.array([0.0, 0.0, lift])
    return [
        Waypoint(t0, start, 0.0, 0.0, 1.0),
        Waypoint(t0 + 50, above, tilt, 0.0, 1.0),
        Waypoint(t0 + 75, grasp, tilt, 0.0, 1.0),
        Waypoint(t0 + 90, grasp, tilt, 0.0, 0.0),
        Waypoint(t0 + 105, grasp, tilt, 0.0, 0.0),
    ]


def transfer_plan(cube: np.ndarray, start: dict[str, np.ndarray]) -> dict[str, list[Waypoint]]:
    """TransferCube: the right arm picks the cube (approach tilted down from +x) and brings it to MEET; the left
    arm comes in horizontally with its fingers closing vertically and grips the cube's -x half; the right arm lets
    go and backs off."""
    right = _pick(0, cube, start["right"], -TILT, 1.0, CUBE_GRASP) + [
        Waypoint(150, MEET, -TILT, 0.0, 0.0, carry=True),
        Waypoint(215, MEET, -TILT, 0.0, 0.0, carry=True),
        Waypoint(230, MEET, -TILT, 0.0, 1.0, carry=True),
        Waypoint(260, MEET + np.array([0.10, 0.0, 0.04]), -TILT, 0.0, 1.0),
    ]
    hand_over = MEET + np.array([-0.02, 0.0, 0.0])
    left = [
        Waypoint(0, start["left"], 0.0, 0.0, 1.0),
        Waypoint(110, MEET + np.array([-0.14, 0.0, 0.0]), 0.0, VERTICAL, 1.0),
        Waypoint(175, hand_over, 0.0, VERTICAL, 1.0),
        Waypoint(195, hand_over, 0.0, VERTICAL, 0.0),
        Waypoint(240, hand_over, 0.0, VERTICAL, 0.0),
        Waypoint(280, MEET + np.array([-0.10, 0.0, 0.0]), 0.0, VERTICAL, 0.0),
    ]
    return {"left": left, "right": right}


SOCKET_MEET = np.array([-0.07, 0.5, 0.17])
"""Insertion: where the socket waits (its centre)."""
PEG_TO_SOCKET = 0.10
"""Insertion: the peg's centre this far on +x of the socket's centre is as deep as it goes (its end at the pin)."""


def insertion_plan(peg: np.ndarray, socket: np.ndarray, start: dict[str, np.ndarray]) -> dict[str, list[Waypoint]]:
    """Insertion: both arms pick (tilted down, from outside); the socket goes to SOCKET_MEET, the peg to the
    socket's axis on +x at the socket's height, then slides in along -x."""
    along = socket + np.array([PEG_TO_SOCKET, 0.0, 0.0])  # the socket's current pose: closed-loop alignment
    right = _pick(0, peg, start["right"], -PEG_TILT, 1.0, PEG_GRASP) + [
        Waypoint(150, SOCKET_MEET + np.array([PEG_TO_SOCKET + 0.08, 0.0, 0.0]), -PEG_TILT, 0.0, 0.0, carry=True),
        Waypoint(180, along + np.array([0.07, 0.0, 0.0]), -PEG_TILT, 0.0, 0.0, carry=True),
        Waypoint(250, along - np.array([0.01, 0.0, 0.0]), -PEG_TILT, 0.0, 0.0, carry=True),
    ]
    left = _pick(0, socket, start["left"], TILT, -1.0, SOCKET_GRASP) + [
        Waypoint(150, SOCKET_MEET, TILT, 0.0, 0.0, carry=True),
        Waypoint(250, SOCKET_MEET, TILT, 0.0, 0.0, carry=True),
    ]
    return {"left": left, "right": right}


class ScriptedExpert:
    """gym-aloha joint targets for both arms from the current physics state and the episode's time t."""

    def __init__(self, physics, task: str):
        self.physics = physics
        self.task = task
        self.ik = {side: ArmIK(physics.model.ptr, side) for side in ARMS}
        self.start_point: dict[str, np.ndarray] = {}
        self.start_rotation: dict[str, np.ndarray] = {}

    def capture_start(self) -> None:
        """Remember the grippers' start poses (the same START_ARM_POSE in every episode)."""
        self.start_point = {k: v.copy() for k, v in grip_points(self.physics).items()}
        self.start_rotation = {
            side: self.physics.named.data.xmat[f"vx300s_{side}/gripper_link"].reshape(3, 3).copy() for side in ARMS
        }

    def objects(self) -> list[np.ndarray]:
        """Positions of the objects the arms carry: (cube,) or (peg, socket)."""
        qpos = self.physics.data.qpos
        if self.task == "transfer_cube":
            return [qpos[16:19].copy()]
        return [qpos[16:19].copy(), qpos[23:26].copy()]

    def carried(self, side: str) -> int | None:
        """The index in `objects()` of what this arm picks (TransferCube's left arm takes the cube at MEET)."""
        if self.task == "transfer_cube":
            return 0 if side == "right" else None
        return 0 if side == "right" else 1

    def joint_targets(self, t: int) -> np.ndarray:
        """gym-aloha's 14-D joint-position action (rad; grippers 0 closed .. 1 open) at step t."""
        objects = self.objects()
        if self.task == "transfer_cube":
            plan = transfer_plan(objects[0], self.start_point)
        else:
            plan = insertion_plan(objects[0], objects[1], self.start_point)
        points = grip_points(self.physics)
        qpos = self.physics.data.qpos.copy()
        action = np.zeros(14)
        for k, side in enumerate(ARMS):
            target = interpolate(plan[side], t + 1)
            point = target.point
            held = self.carried(side)
            if target.carry and held is not None:  # move the grip point so that the object goes to the target
                offset = points[side] - objects[held]
                point = point + offset * min(1.0, MAX_HOLD_OFFSET / max(np.linalg.norm(offset), 1e-9))
            rotation = rot_x(target.roll) @ rot_y(target.tilt) @ self.start_rotation[side]
            action[7 * k : 7 * k + 6] = self.ik[side].solve(qpos, point, rotation, target.roll)
            action[7 * k + 6] = target.gripper
        return action
