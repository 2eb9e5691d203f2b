"""The built-in tabletop's task catalogue: objects, receptacles, relations, and the suites built from them.

Suites mirror LIBERO's: `spatial` (two identical blocks told apart by where they are), `object` (which of several
objects goes into the basket), `goal` (one fixed scene, ten goals), `long` (two chained pick-and-place goals),
plus `pretrain` (a broad LIBERO-90-like set that never shows the basket) and `unseen` (held-out compositions
for the forgetting study). Everything here is data: the simulator and the expert interpret it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from opd_core.envs.common import TaskCatalog

OBJECT_KINDS = {  # name -> RGB
    "red block": (220, 40, 40),
    "green block": (40, 170, 60),
    "blue block": (40, 70, 220),
    "yellow block": (235, 205, 30),
    "orange block": (245, 130, 20),
    "purple block": (130, 50, 170),
    "cyan block": (30, 200, 210),
    "pink block": (245, 120, 180),
    "white block": (250, 250, 250),
    "black block": (25, 25, 25),
}
RECEPTACLE_KINDS = {  # name -> (RGB, shape)
    "plate": ((238, 238, 230), "disc"),
    "bowl": ((120, 70, 35), "ring"),
    "tray": ((120, 125, 140), "rect"),
    "basket": ((185, 135, 60), "frame"),
}
RELATIONS = {  # relation words -> goal offset from the receptacle centre (x right, y towards the back)
    "on": (0.0, 0.0),
    "in": (0.0, 0.0),
    "to the left of": (-0.36, 0.0),
    "to the right of": (0.36, 0.0),
    "in front of": (0.0, -0.36),
    "behind": (0.0, 0.36),
}
SELECTORS = (  # how a spatial task names one of two identical blocks
    "nearest to the bowl",
    "nearest to the tray",
    "farthest from the bowl",
    "farthest from the tray",
    "on the left",
    "on the right",
    "in front",
    "at the back",
    "nearest to the plate",
    "farthest from the plate",
)

OBJECT_NAMES = list(OBJECT_KINDS)
RECEPTACLE_NAMES = list(RECEPTACLE_KINDS)


@dataclass(frozen=True)
class Goal:
    object_slot: int
    """Which scene object must move (for spatial tasks: the first of the identical pair, see `selector`)."""
    receptacle_slot: int
    relation: str
    selector: str = ""
    """Spatial tasks: the phrase that picks one of the two identical blocks at reset."""


@dataclass(frozen=True)
class Task:
    name: str
    suite: str
    instruction: str
    objects: tuple[str, ...]
    receptacles: tuple[str, ...]
    goals: tuple[Goal, ...]


MAX_OBJECTS = 4
MAX_RECEPTACLES = 3
SUITE_MAX_STEPS = {"spatial": 50, "object": 50, "goal": 50, "long": 90, "pretrain": 50, "unseen": 50}


def _slug(text: str) -> str:
    return text.replace(" ", "_")


def _distractors(rng: random.Random, exclude: set[str], count: int) -> list[str]:
    return rng.sample([name for name in OBJECT_NAMES if name not in exclude], count)


def _place_task(
    suite: str, kind: str, receptacle: str, relation: str, rng: random.Random, others: tuple[str, ...] = ()
) -> Task:
    receptacles = (receptacle, *others)
    objects = (kind, *_distractors(rng, {kind}, 2))
    return Task(
        name=f"{suite}/put_{_slug(kind)}_{_slug(relation)}_{receptacle}",
        suite=suite,
        instruction=f"put the {kind} {relation} the {receptacle}",
        objects=objects,
        receptacles=receptacles,
        goals=(Goal(0, 0, relation),),
    )


def _object_suite() -> list[Task]:
    rng = random.Random(1)
    tasks = []
    for kind in OBJECT_NAMES:
        objects = (kind, *_distractors(rng, {kind}, 3))
        tasks.append(
            Task(
                f"object/pick_{_slug(kind)}_into_basket",
                "object",
                f"pick up the {kind} and place it in the basket",
                objects,
                ("basket",),
                (Goal(0, 0, "in"),),
            )
        )
    return tasks


def _spatial_suite() -> list[Task]:
    tasks = []
    for selector in SELECTORS:
        tasks.append(
            Task(
                f"spatial/pick_black_block_{_slug(selector)}",
                "spatial",
                f"pick up the black block {selector} and place it on the plate",
                ("black block", "black block"),
                ("plate", "bowl", "tray"),
                (Goal(0, 0, "on", selector),),
            )
        )
    return tasks


GOAL_SCENE_OBJECTS = ("red block", "blue block", "yellow block")
GOAL_SCENE_RECEPTACLES = ("plate", "bowl", "tray")
GOAL_SUITE_GOALS = (  # (object slot, receptacle slot, relation)
    (0, 0, "on"),
    (1, 1, "in"),
    (2, 2, "on"),
    (0, 1, "in"),
    (1, 2, "on"),
    (2, 0, "on"),
    (0, 2, "to the left of"),
    (1, 0, "behind"),
    (2, 1, "to the right of"),
    (0, 0, "in front of"),
)


def _goal_suite() -> list[Task]:
    tasks = []
    for obj, rec, relation in GOAL_SUITE_GOALS:
        kind, receptacle = GOAL_SCENE_OBJECTS[obj], GOAL_SCENE_RECEPTACLES[rec]
        tasks.append(
            Task(
                f"goal/put_{_slug(kind)}_{_slug(relation)}_{receptacle}",
                "goal",
                f"put the {kind} {relation} the {receptacle}",
                GOAL_SCENE_OBJECTS,
                GOAL_SCENE_RECEPTACLES,
                (Goal(obj, rec, relation),),
            )
        )
    return tasks


def _long_suite() -> list[Task]:
    rng = random.Random(4)
    tasks = []
    pairs = [(a, b) for a in OBJECT_NAMES[:5] for b in OBJECT_NAMES[5:]]
    for first, second in rng.sample(pairs, 10):
        objects = (first, second, *_distractors(rng, {first, second}, 1))
        tasks.append(
            Task(
                f"long/{_slug(first)}_on_plate_then_{_slug(second)}_in_bowl",
                "long",
                f"put the {first} on the plate and then put the {second} in the bowl",
                objects,
                ("plate", "bowl"),
                (Goal(0, 0, "on"), Goal(1, 1, "in")),
            )
        )
    return tasks


PLACE_RELATIONS = ("on", "to the left of", "to the right of", "in front of", "behind")
UNSEEN_COMBOS = (  # held out of pre-training: compositions the base never practised
    ("red block", "tray", "behind"),
    ("green block", "plate", "to the left of"),
    ("blue block", "bowl", "in front of"),
    ("yellow block", "plate", "to the right of"),
)


def _pretrain_and_unseen() -> tuple[list[Task], list[Task]]:
    rng = random.Random(90)
    combos = [(k, r, rel) for k in OBJECT_NAMES for r in ("plate", "bowl", "tray") for rel in PLACE_RELATIONS]
    candidates = [c for c in combos if c not in UNSEEN_COMBOS]
    chosen = sorted(rng.sample(candidates, 90), key=combos.index)
    pretrain = []
    for kind, receptacle, relation in chosen:
        other = rng.choice([r for r in ("plate", "bowl", "tray") if r != receptacle])
        pretrain.append(_place_task("pretrain", kind, receptacle, relation, rng, (other,)))
    unseen = []
    for kind, receptacle, relation in UNSEEN_COMBOS:
        other = rng.choice([r for r in ("plate", "bowl", "tray") if r != receptacle])
        unseen.append(_place_task("unseen", kind, receptacle, relation, rng, (other,)))
    return pretrain, unseen


def _build() -> dict[str, list[Task]]:
    pretrain, unseen = _pretrain_and_unseen()
    return {
        "spatial": _spatial_suite(),
        "object": _object_suite(),
        "goal": _goal_suite(),
        "long": _long_suite(),
        "pretrain": pretrain,
        "unseen": unseen,
    }


CATALOG = TaskCatalog("tabletop", _build(), SUITE_MAX_STEPS)
