"""The checkpoints shipped in assets/tabletop (made by `opd train` on configs/pretrain_base, teacher_object and
student_object_1demo) load, agree on action statistics, are the finished runs of those configs, and behave as the
study needs: a teacher that solves the object suite, a 1-demo student far below it, a base that never saw it."""

from pathlib import Path

import pytest
import torch

from opd_core.checkpoint import load_policy, read_meta
from opd_core.config import RunConfig
from opd_core.envs.tabletop.sim import TabletopVecEnv
from opd_core.envs.tabletop.tasks import CATALOG
from opd_core.evaluate import evaluate

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = {
    "base": ("assets/tabletop/base", "configs/pretrain_base.yaml"),
    "teacher": ("assets/tabletop/object/teacher", "configs/teacher_object.yaml"),
    "student": ("assets/tabletop/object/student", "configs/student_object_1demo.yaml"),
}


@pytest.mark.parametrize("role", sorted(SHIPPED))
def test_shipped_checkpoint_loads_and_matches_its_recipe(role):
    folder, config_file = SHIPPED[role]
    meta = read_meta(ROOT / folder)
    recipe = RunConfig.load(ROOT / config_file)
    assert meta["step"] == recipe.steps
    assert {k: meta["run_config"][k] for k in ("pipeline", "suite", "num_demos", "lr")} == {
        "pipeline": recipe.pipeline,
        "suite": recipe.suite,
        "num_demos": recipe.num_demos,
        "lr": recipe.lr,
    }
    policy = load_policy(ROOT / folder)
    obs = TabletopVecEnv(2).reset(CATALOG.suite_tasks("object")[:2], [0, 1])
    logits = policy(obs)
    assert logits.shape == (2, 7, 256) and torch.isfinite(logits).all()


def test_teacher_and_student_share_action_statistics():
    teacher = load_policy(ROOT / SHIPPED["teacher"][0])
    student = load_policy(ROOT / SHIPPED["student"][0])
    student.tokenizer.check_compatible(teacher.tokenizer)


EVAL_INIT_STATES = 3
"""Fixed initial states per object-suite task (30 greedy episodes per checkpoint, a few seconds on a CPU)."""


@pytest.fixture(scope="module")
def object_success():
    """Greedy success of each shipped checkpoint over the object suite's first EVAL_INIT_STATES initial states.
    Measured (3 states; 10 states in brackets): teacher 1.00 (1.00), student 0.63 (0.62), base 0.03 (0.02)."""
    tasks = CATALOG.suite_tasks("object")
    return {
        role: evaluate(
            load_policy(ROOT / folder), "tabletop", tasks, [], init_states=EVAL_INIT_STATES, temperature=0.0
        ).seen_success
        for role, (folder, _) in SHIPPED.items()
    }


def test_shipped_teacher_solves_the_object_suite_far_better_than_the_1demo_student(object_success):
    teacher, student, base = object_success["teacher"], object_success["student"], object_success["base"]
    assert teacher >= 0.9, object_success
    assert teacher - student >= 0.2, f"the 1-demo student leaves OPD nothing to close: {object_success}"
    assert student > base + 0.3, f"the 1-demo student did not learn the suite: {object_success}"
    assert base <= 0.2, f"the base was never trained on the basket: {object_success}"
