"""The Launch form generated from RunConfig, and its validation naming the field."""

import dataclasses

import pytest

from app.forms import (HIDDEN_FIELDS, field_sections, field_specs, float_step, parse_seeds, parse_tags,
                       task_choices, validate)
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
    assert task_choices("libero", "libero_object", "tasks") == []


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
