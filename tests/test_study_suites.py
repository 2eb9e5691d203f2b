"""A miniature two-suite study from the shipped checkpoints: every method runs in both suites, report.md lays
Table 2 out with a column per suite and Avg, and Figure 2's extension gives one threshold reached (uncensored) and
one that never is (GRPO extended to its cap, then "censored at" the cap).

The thresholds are made certain by the choice of starting points, not by the training's luck:
  object  the student IS the shipped teacher, so every method is at the teacher's success from step 0 (reached,
          uncensored, at step 0; no extension is needed);
  long    the shipped long teacher and 1-demo student (teacher 0.5 on these 2 tasks x 1 state, student 0.0, and 0.0
          on all 10 x 10): 2 steps of reverse KL at B=2 x G=2 do not reach 90% of the teacher, so GRPO is extended to
          3 x 2 = 6 steps, where its sparse reward is 0 unless a rollout succeeds, and it is censored.
Also the speed-up's arithmetic (paired seeds, bootstrap interval, censored seeds) on fixed numbers.
"""

import shutil
from pathlib import Path

import pytest

from opd_core.study import METHODS, run_study
from opd_core.study.analysis import speedups
from opd_core.study.extend import extension_cap
from opd_core.study.plan import plan_runs
from study_minis import SHIPPED_RUNS, mini_preset

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "assets/tabletop"
MINI = mini_preset(
    "mini-suites",
    sft_eval_every=2,
    ablation_trajectories=4,
    ablation_group_sizes=(2, 4),
    common_overrides=SHIPPED_RUNS,
    asset_overrides={"teacher": {"num_demos": 2}},
    extend_methods=("grpo",),
    extend_chunk=2,
    reach_fractions=(0.8, 0.9),
)


def _assets(folder: Path) -> Path:
    """object: its teacher as both teacher and student; long: its shipped teacher and student."""
    shutil.copytree(SHIPPED / "base", folder / "base")
    for role in ("teacher", "student"):
        shutil.copytree(SHIPPED / "object/teacher", folder / "object" / role)
        shutil.copytree(SHIPPED / "long" / role, folder / "long" / role)
    return folder


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    if not (SHIPPED / "long/teacher/meta.json").is_file():
        pytest.skip("no shipped long-suite teacher")
    root = tmp_path_factory.mktemp("suites")
    out = root / "study"
    summary = run_study(
        out, MINI, suites=["object", "long"], assets=_assets(root / "assets"), progress=False, log=lambda *_: None
    )
    return out, summary


def test_every_method_ran_in_both_suites(study):
    out, summary = study
    assert summary["suites"] == ["object", "long"]
    for suite in ("object", "long"):
        methods = summary["results"][suite]["methods"]
        assert set(methods) == {*METHODS, "reverse_kl_G4"}
        for spec in plan_runs(MINI, [suite], [0]):
            length = methods[spec.method]["total_steps"] - (1 if spec.method == "opd_then_grpo" else 0)  # from step 1
            assert (spec.folder(out) / f"checkpoints/step_{length}/meta.json").is_file()


def test_report_lays_table_2_out_with_a_column_per_suite_and_avg(study):
    out, summary = study
    report = (out / "report.md").read_text()
    table = report.split("## Table 2")[1].split("\n\n")[2].splitlines()
    assert table[0] == "| Method | Object | Long | Avg |"
    labels = [row.split(" | ")[0].lstrip("| ") for row in table[2:]]
    assert labels[:6] == [
        "Teacher",
        "Student init (1 demo/task)",
        "Distill (reverse KL)",
        "Distill then GRPO",
        "GRPO (sparse reward)",
        "offline SFT (2 demos/task)",
    ]
    teacher = summary["results"]
    avg = (
        100
        * (
            teacher["object"]["reference"]["teacher"]["seen_success"]
            + teacher["long"]["reference"]["teacher"]["seen_success"]
        )
        / 2
    )
    assert table[2].endswith(f"| {avg:.1f} |")


def test_a_threshold_reached_at_once_is_a_number_and_no_run_is_extended(study):
    out, summary = study
    result = summary["results"]["object"]
    teacher = result["reference"]["teacher"]["seen_success"]
    assert teacher > 0, "the object teacher solves nothing on these states: the test's premise fails"
    assert result["extension"]["distill_steps"] == [0] and result["extension"]["cap"] == MINI.steps
    for method in ("reverse_kl", "grpo"):
        reach = result["methods"][method]["steps_to"]["90"]
        assert reach["eval"]["values"] == [0] and reach["censored_at"] == MINI.steps
    assert result["methods"]["grpo"]["steps_to"]["90"]["lengths"] == [MINI.steps]


def test_a_threshold_never_reached_is_censored_at_the_cap(study):
    out, summary = study
    result = summary["results"]["long"]
    assert result["reference"]["teacher"]["seen_success"] > 0, "the long teacher solves nothing on these states"
    assert result["extension"]["distill_steps"] == [None]
    cap = 3 * MINI.steps
    assert result["extension"]["cap"] == cap
    grpo = result["methods"]["grpo"]
    assert grpo["steps_to"]["90"]["eval"]["values"] == [None]
    assert grpo["steps_to"]["90"]["censored_at"] == cap and grpo["eval_curves"]["step"][-1] == cap
    assert grpo["final"]["seen_success"]["values"] == [grpo["eval_curves"]["seen_success"]["mean"][MINI.steps]], (
        "Table 2's GRPO row is the checkpoint at the nominal step, not the extended end"
    )
    report = (out / "report.md").read_text().split("### `long`")[1]
    assert f"censored at {cap}" in report


def test_running_it_again_extends_nothing(study):
    out, summary = study
    again = run_study(
        out, MINI, suites=["object", "long"], progress=False, log=lambda *_: None, assets=out.parent / "assets"
    )
    assert again["runs_run_now"] == 0 and again["extension_rounds_run_now"] == 0
    assert again["results"]["long"]["methods"]["grpo"]["steps_to"]["90"]["censored_at"] == 3 * MINI.steps


def _method(values: list[int | None], censored_at: int) -> dict:
    reached = [v for v in values if v is not None]
    row = {
        "eval": {"values": values, "defined": True, "reached": len(reached), "of": len(values)},
        "censored_at": censored_at,
    }
    return {"steps_to": {"90": row}, "eval_curves": {"step": [0, 10, 30], "seen_success": {"mean": [0.1, 0.8, 0.9]}}}


def test_speedup_is_paired_over_seeds_with_a_bootstrap_interval():
    methods = {"reverse_kl": _method([10, 10, 20, 10, 10], 50), "grpo": _method([30, 40, 60, 30, None], 90)}
    (row, at_steps) = speedups(methods, (0.9,), 10)
    assert row["ratio"] == pytest.approx((30 + 40 + 60 + 30 + 90) / 5 / 12)
    assert row["lower_bound"] and row["reached"] == 4
    low, high = row["interval"]
    assert low <= row["ratio"] <= high and low < high
    assert at_steps == {
        "fraction": None,
        "method": "grpo",
        "distill": "reverse_kl",
        "step": 10,
        "other_step": 30,
        "distill_success": 0.8,
        "other_success": 0.9,
    }
    undefined = speedups({**methods, "reverse_kl": _method([10, None, 20, 10, 10], 50)}, (0.9,), 10)[0]
    assert undefined["ratio"] is None and not undefined["defined"]


def test_the_cap_is_three_times_distillations_slowest_seed_on_the_eval_cadence():
    preset = MINI.with_changes(steps=50, eval_every=5, distill_steps_before_grpo=5)
    assert extension_cap(preset, [10, 17, 15]) == 55
    assert extension_cap(preset, [10, None]) == 150
    assert extension_cap(preset, [0, 5]) == 50


@pytest.mark.parametrize(
    "interval, lower_bound, seeds, verdict",
    [
        ((3.1, 4.0), False, 5, "holds"),
        ((2.0, 2.5), False, 5, "does not hold"),
        ((2.0, 2.5), True, 5, "undetermined"),  # censored GRPO seeds: the true ratio may be higher
        ((2.5, 3.5), False, 5, "undetermined"),  # the interval straddles 3
        ((3.1, 4.0), False, 3, "undetermined"),  # fewer than 5 seeds
    ],
)
def test_the_speedup_claim_is_decided_by_its_interval_on_five_seeds(interval, lower_bound, seeds, verdict):
    from opd_core.study.analysis import claims

    row = {
        "fraction": 0.8,
        "method": "grpo",
        "distill": "reverse_kl",
        "ratio": sum(interval) / 2,
        "interval": list(interval),
        "lower_bound": lower_bound,
        "steps": [30] * seeds,
        "distill_steps": [10] * seeds,
        "censored_at": 150,
    }
    result = {
        "reference": {"teacher": {"seen_success": 1.0}, "student_init": {"seen_success": 0.2}},
        "methods": {},
        "ablation": {"group_sizes": {}},
        "speedup": [row],
    }
    found = [c for c in claims(result) if "distillation's steps to reach 80%" in c["claim"]]
    assert [c["verdict"] for c in found] == [verdict]


def test_suites_all_means_the_four_post_training_suites():
    from opd_core.config import ConfigError
    from opd_core.reproduce import parse_suites

    assert parse_suites("all") == ["spatial", "object", "goal", "long"]
    assert parse_suites("long, object,long") == ["long", "object"]
    with pytest.raises(ConfigError, match="'pretrain' is not a post-training suite"):
        parse_suites("object,pretrain")
    with pytest.raises(ConfigError, match="no suite"):
        parse_suites(" , ")


def test_an_extension_stops_at_the_first_evaluation_past_the_threshold(tmp_path):
    """GRPO at 0 until step 10, then at the teacher: extended 5 -> 10 and no further (cap 15)."""
    from opd_core.config import RunConfig
    from opd_core.study import extend
    from opd_core.study.plan import RunSpec, TaskGroups

    lengths = {"grpo_seed0": 5}
    runs_made = []

    class FakeExecutor:
        def read(self, spec, config, groups):
            steps = list(range(0, lengths[spec.run_id] + 1, 5))
            return {"eval_steps": steps, "eval": {"seen_success": [1.0 if s >= 10 else 0.0 for s in steps]}}

        def run_all(self, items, extendable):
            for spec, config in items:
                assert extendable(config)
                runs_made.append(config.total_steps)
                lengths[spec.run_id] = config.total_steps
            return len(items)

    preset = MINI.with_changes(steps=5, eval_every=5, extend_chunk=0, methods=("reverse_kl", "grpo"))
    spec = RunSpec("object", "grpo", 0, 2, 2)
    config = RunConfig(pipeline="grpo", steps=5, out_dir=str(spec.folder(tmp_path)))
    groups = {"object": TaskGroups([], [], [])}
    target = extend.Extension(threshold=0.9, cap=extension_cap(preset, [5]), distill_steps=[5])
    assert target.cap == 15
    ran = extend.extend_runs(preset, [spec], {spec: config}, {"object": target}, groups, FakeExecutor())
    assert ran == 1 and runs_made == [10]
