"""The dual-arm `twin` env's task catalogue: object kinds, receptacles, reach zones, and the suites built from them.

Two grippers work over one table: the left arm reaches x in [-1, 0.3], the right arm x in [-0.3, 1], so only the
middle strip |x| < 0.3 is shared. Objects placed on one side (|x| >= 0.5) can be touched by that side's arm alone,
and heavy objects (a pot, a roller) move only when both grippers hold their two handles: coordination matters.

Suites: `twin`, ten tasks named after and shaped like RoboTwin 2.0's (the paper's Table 3 and Figure 4 tasks plus
six more), `pretrain`, a broad set of dual-arm compositions of the same skills with other objects that never
repeats a `twin` task, and `unseen`, held-out compositions for the forgetting study. Everything here is data: the
simulator and the expert interpret it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from opd_core.envs.common import TaskCatalog

ARMS = ("left", "right")
REACH_X = ((-1.0, 0.3), (-0.3, 1.0))
"""Per arm (left, right): the x range its gripper can reach; the strip between -0.3 and 0.3 is shared."""
ZONES_X = {"left": (-0.85, -0.5), "right": (0.5, 0.85), "center": (-0.12, 0.12)}
"""Where an item starts (x range). `side` is one random side per initial state and `other` the opposite one."""
ZONE_Y = (-0.55, 0.6)


@dataclass(frozen=True)
class ObjectKind:
    rgb: tuple[int, int, int]
    shape: str
    """square | ring | rect (half extents `size` x `size_y`) | bar (a heavy object with a handle at each end)."""
    size: float
    """Half extent in world units (x for rect and bar)."""
    size_y: float = 0.0
    heavy: bool = False
    """Moves only when both grippers hold its handles (at x -/+ HANDLE_OFFSET): one arm cannot lift it."""
    stackable: bool = False
    tool: bool = False
    """Striking another object with it (held, low, above that object) marks that object hit."""


HANDLE_OFFSET = 0.3
"""Distance of a heavy object's handles from its centre along x (left handle for the left arm)."""

_COLORS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 70, 220),
    "yellow": (235, 205, 30),
    "orange": (245, 130, 20),
    "purple": (130, 50, 170),
    "cyan": (30, 200, 210),
    "pink": (245, 120, 180),
}
OBJECT_KINDS: dict[str, ObjectKind] = {
    **{f"{c} block": ObjectKind(rgb, "square", 0.05, stackable=True) for c, rgb in _COLORS.items()},
    **{
        f"{c} bottle": ObjectKind(rgb, "rect", 0.035, 0.06)
        for c, rgb in _COLORS.items()
        if c in ("red", "green", "blue", "yellow", "cyan")
    },
    **{
        f"{c} bowl": ObjectKind(rgb, "ring", 0.08, stackable=True)
        for c, rgb in _COLORS.items()
        if c in ("pink", "cyan", "orange", "green")
    },
    **{f"{c} can": ObjectKind(rgb, "square", 0.04) for c, rgb in _COLORS.items() if c in ("red", "blue", "green")},
    "empty cup": ObjectKind((250, 250, 250), "ring", 0.055),
    "hammer": ObjectKind((90, 60, 30), "rect", 0.03, 0.09, tool=True),
    "microphone": ObjectKind((30, 30, 30), "rect", 0.025, 0.07),
    "left shoe": ObjectKind((120, 70, 40), "rect", 0.04, 0.07),
    "right shoe": ObjectKind((150, 90, 50), "rect", 0.04, 0.07),
    "pot": ObjectKind((110, 110, 120), "bar", 0.34, 0.1, heavy=True),
    "roller": ObjectKind((200, 160, 100), "bar", 0.36, 0.035, heavy=True),
    "crate": ObjectKind((150, 100, 50), "bar", 0.34, 0.12, heavy=True),
}
RECEPTACLE_KINDS = {  # name -> (RGB, shape, half extent): flat regions drawn into the table
    "coaster": ((70, 90, 70), "disc", 0.11),
    "stove": ((40, 40, 40), "disc", 0.16),
    "shoe box": ((200, 150, 200), "rect", 0.26),
    "plastic box": ((160, 200, 230), "rect", 0.24),
    "red pad": ((200, 110, 110), "rect", 0.12),
    "blue pad": ((110, 130, 210), "rect", 0.12),
    "green pad": ((120, 190, 120), "rect", 0.12),
    "mat": ((90, 90, 150), "rect", 0.26),
}
OBJECT_NAMES = list(OBJECT_KINDS)
RECEPTACLE_NAMES = list(RECEPTACLE_KINDS)

PLANS = (
    "dual_lift",
    "place",
    "handover_place",
    "handover_hold",
    "stack",
    "hammer",
    "heavy_lift",
    "heavy_place",
    "dual_place",
)
"""Skills the expert knows; a task names one (see `opd_core.envs.twin.expert`)."""


@dataclass(frozen=True)
class Item:
    kind: str
    zone: str
    """left | right | center | side | other (see `ZONES_X`)."""


@dataclass(frozen=True)
class Goal:
    kind: str
    """place (object rests on receptacle `arg`) | stack (object rests on object `arg`) | lift (object held up; by
    the arm on side `arm` only when `arm` is set) | hit (object struck with a tool)."""
    obj: int
    arg: int = -1
    arm: str = ""
    """lift: "" any arm (both for a heavy object) or a zone (left, right, side, other) naming the one arm."""


@dataclass(frozen=True)
class Task:
    name: str
    suite: str
    instruction: str
    plan: str
    objects: tuple[Item, ...]
    receptacles: tuple[Item, ...]
    goals: tuple[Goal, ...]


MAX_OBJECTS = 3
MAX_RECEPTACLES = 1
MAX_GOALS = 2
SUITE_MAX_STEPS = {"twin": 90, "pretrain": 90, "unseen": 90}


# ------------------------------------------------------------------------------------------------ skills
def _slug(text: str) -> str:
    return text.replace(" ", "_")


def dual_lift(suite: str, name: str, first: str, second: str, instruction: str = "") -> Task:
    return Task(
        name,
        suite,
        instruction or f"pick up the {first} and the {second} at the same time",
        "dual_lift",
        (Item(first, "left"), Item(second, "right")),
        (),
        (Goal("lift", 0), Goal("lift", 1)),
    )


def place(suite: str, name: str, kind: str, receptacle: str, instruction: str = "") -> Task:
    return Task(
        name,
        suite,
        instruction or f"put the {kind} on the {receptacle}",
        "place",
        (Item(kind, "side"),),
        (Item(receptacle, "side"),),
        (Goal("place", 0, 0),),
    )


def handover_place(suite: str, name: str, kind: str, receptacle: str, instruction: str = "") -> Task:
    return Task(
        name,
        suite,
        instruction or f"hand the {kind} to the other arm and put it on the {receptacle}",
        "handover_place",
        (Item(kind, "side"),),
        (Item(receptacle, "other"),),
        (Goal("place", 0, 0),),
    )


def handover_hold(suite: str, name: str, kind: str, instruction: str = "") -> Task:
    return Task(
        name,
        suite,
        instruction or f"hand the {kind} over to the other arm and hold it up",
        "handover_hold",
        (Item(kind, "side"),),
        (),
        (Goal("lift", 0, arm="other"),),
    )


def stack(suite: str, name: str, bottom: str, top: str, instruction: str = "") -> Task:
    return Task(
        name,
        suite,
        instruction or f"stack the {top} on the {bottom}",
        "stack",
        (Item(bottom, "side"), Item(top, "other")),
        (),
        (Goal("stack", 1, 0),),
    )


def hammer(suite: str, name: str, target: str, instruction: str = "") -> Task:
    return Task(
        name,
        suite,
        instruction or f"pick up the hammer and beat the {target}",
        "hammer",
        (Item("hammer", "side"), Item(target, "center")),
        (),
        (Goal("hit", 1),),
    )


def heavy_lift(suite: str, name: str, kind: str, instruction: str = "") -> Task:
    return Task(
        name,
        suite,
        instruction or f"lift the {kind} with both hands",
        "heavy_lift",
        (Item(kind, "center"),),
        (),
        (Goal("lift", 0),),
    )


def heavy_place(suite: str, name: str, kind: str, receptacle: str, instruction: str = "") -> Task:
    return Task(
        name,
        suite,
        instruction or f"carry the {kind} with both hands onto the {receptacle}",
        "heavy_place",
        (Item(kind, "center"),),
        (Item(receptacle, "center"),),
        (Goal("place", 0, 0),),
    )


def dual_place(suite: str, name: str, first: str, second: str, receptacle: str, instruction: str = "") -> Task:
    return Task(
        name,
        suite,
        instruction or f"put the {first} and the {second} in the {receptacle}",
        "dual_place",
        (Item(first, "left"), Item(second, "right")),
        (Item(receptacle, "center"),),
        (Goal("place", 0, 0), Goal("place", 1, 0)),
    )


# ------------------------------------------------------------------------------------------------ suites
def _twin_suite() -> list[Task]:
    s = "twin"
    return [
        dual_lift(
            s,
            "twin/pick_dual_bottles",
            "red bottle",
            "blue bottle",
            "pick up the red bottle and the blue bottle with both arms at once",
        ),
        place(s, "twin/place_empty_cup", "empty cup", "coaster", "place the empty cup on the coaster"),
        handover_place(
            s,
            "twin/handover_block",
            "green block",
            "blue pad",
            "hand the green block over to the other arm and put it on the blue pad",
        ),
        stack(s, "twin/stack_bowls_two", "pink bowl", "cyan bowl", "stack the cyan bowl on the pink bowl"),
        hammer(s, "twin/beat_block_hammer", "yellow block", "pick up the hammer and beat the yellow block"),
        heavy_place(s, "twin/lift_pot", "pot", "stove", "lift the pot with both hands and put it on the stove"),
        heavy_lift(s, "twin/grab_roller", "roller", "grab the roller with both hands and lift it"),
        dual_place(
            s,
            "twin/place_dual_shoes",
            "left shoe",
            "right shoe",
            "shoe box",
            "put the left shoe and the right shoe in the shoe box",
        ),
        handover_hold(s, "twin/handover_mic", "microphone", "hand the microphone over to the other arm and hold it up"),
        dual_place(
            s,
            "twin/place_cans_plasticbox",
            "red can",
            "blue can",
            "plastic box",
            "put the red can and the blue can in the plastic box",
        ),
    ]


UNSEEN = (  # held out of pre-training: compositions the base never practised
    ("place", "purple block", "green pad"),
    ("handover_place", "yellow bottle", "red pad"),
    ("stack", "orange bowl", "green bowl"),
    ("dual_lift", "green can", "cyan bottle"),
)


def _compose(suite: str, plan: str, *args: str) -> Task:
    parts = "_".join(_slug(a) for a in args)
    builders = {
        "place": place,
        "handover_place": handover_place,
        "stack": stack,
        "dual_lift": dual_lift,
        "hammer": hammer,
        "heavy_lift": heavy_lift,
        "heavy_place": heavy_place,
        "dual_place": dual_place,
        "handover_hold": handover_hold,
    }
    return builders[plan](suite, f"{suite}/{plan}_{parts}", *args)


def shape(task: Task) -> tuple[str, ...]:
    """What a task asks for, independent of its name: its skill and the kinds of its objects and receptacles."""
    return (task.plan, *(item.kind for item in (*task.objects, *task.receptacles)))


def _pretrain_and_unseen(twin: list[Task]) -> tuple[list[Task], list[Task]]:
    rng = random.Random(15)
    blocks = [n for n in OBJECT_NAMES if n.endswith("block")]
    bottles = [n for n in OBJECT_NAMES if n.endswith("bottle")]
    bowls = [n for n in OBJECT_NAMES if n.endswith("bowl")]
    cans = [n for n in OBJECT_NAMES if n.endswith("can")]
    small = blocks + bottles + cans
    pads = [n for n in RECEPTACLE_NAMES if n.endswith("pad")] + ["coaster"]
    candidates = (
        [("place", k, r) for k in small + ["empty cup"] for r in pads]
        + [("handover_place", k, r) for k in small + ["microphone"] for r in pads]
        + [("handover_hold", k) for k in small]
        + [
            ("stack", a, b)
            for a in blocks + bowls
            for b in blocks + bowls
            if a != b and a.endswith("bowl") == b.endswith("bowl")
        ]
        + [("dual_lift", a, b) for a in bottles + cans for b in bottles + cans if a != b]
        + [("hammer", k) for k in blocks + cans]
        + [("heavy_lift", k) for k in ("pot", "crate")]
        + [("heavy_place", k, r) for k in ("roller", "crate", "pot") for r in ("mat", "stove", "plastic box")]
        + [
            ("dual_place", a, b, r)
            for a in blocks + cans
            for b in blocks + cans
            if a != b
            for r in ("mat", "plastic box", "shoe box")
        ]
    )
    held_out = {shape(t) for t in twin} | {shape(_compose("unseen", *c)) for c in UNSEEN}
    by_plan: dict[str, list[tuple[str, ...]]] = {}
    for candidate in candidates:
        if shape(_compose("pretrain", *candidate)) not in held_out:
            by_plan.setdefault(candidate[0], []).append(candidate)
    quota = {
        "place": 10,
        "handover_place": 10,
        "handover_hold": 5,
        "stack": 8,
        "dual_lift": 8,
        "hammer": 5,
        "heavy_lift": 2,
        "heavy_place": 6,
        "dual_place": 10,
    }
    pretrain = [_compose("pretrain", *c) for plan, n in quota.items() for c in rng.sample(by_plan[plan], n)]
    unseen = [_compose("unseen", *c) for c in UNSEEN]
    return pretrain, unseen


def _build() -> dict[str, list[Task]]:
    twin = _twin_suite()
    pretrain, unseen = _pretrain_and_unseen(twin)
    return {"twin": twin, "pretrain": pretrain, "unseen": unseen}


CATALOG = TaskCatalog("twin", _build(), SUITE_MAX_STEPS)
