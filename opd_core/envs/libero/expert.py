"""The privileged scripted expert for LIBERO-Object's pick-and-place tasks, and its calibrated action logits.

It is a stateless function of the privileged state vector (`sim.PRIV`: hand pose, finger opening, the target's,
the basket's and the neighbouring objects' bounding boxes, whether the fingers hold the target), so it can label any
state a student visits: hover above the target with the fingers across its narrow side (turned just enough that
the hand clears tall neighbours), descend, close, lift clear of the basket rim, carry the object over the basket
centre, lower it half-way in, open. A grasp that closed on nothing re-opens and tries again.

Actions are LIBERO's OSC_POSE deltas in [-1, 1]: xyz (1 = 5 cm), axis-angle rotation (1 = 0.5 rad), gripper
(+1 closes). As a teacher, `expert_logits` turns the expert's action into per-dimension categorical logits over the
student's action bins: a Gaussian around the expert's value whose width (in normalised action units) is the
spread of actions the expert still succeeds with, plus a small uniform floor so that every KL stays finite.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opd_core.envs.libero.sim import PRIV

POS_SCALE = 0.05
"""Metres of end-effector motion per unit of position action (robosuite OSC_POSE output_max)."""
ROT_SCALE = 0.5
"""Radians per unit of rotation action."""


@dataclass(frozen=True)
class ExpertParams:
    hover_clearance: float = 0.06
    """Height of the hand above the target's top while moving to it."""
    finger_depth: float = 0.03
    """How far below the target's top the grip site goes for tall objects."""
    min_grasp_height: float = 0.012
    """Lowest grip-site height above the floor (fingertips must not dig into it)."""
    align_tolerance: float = 0.008
    """Horizontal distance to the grasp point (m) below which the hand descends."""
    yaw_tolerance: float = 0.15
    """Finger yaw error (rad) below which the hand descends."""
    rim_clearance: float = 0.04
    """How far above the basket rim the object's bottom is carried."""
    release_tolerance: float = 0.02
    """Horizontal distance of the object from the basket centre at which it starts to go down into it."""
    release_depth: float = 0.5
    """The object is released when its bottom is this fraction of the way from the floor up to the rim."""
    position_gain: float = 1.0
    rotation_gain: float = 1.0
    max_speed: float = 1.0
    """Cap on each position action (1 = 5 cm per step)."""
    elongated: float = 1.25
    """Targets longer than this ratio are grasped across their narrow side; rounder ones at any yaw."""
    max_grasp_width: float = 0.072
    """Widest span the open fingers can close on (the Panda opens to about 8 cm)."""
    hand_clearance: float = 0.006
    """Horizontal gap wanted between the hand and any object tall enough to hit it at grasp height."""


HAND_HALF_LENGTH, HAND_HALF_WIDTH = 0.105, 0.036
"""Footprint of the Panda hand around the grip site: along the finger axis, and across it (metres)."""
HAND_BOTTOM = 0.026
"""Height of the hand's underside above the grip site (the fingers reach 1.3 cm below it)."""
_CANDIDATE_OFFSETS = np.deg2rad(np.arange(-90.0, 90.0, 7.5))


def _wrap_half_turn(angle: np.ndarray) -> np.ndarray:
    """Wrap to (-pi/2, pi/2]: a parallel gripper is symmetric under a half turn."""
    return (angle + np.pi / 2) % np.pi - np.pi / 2


def expert_actions(state: np.ndarray, params: ExpertParams = ExpertParams()) -> np.ndarray:
    """Expert actions [N, 7] in [-1, 1] for privileged state vectors [N, PRIV.SIZE]."""
    s = np.atleast_2d(np.asarray(state, dtype=np.float64))
    n = len(s)
    eef = s[:, PRIV.EEF]
    center, half = s[:, PRIV.TARGET_CENTER], s[:, PRIV.TARGET_HALF]
    top, bottom = center[:, 2] + half[:, 2], center[:, 2] - half[:, 2]
    floor = s[:, PRIV.FLOOR]
    basket_xy, basket_top = s[:, PRIV.BASKET_CENTER], s[:, PRIV.BASKET_TOP]
    grasped = s[:, PRIV.GRASPED] > 0.5
    opening = s[:, PRIV.OPENING]
    success = s[:, PRIV.SUCCESS] > 0.5
    valid = s[:, PRIV.VALID] > 0.5

    # ---- where the grip site should be to grasp, and with which finger yaw
    height = top - bottom
    grasp_z = np.where(height > 2 * params.finger_depth + 0.01, top - params.finger_depth, center[:, 2])
    grasp_z = np.maximum(grasp_z, floor + params.min_grasp_height)
    grasp_yaw = _grasp_yaw(s, grasp_z, params)
    yaw_error = _wrap_half_turn(grasp_yaw - s[:, PRIV.FINGER_YAW])
    to_target = center[:, :2] - eef[:, :2]
    distance = np.linalg.norm(to_target, axis=1)
    obstacle_top = s[:, PRIV.OBSTACLES].reshape(n, -1, 4)[:, :, 3].max(axis=1)
    hover_z = np.maximum(np.maximum(top, obstacle_top) + params.hover_clearance, grasp_z + params.hover_clearance)

    target = eef.copy()
    close = np.zeros(n, dtype=bool)
    rotate = np.ones(n, dtype=bool)

    # ---- approach: hover, align, descend, close
    aligned = (distance < params.align_tolerance) & (np.abs(yaw_error) < params.yaw_tolerance)
    near_xy = distance < 3 * params.align_tolerance
    low = eef[:, 2] < top + 0.02
    climb = ~aligned & low & ~near_xy  # far from the target and low: go up before moving sideways
    target[:, :2] = np.where(climb[:, None], eef[:, :2], center[:, :2])
    target[:, 2] = np.where(aligned, grasp_z, np.where(near_xy & ~low, eef[:, 2], hover_z))
    target[:, 2] = np.where(near_xy & ~aligned & low, eef[:, 2], target[:, 2])  # re-centre in place when close
    at_grasp = aligned & (eef[:, 2] < grasp_z + 0.01)
    close |= at_grasp
    empty_grip = (opening < 0.004) & ~grasped  # closed on nothing: open and start over
    close &= ~empty_grip
    target[:, 2] = np.where(empty_grip, np.maximum(eef[:, 2] + 0.02, target[:, 2]), target[:, 2])

    # ---- carry: lift above the rim, move the object over the basket, lower it in, release
    object_offset = center[:, :2] - eef[:, :2]
    destination = basket_xy - object_offset
    to_basket = destination - eef[:, :2]
    basket_distance = np.linalg.norm(to_basket, axis=1)
    carry_bottom = basket_top + params.rim_clearance
    carry_z = eef[:, 2] + (carry_bottom + 0.01 - bottom)
    inside = (bottom < basket_top) & (np.linalg.norm(center[:, :2] - basket_xy, axis=1) < s[:, PRIV.BASKET_INNER])
    over_basket = (basket_distance < params.release_tolerance) | inside
    release_bottom = floor + params.release_depth * (basket_top - floor)
    lowered = bottom < release_bottom + 0.01
    lifting = bottom < carry_bottom - 0.005
    lower_z = eef[:, 2] - (bottom - release_bottom)
    carry_target = np.where(
        lifting[:, None] & ~over_basket[:, None],
        np.column_stack([eef[:, :2], carry_z]),
        np.column_stack([destination, carry_z]),
    )
    carry_target = np.where(over_basket[:, None], np.column_stack([destination, lower_z]), carry_target)
    target = np.where(grasped[:, None], carry_target, target)
    close = np.where(grasped, ~(over_basket & lowered), close)
    rotate &= ~grasped  # hold the grasp orientation while carrying (only levelling)

    # ---- done: open and back off upwards
    target = np.where(success[:, None], eef + np.array([0.0, 0.0, 0.02]), target)
    close &= ~success

    actions = np.zeros((n, 7))
    actions[:, :3] = np.clip(params.position_gain * (target - eef) / POS_SCALE, -params.max_speed, params.max_speed)
    actions[:, 3:6] = np.clip(
        params.rotation_gain * _rotation(s, np.where(rotate, yaw_error, 0.0)) / ROT_SCALE, -1.0, 1.0
    )
    actions[:, 6] = np.where(close, 1.0, -1.0)
    actions[~valid] = np.array([0, 0, 0, 0, 0, 0, -1.0])
    return actions


def _grasp_yaw(s: np.ndarray, grasp_z: np.ndarray, params: ExpertParams) -> np.ndarray:
    """Finger-axis yaw to grasp with: across the target's narrow side where possible, turned just enough that the
    hand clears neighbouring objects tall enough to hit it; round targets keep the nearest clear yaw."""
    n = len(s)
    long, short = s[:, PRIV.TARGET_LONG], np.maximum(s[:, PRIV.TARGET_SHORT], 1e-4)
    elongated = long / short > params.elongated
    across = s[:, PRIV.TARGET_YAW] + np.pi / 2  # finger axis along the target's short side
    offsets = _CANDIDATE_OFFSETS[None, :]
    candidates = across[:, None] + offsets  # [N, K]
    width = short[:, None] * np.abs(np.cos(offsets)) + long[:, None] * np.abs(np.sin(offsets))
    feasible = np.where(elongated[:, None], width < params.max_grasp_width, True)
    # clearance of the hand footprint (a rectangle along each candidate axis) from every tall-enough obstacle
    obstacles = s[:, PRIV.OBSTACLES].reshape(n, -1, 4)
    relative = obstacles[:, None, :, :2] - s[:, None, None, PRIV.TARGET_CENTER][..., :2]  # [N, 1, M, 2]
    axis = np.stack([np.cos(candidates), np.sin(candidates)], axis=-1)[:, :, None, :]  # [N, K, 1, 2]
    along = np.abs((relative * axis).sum(-1))
    across_axis = np.abs(relative[..., 0] * axis[..., 1] - relative[..., 1] * axis[..., 0])
    gap = np.hypot(np.maximum(along - HAND_HALF_LENGTH, 0.0), np.maximum(across_axis - HAND_HALF_WIDTH, 0.0))
    gap = gap - obstacles[:, None, :, 2]
    tall = obstacles[:, None, :, 3] > grasp_z[:, None, None] + HAND_BOTTOM - 0.01
    clearance = np.where(tall, gap, np.inf).min(axis=2)  # [N, K]
    clear = feasible & (clearance >= params.hand_clearance)
    # preference: the narrow side for elongated targets, the current finger yaw for round ones
    preferred = np.where(elongated, across, s[:, PRIV.FINGER_YAW])
    turn = np.abs(_wrap_half_turn(candidates - preferred[:, None]))
    score = np.where(clear, -turn, np.where(feasible, -10.0 + np.minimum(clearance, 1.0), -100.0))
    best = np.argmax(score, axis=1)
    return candidates[np.arange(n), best]


def _rotation(s: np.ndarray, yaw_error: np.ndarray) -> np.ndarray:
    """World-frame axis-angle that keeps the hand pointing down and turns it by `yaw_error` about z."""
    approach = s[:, PRIV.APPROACH]
    down = np.array([0.0, 0.0, -1.0])
    axis = np.cross(approach, down)
    sin = np.linalg.norm(axis, axis=1, keepdims=True)
    cos = np.clip(approach @ down, -1.0, 1.0)[:, None]
    tilt = axis / np.maximum(sin, 1e-9) * np.arctan2(sin, cos)
    tilt[:, 2] += yaw_error
    return tilt


# ============================================================================================ calibrated logits
@dataclass(frozen=True)
class LogitParams:
    sigma: tuple[float, ...] = (0.08, 0.08, 0.08, 0.05, 0.05, 0.05, 0.02)
    """Std of the expert's action distribution per dimension, in normalised action units ([-1, 1] spans 256
    bins; 0.08 is about 10 bins, i.e. 4 mm of hand motion for xyz): actions within this spread still succeed."""
    floor: float = 1e-4
    """Probability mass spread uniformly over all bins (keeps log-probs finite for any student bin)."""


def expert_logits(actions: np.ndarray, tokenizer, params: LogitParams = LogitParams()) -> np.ndarray:
    """Per-dimension logits [N, D, K] (log-probabilities) of a Gaussian around the expert's actions [N, D]."""
    normalized = tokenizer.normalize(np.asarray(actions, dtype=np.float64))  # [N, D] in [-1, 1]
    centers = tokenizer.bin_centers()  # [K]
    sigma = np.asarray(params.sigma[: normalized.shape[1]], dtype=np.float64)
    z = (centers[None, None, :] - normalized[:, :, None]) / sigma[None, :, None]
    logp = -0.5 * z**2
    logp -= logp.max(axis=-1, keepdims=True)
    p = np.exp(logp)
    p /= p.sum(axis=-1, keepdims=True)
    p = (1.0 - params.floor) * p + params.floor / len(centers)
    return np.log(p).astype(np.float32)
