"""A miniature of `opd reproduce --suites twin`: tiny dual-arm policies, 2 twin tasks, 2 steps per method, assets
(base, teacher, student) made by the study itself from the twin recipes.

Checks the structure only: Table 3 has a column per seen task and Avg with the reference rows and every method,
Figure 4's objective ablation ran reverse KL, forward KL and hard CE on beat_block_hammer alone at the ablation
batch, and its valley and entropy extremes are reported with their numbers; the claims are measured by the command,
never asserted here.
"""

import json

import pytest

from opd_core.config import ConfigError, RunConfig
from opd_core.study import run_study
from opd_core.study.plan import objective_runs, plan_runs
from opd_core.study.presets import TWIN_QUICK, preset_for
from opd_core.study.recipes import load_recipe
from study_minis import mini_preset, tiny_assets, tiny_runs

TASK = "twin/beat_block_hammer"
MINI = mini_preset(
    "mini-twin",
    env="twin",
    sft_eval_every=1,
    ablation_trajectories=4,
    ablation_group_sizes=(),
    objective_task=TASK,
    objective_group_size=2,
    objective_steps=3,
    pretrain_tasks=2,
    max_episode_steps=6,
    common_overrides=tiny_runs(max_episode_steps=6),
    asset_overrides=tiny_assets(2, student={"num_demos": 1}),
)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("twin-study")
    summary = run_study(out, MINI, suites=["twin"], progress=False, log=lambda *_: None)
    return out, summary


def test_the_twin_chain_is_built_from_the_twin_recipes(study):
    out, summary = study
    assets = summary["results"]["twin"]["assets"]
    assert assets["base"]["name"] == load_recipe("base", "pretrain", env="twin").name
    assert assets["teacher"]["name"] == "twin-teacher" and assets["student"]["name"] == "twin-student"
    for role in ("base", "teacher", "student"):
        config = RunConfig.load(out / "assets" / ("base" if role == "base" else f"twin/{role}") / "config.yaml")
        assert config.env == "twin"
    first = RunConfig.load(next((out / "runs/twin").glob("reverse_kl_seed0")) / "config.yaml")
    assert first.env == "twin" and first.tasks == ["twin/pick_dual_bottles", "twin/place_empty_cup"]


def test_table_3_has_a_column_per_task_and_every_row(study):
    out, summary = study
    result = summary["results"]["twin"]
    report = (out / "report.md").read_text()
    assert "## Table 3" in report and "## Table 2" not in report
    header = next(line for line in report.splitlines() if line.startswith("| Method | pick_dual_bottles"))
    assert header == "| Method | pick_dual_bottles | place_empty_cup | Avg |"
    table = report.split("## Table 3", 1)[1].split("The paper's Table 3", 1)[0]
    for label in ("Teacher", "Student init", "Distill (reverse KL)", "GRPO (sparse reward)", "forward KL"):
        assert f"| {label}" in table
    teacher = result["reference"]["teacher"]["per_task"]
    row = next(line for line in table.splitlines() if line.startswith("| Teacher |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    expected = [100 * teacher[t] for t in result["tasks"]["seen"]]
    assert [float(c) for c in cells[1:3]] == pytest.approx(expected, abs=0.05)
    assert float(cells[3]) == pytest.approx(sum(expected) / 2, abs=0.05)


def test_figure_4_runs_the_three_objectives_on_the_one_task_at_the_ablation_batch(study):
    out, summary = study
    ablation = summary["results"]["twin"]["objective_ablation"]
    assert ablation["task"] == TASK and set(ablation["figure_4"]) == {"reverse_kl", "forward_kl", "hard_ce"}
    for objective, row in ablation["figure_4"].items():
        config = RunConfig.load(out / f"runs/twin/objective_{objective}_seed0/config.yaml")
        assert config.objective == objective and config.tasks == [TASK] and config.steps == 3
        assert config.batch_tasks * config.group_size == MINI.ablation_trajectories
        assert row["steps"] == [1, 2, 3] and len(row["train_success"]) == len(row["entropy"]) == 3
        extremes = row["entropy_extremes"]
        assert extremes["min"] <= extremes["final"] <= extremes["max"] and extremes["max_at_step"] in (1, 2, 3)
        assert row["valley"]["low"] <= row["valley"]["start"]
    assert not any(key.startswith("objective_") for key in summary["results"]["twin"]["methods"])
    claims = [c["claim"] for c in summary["results"]["twin"]["claims"]]
    assert any("forward KL's training success drops" in c for c in claims)
    assert any("hard CE's entropy collapses" in c for c in claims)
    report = (out / "report.md").read_text()
    assert "## Figure 4" in report and "Early valley" in report and (out / "plots/objectives_twin.png").is_file()
    saved = json.loads((out / "summary.json").read_text())
    assert (
        saved["results"]["twin"]["objective_ablation"]["figure_4"]["forward_kl"]["valley"]
        == (ablation["figure_4"]["forward_kl"]["valley"])
    )


def test_a_second_invocation_reuses_everything(study):
    out, _ = study
    again = run_study(out, MINI, suites=["twin"], progress=False, log=lambda *_: None)
    assert again["runs_run_now"] == 0 and again["runs_reused"] == len(plan_runs(MINI, ["twin"], [0]))


def test_the_quick_twin_preset_runs_figure_4_at_the_papers_batch():
    assert preset_for("twin", quick=True) is TWIN_QUICK and TWIN_QUICK.env == "twin"
    runs = objective_runs(TWIN_QUICK, "twin", 0)
    assert [r.method for r in runs] == ["objective_reverse_kl", "objective_forward_kl", "objective_hard_ce"]
    assert {r.batch_tasks * r.group_size for r in runs} == {32} and {r.tasks for r in runs} == {(TASK,)}


def test_suites_of_two_simulators_are_refused_together():
    from opd_core.reproduce import parse_suites

    assert parse_suites("twin") == ["twin"]
    with pytest.raises(ConfigError, match="study of its own"):
        parse_suites("object,twin")
