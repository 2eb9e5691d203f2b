"""The checkpoints shipped in assets/tabletop (made by `opd train` on configs/pretrain_base, teacher_object and
student_object_1demo) load, agree on action statistics, and are the finished runs of those configs."""

from pathlib import Path

import pytest
import torch

from opd_core.checkpoint import load_policy, read_meta
from opd_core.config import RunConfig
from opd_core.envs.tabletop.sim import TabletopVecEnv
from opd_core.envs.tabletop.tasks import CATALOG

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = {"base": ("assets/tabletop/base", "configs/pretrain_base.yaml"),
           "teacher": ("assets/tabletop/object/teacher", "configs/teacher_object.yaml"),
           "student": ("assets/tabletop/object/student", "configs/student_object_1demo.yaml")}


@pytest.mark.parametrize("role", sorted(SHIPPED))
def test_shipped_checkpoint_loads_and_matches_its_recipe(role):
    folder, config_file = SHIPPED[role]
    meta = read_meta(ROOT / folder)
    recipe = RunConfig.load(ROOT / config_file)
    assert meta["step"] == recipe.steps
    assert {k: meta["run_config"][k] for k in ("pipeline", "suite", "num_demos", "lr")} == \
        {"pipeline": recipe.pipeline, "suite": recipe.suite, "num_demos": recipe.num_demos, "lr": recipe.lr}
    policy = load_policy(ROOT / folder)
    obs = TabletopVecEnv(2).reset(CATALOG.suite_tasks("object")[:2], [0, 1])
    logits = policy(obs)
    assert logits.shape == (2, 7, 256) and torch.isfinite(logits).all()


def test_teacher_and_student_share_action_statistics():
    teacher = load_policy(ROOT / SHIPPED["teacher"][0])
    student = load_policy(ROOT / SHIPPED["student"][0])
    student.tokenizer.check_compatible(teacher.tokenizer)
