"""Sweep presets return (base config, grid) pairs that launch the paper's comparisons."""

from app.presets import PRESETS, PRESETS_BY_KEY, expand, validate_sweep, with_seeds
from opd_core.config import RunConfig

BASE = RunConfig(teacher_checkpoint="/t", student_checkpoint="/s", demos="/d", steps=40).to_dict()


def test_every_preset_validates_on_a_complete_base():
    for preset in PRESETS:
        base, grid = preset.build(BASE)
        assert grid and validate_sweep(base, grid) is None, preset.key


def test_preset_grids():
    assert PRESETS_BY_KEY["objective_ablation"].build(BASE)[1] == {"objective": ["reverse_kl", "forward_kl", "hard_ce"]}
    assert PRESETS_BY_KEY["opd_vs_grpo"].build(BASE)[1] == {"pipeline": ["opd", "grpo"]}
    base, grid = PRESETS_BY_KEY["distill_then_grpo"].build(BASE)
    assert grid == {"pipeline": ["grpo", "opd", "opd_then_grpo"]} and base["grpo_steps"] == 40
    assert PRESETS_BY_KEY["group_size"].build(BASE)[1] == {"group_size": [2, 4, 8]}


def test_forgetting_study_evaluates_unseen_tasks_often():
    base, grid = PRESETS_BY_KEY["forgetting"].build(BASE)
    assert grid == {"pipeline": ["sft", "grpo", "opd"]}
    assert base["unseen_tasks"] and all(t.startswith("unseen/") for t in base["unseen_tasks"])
    assert base["eval_every"] == 4


def test_a_missing_teacher_is_reported_with_the_arm_and_field():
    base, grid = PRESETS_BY_KEY["opd_vs_grpo"].build({**BASE, "teacher_checkpoint": ""})
    arm, error = validate_sweep(base, grid)
    assert arm == {"pipeline": "opd"} and error.field == "teacher_checkpoint"


def test_seeds_become_an_axis_and_expand_multiplies():
    grid = with_seeds({"objective": ["reverse_kl", "hard_ce"]}, [0, 1, 2])
    configs = expand(BASE, grid)
    assert len(configs) == 6 and {c["seed"] for c in configs} == {0, 1, 2}
    assert with_seeds({"g": [1]}, [5]) == {"g": [1]}
