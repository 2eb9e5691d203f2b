"""Sweep presets return (base config, grid) pairs that launch the paper's comparisons."""

import pytest

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


# ---- from a fresh lab: the shipped checkpoints as the form's defaults ---------------------------------------
def shipped_base() -> dict:
    """The Launch form's defaults on a fresh store: the shipped object teacher and 1-demo student, expert demos
    made at launch."""
    from app import expert_demos
    from app.checkpoints import default_for, shipped_checkpoints

    choices = shipped_checkpoints()
    base = RunConfig().to_dict()
    return {
        **base,
        "demos": expert_demos.GENERATE,
        **{name: default_for(choices, name, base["suite"]) for name in ("teacher_checkpoint", "student_checkpoint")},
    }


def test_every_preset_validates_on_the_forms_defaults_with_the_shipped_checkpoints():
    base = shipped_base()
    assert base["teacher_checkpoint"].endswith("object/teacher")
    assert base["student_checkpoint"].endswith("object/student")
    for preset in PRESETS:
        assert validate_sweep(*preset.build(base)) is None, preset.key


def test_a_refusal_is_a_sentence_naming_the_preset_arm_and_field():
    from app.presets import refusal_sentence

    preset = PRESETS_BY_KEY["objective_ablation"]
    base, grid = preset.build({**BASE, "teacher_checkpoint": ""})
    arm, error = validate_sweep(base, grid)
    message = refusal_sentence(preset, arm, error)
    assert message == (
        "Objective ablation, the run with objective reverse_kl: teacher checkpoint "
        "(teacher_checkpoint): pipeline opd needs a teacher checkpoint"
    )
    assert not any(mark in message for mark in "{}'\"")


def test_expert_demos_are_made_only_for_sft_arms(tmp_path):
    from app import expert_demos

    made = []
    base, grid = PRESETS_BY_KEY["forgetting"].build({**shipped_base(), "num_demos": 2})
    resolved, note = expert_demos.resolve(
        base,
        expand(base, grid),
        lambda rel: tmp_path / rel,
        make=lambda tasks, n, folder: made.append((len(tasks), n, folder)),
    )
    assert resolved["demos"] == "demos/object" and made == [(10, 2, tmp_path / "demos/object")]
    assert "10 object tasks" in note
    base, grid = PRESETS_BY_KEY["objective_ablation"].build(shipped_base())
    resolved, note = expert_demos.resolve(base, expand(base, grid), lambda rel: tmp_path / rel)
    assert resolved["demos"] == "" and note is None


def test_expert_demos_are_written_once_and_reused(tmp_path):
    from app import expert_demos
    from opd_core.data import load_demos

    base = {**shipped_base(), "pipeline": "sft", "num_demos": 1}
    resolved, note = expert_demos.resolve(base, [base], lambda rel: tmp_path / rel)
    demos = load_demos(tmp_path / resolved["demos"], 1)
    assert len(demos.actions) > 0 and note is not None
    again, note = expert_demos.resolve(
        base, [base], lambda rel: tmp_path / rel, make=lambda *args: pytest.fail("made twice")
    )
    assert again["demos"] == resolved["demos"] and note is None


def test_every_preset_is_accepted_by_the_real_api_on_a_fresh_store(lab):
    """worker.api checks that every checkpoint and demo folder exists: the shipped checkpoints and the expert
    demos made for the forgetting study's sft arm pass (the runs stay queued: no worker here)."""
    from app import expert_demos
    from app.presets import sweep_name

    assert lab.list_runs() == []
    for preset in PRESETS:
        base, grid = preset.build({**shipped_base(), "num_demos": 3})  # few demos: seconds, not a minute
        base, _ = expert_demos.resolve(base, expand(base, grid), lab.artifact_path)
        sweep_id, run_ids = lab.launch_sweep(base, grid, sweep_name(preset, base))
        assert len(run_ids) == len(expand(base, grid)), preset.key
    demos = lab.artifact_path("demos/object")
    assert len(list(demos.glob("*.hdf5"))) == 10
    assert {run.status for run in lab.list_runs()} == {"queued"} and len(lab.list_runs()) == 3 + 2 + 3 + 3 + 3
