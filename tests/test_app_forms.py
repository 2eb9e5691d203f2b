"""The Launch form generated from RunConfig, and its validation naming the field."""

import dataclasses
import importlib.util

import pytest

from app.forms import (
    HIDDEN_FIELDS,
    field_sections,
    field_specs,
    float_step,
    parse_seeds,
    parse_tags,
    task_choices,
    validate,
)
from opd_core.config import ConfigError, RunConfig


def test_every_visible_config_field_has_a_widget_spec_with_help():
    specs = {spec.name: spec for spec in field_specs()}
    assert set(specs) == {f.name for f in dataclasses.fields(RunConfig)} - set(HIDDEN_FIELDS)
    assert specs["pipeline"].kind == "choice" and "opd" in specs["pipeline"].choices
    assert specs["objective"].choices == ("reverse_kl", "reverse_kl_exact", "forward_kl", "hard_ce")
    assert specs["group_size"].kind == "int" and specs["lr"].kind == "float"
    assert specs["tasks"].kind == "tasks" and specs["teacher_checkpoint"].kind == "checkpoint"
    assert specs["name"].kind == "text"
    assert all(spec.help for spec in specs.values())


def test_sections_come_from_the_config_source():
    sections = field_sections()
    assert sections["pipeline"] == "what to run" and sections["lr"] == "optimisation"
    assert sections["teacher_checkpoint"] == "policies"


def test_task_choices_follow_the_suite():
    assert all(task.startswith("object/") for task in task_choices("tabletop", "object", "tasks"))
    unseen = task_choices("tabletop", "object", "unseen_tasks")
    assert unseen[0].startswith("unseen/") and len(unseen) == len(set(unseen))
    libero = task_choices("libero", "libero_object", "tasks")
    if importlib.util.find_spec("libero") is None:
        assert libero == []  # the extra is not installed: the form offers a free-text task list
    else:
        assert len(libero) == 10 and "pick_up_the_ketchup_and_place_it_in_the_basket" in libero


def test_validate_names_the_bad_field():
    values = RunConfig(teacher_checkpoint="/t").to_dict()
    config, error = validate({**values, "group_size": 0})
    assert config is None and error.field == "group_size" and "at least 1" in error.message
    config, error = validate({**values, "teacher_checkpoint": None})
    assert error.field == "teacher_checkpoint"
    config, error = validate(values)
    assert error is None and config.teacher_checkpoint == "/t"


def test_parse_seeds_and_tags():
    assert parse_seeds("0") == [0] and parse_seeds("0, 1, 1, 2") == [0, 1, 2] and parse_seeds("3-5") == [3, 4, 5]
    for bad in ("", "a", "5-3"):
        with pytest.raises(ConfigError) as info:
            parse_seeds(bad)
        assert info.value.field == "seed"
    assert parse_tags(" a, b,,a ") == ["a", "b"]


def test_float_step_is_of_the_order_of_the_default():
    assert float_step(3e-4) == pytest.approx(1e-4) and float_step(0.0) == 0.1


def test_a_refusal_names_the_field_in_words():
    from app.forms import error_sentence

    sentence = error_sentence(ConfigError("group_size", "must be at least 1"))
    assert sentence == "Group size (group_size): must be at least 1"


# ---- the checkpoint pickers -------------------------------------------------------------------------------
def test_shipped_checkpoints_are_found_with_readable_names_and_roles():
    from app.checkpoints import shipped_checkpoints, shipped_root

    root = shipped_root()
    assert root is not None and (root / "object" / "teacher" / "meta.json").is_file()
    choices = shipped_checkpoints()
    assert {choice.role for choice in choices} == {"base", "teacher", "student"}
    teachers = {choice.suite: choice for choice in choices if choice.role == "teacher"}
    students = {choice.suite: choice for choice in choices if choice.role == "student"}
    assert set(teachers) == set(students) == {"spatial", "object", "goal", "long", "twin"}  # a pair per suite
    assert {choice.env for choice in choices if choice.suite != "twin" and choice.role != "base"} == {"tabletop"}
    assert teachers["object"].label == "object teacher · shipped · seen 100% · step 1500"
    assert students["object"].label.startswith("object 1-demo student · ")
    assert [choice.label for choice in choices if choice.role == "base"][0].startswith("pre-trained base · shipped")


def test_pickers_put_the_fields_role_on_the_suite_first_and_prefer_the_labs_own():
    from app.checkpoints import checkpoint_choices, default_for, ordered_for
    from test_app_fakes import Checkpoint, FakeApi, config, summary

    lab = FakeApi()
    run = lab.add_run(config=config(pipeline="sft", suite="object", num_demos=50, demos="/d", name="my-teacher"))
    lab.checkpoint_rows[run.id] = [Checkpoint(run.id, 7, f"runs/{run.id}/checkpoints/step_7", summary(0.8))]
    choices = checkpoint_choices(lab)
    assert choices[0].label == "#1 my-teacher · object teacher · seen 80% · step 7"
    assert default_for(choices, "teacher_checkpoint", "object") == f"{lab.data_dir}/runs/1/checkpoints/step_7"
    assert default_for(choices, "student_checkpoint", "object").endswith("object/student")
    assert default_for(choices, "teacher_checkpoint", "spatial").endswith("spatial/teacher")  # the shipped one
    assert default_for(choices, "teacher_checkpoint", "pretrain") == ""  # no teacher for that suite: none
    assert [c.role for c in ordered_for(choices, "student_checkpoint", "object")][:1] == ["student"]
    distilled = lab.add_run(config=config(objective="forward_kl", name="fkl"))
    lab.checkpoint_rows[distilled.id] = [Checkpoint(distilled.id, 30, "runs/2/checkpoints/step_30", summary(0.6))]
    assert checkpoint_choices(lab)[0].label == "#2 fkl · OPD (forward KL) · seen 60% · step 30"


# ---- the Launch page on its defaults, from a fresh store ----------------------------------------------------
def open_launch(data_dir):
    from streamlit.testing.v1 import AppTest

    from app import backend
    from test_app_fakes import FakeApi

    lab = FakeApi(data_dir=str(data_dir))
    backend.install(lab)

    def script():
        from app.main import main

        main(default="launch")

    return lab, AppTest.from_function(script, default_timeout=30).run()


@pytest.fixture
def uninstall_api():
    yield
    from app import backend

    backend.uninstall()


def test_every_preset_launches_on_the_forms_defaults_from_a_fresh_store(tmp_path, monkeypatch, uninstall_api):
    from app import expert_demos
    from app.presets import PRESETS, expand

    made = []
    monkeypatch.setattr(expert_demos, "generate", lambda tasks, n, folder, env: made.append((tasks, n, folder)))
    for preset in PRESETS:
        lab, at = open_launch(tmp_path)
        labels = [button.label for button in at.button]
        at.button[labels.index(preset.title)].click().run()
        assert not at.exception and not at.error, (preset.key, [e.value for e in at.error])
        (call,) = [c for c in lab.calls if c[0] == "launch_sweep"]
        base, grid = call[1], call[2]
        assert base["teacher_checkpoint"].endswith("object/teacher"), preset.key
        assert base["student_checkpoint"].endswith("object/student"), preset.key
        sft = [arm for arm in expand(base, grid) if arm["pipeline"] == "sft"]
        assert base["demos"] == ("demos/object" if sft else ""), preset.key
        assert f"{preset.title}: {len(lab.runs)} runs queued" in " ".join(s.value for s in at.success)
    assert [(len(tasks), folder) for tasks, _, folder in made] == [(10, tmp_path / "demos" / "object")]


def test_a_preset_refused_on_a_cleared_teacher_says_so_in_a_sentence(tmp_path, uninstall_api):
    lab, at = open_launch(tmp_path)
    at.selectbox(key="launch_teacher_checkpoint").set_value("")
    labels = [button.label for button in at.button]
    at.button[labels.index("Objective ablation")].click().run()
    messages = [e.value for e in at.error]
    assert (
        "Not launched: Objective ablation, the run with objective reverse_kl: teacher checkpoint "
        "(teacher_checkpoint): pipeline opd needs a teacher checkpoint"
    ) in messages
    assert not any("{" in m for m in messages) and not [c for c in lab.calls if c[0] == "launch_sweep"]
