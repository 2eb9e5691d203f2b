"""Grouping runs that differ only by seed, and their labels."""

from app.run_groups import IDENTITY_FIELDS, PER_SUITE_FIELDS, differing_fields, group_runs, method_label
from test_app_fakes import Run, config


def test_method_labels_follow_the_paper():
    assert method_label(config(pipeline="sft")) == "Offline SFT"
    assert method_label(config(pipeline="grpo")) == "GRPO"
    assert method_label(config(pipeline="opd", objective="forward_kl")) == "OPD (forward KL)"
    assert method_label(config(pipeline="opd_then_grpo")) == "OPD (reverse KL) + GRPO"


def test_seeds_of_one_setting_form_one_group():
    runs = [
        Run(1, config=config(seed=0, name="a")),
        Run(2, config=config(seed=1, name="b")),
        Run(3, config=config(seed=0, objective="hard_ce")),
    ]
    groups = group_runs(runs)
    assert [g.run_ids for g in groups] == [(1, 2), (3,)]
    assert groups[0].label == "OPD (reverse KL)" and groups[0].legend == "OPD (reverse KL) (2 seeds)"
    assert groups[1].legend == "OPD (hard CE)"


def test_labels_name_only_the_settings_that_differ():
    runs = [
        Run(1, config=config(group_size=2)),
        Run(2, config=config(group_size=8)),
        Run(3, config=config(group_size=8, seed=3)),
    ]
    labels = [g.label for g in group_runs(runs)]
    assert labels == ["OPD (reverse KL) · G=2", "OPD (reverse KL) · G=8"]


def test_objective_is_ignored_for_pipelines_that_do_not_use_it():
    runs = [
        Run(1, config=config(pipeline="grpo", objective="reverse_kl")),
        Run(2, config=config(pipeline="grpo", objective="hard_ce", seed=1)),
    ]
    assert len(group_runs(runs)) == 1


def test_per_suite_fields_can_be_ignored_for_the_results_table():
    runs = [
        Run(1, config=config(suite="object", teacher_checkpoint="/t/object")),
        Run(2, config=config(suite="goal", teacher_checkpoint="/t/goal")),
    ]
    assert len(group_runs(runs)) == 2
    assert len(group_runs(runs, ignore=IDENTITY_FIELDS | PER_SUITE_FIELDS)) == 1


def test_differing_fields_in_config_order():
    assert differing_fields([{"a": 1, "b": [1], "c": 0}, {"a": 2, "b": [1], "c": 1}], ignore={"c"}) == ["a"]
