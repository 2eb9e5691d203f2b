import pytest

from opd_core.config import ConfigError, RunConfig, field_docs


def test_yaml_round_trip(tmp_path):
    config = RunConfig(name="x", tasks=["a", "b"], lr=1e-3, teacher_checkpoint="t").validate()
    path = tmp_path / "c.yaml"
    config.save(path)
    assert RunConfig.load(path) == config


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"group_size": 0}, "group_size"),
        ({"objective": "kl"}, "objective"),
        ({"lr": -1.0}, "lr"),
        ({"pipeline": "opd", "teacher_checkpoint": ""}, "teacher_checkpoint"),
        ({"pipeline": "sft", "demos": ""}, "demos"),
        ({"pipeline": "grpo", "group_size": 1}, "group_size"),
        ({"pipeline": "opd_then_grpo", "grpo_steps": 0, "teacher_checkpoint": "t"}, "grpo_steps"),
    ],
)
def test_validation_names_the_field(changes, field):
    data = {"teacher_checkpoint": "t", **changes}
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict(data).validate()
    assert info.value.field == field and field in str(info.value)


@pytest.mark.parametrize(
    "data, field",
    [({"nope": 1}, "nope"), ({"steps": "many"}, "steps"), ({"lr": True}, "lr"), ({"tasks": [1]}, "tasks")],
)
def test_unknown_fields_and_wrong_types_are_refused(data, field):
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict(data)
    assert info.value.field == field


def test_bad_yaml_is_a_config_error():
    with pytest.raises(ConfigError):
        RunConfig.from_yaml("steps: [1, 2")


def test_every_field_has_a_docstring():
    docs = field_docs()
    missing = [f for f in RunConfig.__dataclass_fields__ if f not in docs]
    assert not missing
