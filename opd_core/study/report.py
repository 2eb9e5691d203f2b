"""DIR/report.md: the study written up like the paper's tables, from summary.json's numbers only."""

from __future__ import annotations

from opd_core.study.analysis import DEFINITIONS, format_rate, success_valley
from opd_core.study.presets import METHOD_LABELS, METHODS

REF_ROWS = ("base", "teacher", "student_init")


def _pm(agg: dict | None, digits: int = 2) -> str:
    if not agg or agg.get("mean") is None:
        return "–"
    if agg.get("n", 1) > 1:
        return f"{agg['mean']:.{digits}f} ± {agg['std']:.{digits}f}"
    return f"{agg['mean']:.{digits}f}"


def _kl_change(final: dict) -> str:
    """A run's KL to the teacher at its first step and at its end (means over seeds)."""
    start, end = final.get("reverse_kl_start"), final.get("reverse_kl")
    if not start or not end or start.get("mean") is None or end.get("mean") is None:
        return "–"
    return f"{start['mean']:.3f} -> {end['mean']:.3f}"


def _compute(compute: dict | None) -> str:
    """The runs' own training time, summed over every sitting that made them."""
    if not compute:
        return ""
    text = (
        f"The {compute['runs']} runs' own training time, summed over whatever sittings made them: "
        f"{compute['run_wall_seconds'] / 3600:.2f} run-hours of wall time"
    )
    if compute["runs_without_cpu_seconds"] < compute["runs"]:
        text += f", {compute['run_cpu_seconds'] / 3600:.2f} CPU-hours of the training processes"
    if compute["runs_without_cpu_seconds"]:
        text += f"; {compute['runs_without_cpu_seconds']} runs made before CPU time was recorded have no CPU time"
    return text + "; reference evaluations and asset training not included."


def _v(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _rate(value: float | None) -> str:
    return "–" if value is None else format_rate(value)


def _reach(reach: dict) -> str:
    if reach["of"] == 0 or not reach.get("defined", True):
        return "–"
    if reach["reached"] == 0:
        return "never"
    values = ", ".join("–" if v is None else str(v) for v in reach["values"])
    return f"{reach['mean']:.1f} ({reach['reached']}/{reach['of']} seeds: {values})"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _method_keys(result: dict) -> list[str]:
    return [m for m in METHODS if m in result["methods"]]


SUITE_ORDER = ("spatial", "object", "goal", "long")
TABLE_2_ROWS = (
    ("teacher", "Teacher"),
    ("student_init", "Student init (1 demo/task)"),
    ("reverse_kl", "Distill (reverse KL)"),
    ("opd_then_grpo", "Distill then GRPO"),
    ("grpo", "GRPO (sparse reward)"),
    ("sft", "Offline SFT (50 demos/task)"),
)
"""Table 2's rows in the paper's order: reference rows (measured once) then the post-training methods."""
PAPER_TABLE_2 = {  # the paper's Table 2 (LIBERO, %): spatial, object, goal, long, avg
    "Teacher (SimpleVLA-RL)": (94.2, 96.1, 94.6, 90.7, 93.9),
    "Student init (OpenVLA-OFT, 1-traj)": (63.6, 54.9, 59.6, 17.3, 48.9),
    "VLA-OPD (Distill)": (84.3, 93.8, 92.5, 78.9, 87.4),
    "VLA-OPD (Distill + GRPO)": (93.4, 95.3, 94.5, 90.2, 93.4),
}


def _pct(agg: dict | None) -> str:
    if not agg or agg.get("mean") is None:
        return "–"
    if agg.get("n", 1) > 1:
        return f"{100 * agg['mean']:.1f} ± {100 * agg['std']:.1f}"
    return f"{100 * agg['mean']:.1f}"


def _table_2_cell(result: dict, key: str) -> dict | None:
    if key in result["reference"]:
        return {"mean": result["reference"][key]["seen_success"], "n": 1}
    method = result["methods"].get(key)
    return method["final"]["seen_success"] if method else None


def table_2(results: dict) -> list[str]:
    """The paper's Table 2: greedy seen success (%) per suite and their average, mean ± std over seeds."""
    suites = [s for s in SUITE_ORDER if s in results] + [s for s in results if s not in SUITE_ORDER]
    lines = [
        "## Table 2: success rate (%) per suite",
        "",
        "Greedy success on the seen tasks' fixed initial states at each method's last nominal step, mean ± "
        "std over seeds (reference rows: measured once). Avg: the mean of the suites' means, given when the "
        "row has every suite.",
        "",
    ]
    rows = []
    extra = [
        (m, None) for m in METHODS if m not in dict(TABLE_2_ROWS) and any(m in results[s]["methods"] for s in suites)
    ]
    for key, label in [*TABLE_2_ROWS, *extra]:
        cells = [_table_2_cell(results[s], key) for s in suites]
        if all(c is None for c in cells):
            continue
        if label is None or key == "sft":  # the SFT label names its demo count
            label = next(results[s]["methods"][key]["label"] for s in suites if key in results[s]["methods"])
        means = [c["mean"] for c in cells if c and c.get("mean") is not None]
        avg = f"{100 * sum(means) / len(means):.1f}" if len(means) == len(suites) else "–"
        rows.append([label, *[_pct(c) for c in cells], avg])
    lines += _table(["Method", *[s.capitalize() for s in suites], "Avg"], rows)
    lines += ["", "The paper's Table 2 (LIBERO, OpenVLA-OFT student, SimpleVLA-RL teacher), for comparison:", ""]
    index = {s: i for i, s in enumerate(SUITE_ORDER)}
    lines += _table(
        ["Paper", *[s.capitalize() for s in suites], "Avg (4 suites)"],
        [
            [name, *[f"{values[index[s]]:.1f}" if s in index else "–" for s in suites], f"{values[4]:.1f}"]
            for name, values in PAPER_TABLE_2.items()
        ],
    )
    return lines + [""]


PAPER_TABLE_3 = {  # the paper's Table 3 (RoboTwin2.0, %): pick dual bottles, place empty cup, handover block,
    # stack bowls two, avg
    "Teacher (SimpleVLA-RL)": (68.3, 94.2, 57.8, 75.8, 74.0),
    "Student init (OpenVLA-OFT, 1000 demos/task)": (29.7, 77.3, 33.1, 40.6, 45.2),
    "VLA-OPD (Distill)": (66.4, 90.6, 52.3, 75.0, 71.1),
}
PAPER_TABLE_3_TASKS = ("pick_dual_bottles", "place_empty_cup", "handover_block", "stack_bowls_two")
TABLE_3_ROWS = (
    ("teacher", "Teacher"),
    ("student_init", "Student init"),
    ("reverse_kl", "Distill (reverse KL)"),
    ("opd_then_grpo", "Distill then GRPO"),
    ("grpo", "GRPO (sparse reward)"),
    ("sft", "Offline SFT"),
    ("base", "Pre-trained base"),
)


def _task_cell(result: dict, key: str, task: str) -> dict | None:
    if key in result["reference"]:
        value = result["reference"][key]["per_task"].get(task)
        return None if value is None else {"mean": value, "n": 1}
    method = result["methods"].get(key)
    return method["final_per_task"].get(task) if method else None


def table_3(suite: str, result: dict) -> list[str]:
    """The paper's Table 3 on a dual-arm suite: greedy success (%) per seen task and their average."""
    tasks = result["tasks"]["seen"]
    short = [t.split("/", 1)[-1] for t in tasks]
    lines = [
        f"## Table 3: success rate (%) per task of the dual-arm `{suite}` suite",
        "",
        "Greedy success on each task's fixed initial states at each method's last nominal step (mean ± std over "
        "seeds; reference rows measured once). Avg: the mean over the suite's tasks. The paper's four tasks "
        "come first.",
        "",
    ]
    order = sorted(range(len(tasks)), key=lambda i: (short[i] not in PAPER_TABLE_3_TASKS, i))
    keys = [*TABLE_3_ROWS, *[(m, None) for m in METHODS if m not in dict(TABLE_3_ROWS)]]
    rows = []
    for key, label in keys:
        cells = [_task_cell(result, key, tasks[i]) for i in order]
        if all(c is None for c in cells):
            continue
        if key in result["methods"]:
            label = result["methods"][key]["label"] if label is None or key == "sft" else label
        means = [c["mean"] for c in cells if c and c.get("mean") is not None]
        avg = f"{100 * sum(means) / len(means):.1f}" if len(means) == len(cells) else "–"
        rows.append([label, *[_pct(c) for c in cells], avg])
    lines += _table(["Method", *[short[i] for i in order], "Avg"], rows)
    lines += ["", "The paper's Table 3 (RoboTwin2.0, OpenVLA-OFT student, SimpleVLA-RL teacher), for comparison:", ""]
    lines += _table(
        ["Paper", *PAPER_TABLE_3_TASKS, "Avg (4 tasks)"],
        [[name, *[f"{v:.1f}" for v in values]] for name, values in PAPER_TABLE_3.items()],
    )
    return lines + [""]


def figure_4(suite: str, result: dict) -> list[str]:
    """Figure 4 in numbers: per objective the training success and entropy per step, the early valley and the
    entropy's extremes."""
    ablation = result.get("objective_ablation")
    if not ablation:
        return []
    lines = [
        f"## Figure 4: reverse KL vs forward KL vs hard CE on `{ablation['task']}` ({suite})",
        "",
        f"{ablation['trajectories']} trajectories per step (B={ablation['batch_tasks']} x G={ablation['group_size']})"
        ", one task, from the same student and teacher. Success: the step's sampled training rollouts; entropy: "
        "the student's mean per-dimension action entropy (nats) on its own states. Valley: the lowest success in "
        "the first third of the steps; final: mean of the last 3 steps.",
        "",
    ]
    rows = []
    for row in ablation["figure_4"].values():
        valley, ent = row.get("valley") or {}, row.get("entropy_extremes") or {}
        rows.append(
            [
                row["label"],
                _rate(valley.get("start")),
                f"{_rate(valley.get('low'))} (step {valley.get('at_step', '–')})",
                "–" if valley.get("relative_drop") is None else f"{100 * valley['relative_drop']:.0f}%",
                _v(row.get("final_success")),
                _v(row.get("final_eval_success")),
                _v(ent.get("start")),
                f"{_v(ent.get('max'))} (step {ent.get('max_at_step', '–')})",
                f"{_v(ent.get('min'))} (step {ent.get('min_at_step', '–')})",
                _v(ent.get("final")),
            ]
        )
    lines += _table(
        [
            "Objective",
            "Success step 1",
            "Early valley",
            "Drop",
            "Success final",
            "Greedy eval final",
            "Entropy step 1",
            "Entropy max",
            "Entropy min",
            "Entropy final",
        ],
        rows,
    )
    lines += ["", "Per step (training success / entropy):", ""]
    objectives = list(ablation["figure_4"])
    steps = ablation["figure_4"][objectives[0]]["steps"] if objectives else []
    per_step = []
    for i, step in enumerate(steps):
        cells = []
        for objective in objectives:
            row = ablation["figure_4"][objective]
            ok = i < len(row["steps"])
            cells.append(f"{_v(row['train_success'][i] if ok else None)} / {_v(row['entropy'][i] if ok else None)}")
        per_step.append([str(step), *cells])
    lines += _table(["Step", *objectives], per_step)
    return lines + [""]


def _steps_cell(reach: dict, censored_at: int) -> str:
    values = reach["values"]
    if not reach.get("defined", True) or not values:
        return "–"
    if reach["reached"] == 0:
        return f"censored at {censored_at}"
    shown = ", ".join("–" if v is None else str(v) for v in values)
    return f"{reach['mean']:.1f} ({reach['reached']}/{reach['of']}: {shown})"


def figure_2(results: dict) -> list[str]:
    """Figure 2 in numbers: steps to 80% / 90% of the teacher per method, and GRPO / distillation."""
    lines = ["## Figure 2: steps to 80% / 90% of the teacher (greedy evaluation)", ""]
    for suite, result in results.items():
        methods = result["methods"]
        keys = [
            m
            for m in ("reverse_kl", "opd_then_grpo", "grpo", "reverse_kl_exact", "forward_kl", "hard_ce")
            if m in methods
        ]
        if not keys:
            continue
        fractions = sorted(methods[keys[0]]["steps_to"])
        extension = result.get("extension")
        note = (
            f" Extended methods ran until {extension['threshold']:.2f} (the highest fraction) or a cap of "
            f"{extension['cap']} steps (3 x the steps reverse KL's slowest seed needed, 3 x the nominal run "
            f"where a seed never got there, at least the nominal run)."
            if extension
            else ""
        )
        lines += [
            f"### `{suite}`",
            "",
            f"Teacher greedy seen success {result['reference']['teacher']['seen_success']:.2f}. Mean over the "
            f"seeds that got there (k/n: seeds that did; per-seed steps; –: not within the run).{note}",
            "",
        ]
        rows = []
        for m in keys:
            reach = methods[m]["steps_to"]
            rows.append(
                [
                    methods[m]["label"],
                    *[_steps_cell(reach[f]["eval"], reach[f]["censored_at"]) for f in fractions],
                    str(max(reach[fractions[0]]["lengths"], default=methods[m]["total_steps"])),
                ]
            )
        lines += _table(["Method", *[f"Steps to {f}%" for f in fractions], "Longest run"], rows)
        ratio_rows = []
        for row in result.get("speedup", []):
            if row["fraction"] is None:
                continue
            if row["ratio"] is None:
                distill_reach = result["methods"][row["distill"]]["steps_to"][str(round(100 * row["fraction"]))]
                if not distill_reach["eval"]["defined"]:
                    text = "undefined: the teacher's success is 0"
                elif None in row["distill_steps"]:
                    text = "undefined: distillation did not get there in every seed"
                else:
                    text = "undefined: distillation was there from step 0"
            else:
                low, high = row["interval"]
                text = f"{'≥ ' if row['lower_bound'] else ''}{row['ratio']:.2f} (95% bootstrap {low:.2f}–{high:.2f})"
                if row["reached"] == 0:
                    text += f"; {row['method']} censored at {row['censored_at']}"
                elif row["lower_bound"]:
                    text += (
                        f"; {row['of'] - row['reached']}/{row['of']} {row['method']} seeds censored at "
                        f"{row['censored_at']}, counted there"
                    )
            ratio_rows.append(
                [
                    f"{row['method']} / {row['distill']}",
                    f"{round(100 * row['fraction'])}%",
                    text,
                    str(len(row["steps"])),
                ]
            )
        if ratio_rows:
            lines += [
                "",
                "Speed-up (steps of the method / steps of distillation, seeds paired; interval: percentile "
                "bootstrap over seeds):",
                "",
            ]
            lines += _table(["Ratio", "Of the teacher", "Measured", "Seeds"], ratio_rows)
        for row in result.get("speedup", []):
            if row["fraction"] is None and row["distill_success"] is not None:
                other = "not run that long" if row["other_success"] is None else f"{row['other_success']:.2f}"
                lines += [
                    "",
                    f"Distillation at step {row['step']}: {row['distill_success']:.2f}; "
                    f"{row['method']} at step {row['other_step']}: {other} (the paper, Long: near 80% at 50 "
                    "steps vs GRPO at 150).",
                ]
        lines += [""]
    return lines


def distill_then_grpo(results: dict) -> list[str]:
    """What GRPO did after distillation had plateaued, per suite and on average (the paper: +6.0 points)."""
    rows, gains, rule = [], [], None
    for suite, result in results.items():
        block = result.get("distill_then_grpo")
        if not block:
            continue
        rule = block["rule"]
        switches = ", ".join(
            f"{step}{'' if plateaued else ' (latest)'}"
            for step, plateaued in zip(block["switch_steps"], block["plateaued"])
        )
        gain = block["gain"]
        if gain["mean"] is not None:
            gains.append(gain["mean"])
        rows.append(
            [
                suite,
                switches,
                _pct(block["at_switch"]),
                _pct(block["after_grpo"]),
                _points(gain),
                _pct(block["distill_continued"]),
                _points(block["gain_vs_distill_continued"]),
            ]
        )
    if not rows:
        return []
    if not gains:
        verdict = "no suite measured"
    else:
        mean = sum(gains) / len(gains)
        what = "adds" if mean > 0 else "takes away" if mean < 0 else "neither adds nor takes away"
        verdict = (
            f"GRPO {what} {100 * abs(mean):.1f} points on average over {len(gains)} suite(s) (the paper: adds 6.0)"
        )
    lines = [
        "## Distill then GRPO: what GRPO adds after distillation plateaued",
        "",
        f"Rule: {rule}. Switch step per seed ((latest): the plateau rule did not fire by then). Success: greedy "
        f"seen success (%), mean ± std over seeds; gain in points, seeds paired. {verdict}.",
        "",
    ]
    lines += _table(
        [
            "Suite",
            "Switch step(s)",
            "At the switch",
            "After GRPO",
            "GRPO's gain",
            "Reverse KL continued",
            "vs continued",
        ],
        rows,
    )
    return lines + [""]


def _points(agg: dict) -> str:
    if agg.get("mean") is None:
        return "–"
    text = f"{100 * agg['mean']:+.1f}"
    return text + (f" ± {100 * agg['std']:.1f}" if agg.get("n", 1) > 1 else "")


def objective_lrs(result: dict) -> list[str]:
    """The objective ablation at each learning rate: success, the early valley and entropy."""
    from opd_core.study.plots import objective_groups

    methods = result["methods"]
    groups = objective_groups(methods)
    if not groups:
        return []
    lines = [
        "### Objective ablation at two learning rates",
        "",
        "The same objectives from the same student at each learning rate. Valley: the lowest sampled training "
        "success (seed mean) in the first third of the steps vs step 1 (the paper: forward KL drops by more than "
        "50% early on).",
        "",
    ]
    rows = []
    for lr, keys in groups.items():
        for key in sorted(keys, key=lambda k: METHODS.index(k.rsplit("_lr", 1)[0])):
            m = methods[key]
            valley = success_valley(m)
            valley_text = (
                "–"
                if valley is None
                else f"{format_rate(valley['start'])} -> {format_rate(valley['minimum'])} at step {valley['step']}"
                + ("" if valley["drop"] is None else f" ({100 * valley['drop']:.0f}% drop)")
            )
            rows.append(
                [
                    METHOD_LABELS[key.rsplit("_lr", 1)[0]],
                    f"{lr:g}",
                    _pm(m["final"]["seen_success"]),
                    valley_text,
                    _pm(m["final"]["entropy_start"]),
                    _pm(m["final"]["entropy"]),
                ]
            )
    lines += _table(
        [
            "Objective",
            "lr",
            "Final seen",
            "Training success: step 1 -> early minimum",
            "Entropy start",
            "Entropy final",
        ],
        rows,
    )
    return lines + [""]


def table_4(result: dict) -> list[str]:
    """The group-size ablation (reverse KL at a fixed number of trajectories per step); none when not run."""
    ablation, methods = result["ablation"], result["methods"]
    if not ablation["group_sizes"]:
        return []
    lines = ["", f"### Table 4: group size at {ablation['trajectories']} trajectories per step (reverse KL)", ""]
    rows = []
    for g, key in sorted(ablation["group_sizes"].items(), key=lambda kv: int(kv[0])):
        if key in methods:
            m = methods[key]
            rows.append(
                [
                    f"G={g}",
                    str(m["batch_tasks"]),
                    _pm(m["final"]["seen_success"]),
                    _reach(m["steps_to_90"]["eval"]),
                    _reach(m["steps_to_90"]["train"]),
                ]
            )
    return lines + _table(["G", "B", "Final seen success", "Steps to 90% (eval)", "Steps to 90% (train)"], rows)


def render(summary: dict, plots: dict[str, dict[str, str]]) -> str:
    preset, results = summary["preset"], summary["results"]
    suites = list(results)
    env = preset.get("env", "tabletop")
    student = "1-demo" if env == "tabletop" else "many-demo SFT"
    ablation = (
        f"; group-size ablation at {preset['ablation_trajectories']} trajectories per step"
        if preset.get("ablation_group_sizes")
        else ""
    )
    lines = [
        f"# VLA-OPD reproduced on the built-in {env}",
        "",
        f"Preset **{preset['name']}**: {len(summary['seeds'])} seed(s), {preset['steps']} on-policy steps per method "
        f"at B={preset['batch_tasks']} x G={preset['group_size']} from the same {student} student and teacher; "
        f"evaluation every {preset['eval_every']} steps on {preset['eval_init_states']} fixed initial states per "
        f"task; offline SFT {preset['sft_steps']} gradient steps{ablation}. Wall time of this invocation: "
        f"{summary['wall_seconds']:.0f} s ({summary['runs_run_now']} runs trained now, {summary['runs_reused']} "
        f"reused from an earlier invocation). {_compute(summary.get('compute'))}",
        "",
        "Numbers are mean ± std over seeds (one seed: the value). Definitions are at the end.",
        "",
    ]
    units = summary.get("finished_units")
    if units:
        lines += [
            f"**Interim report** (`--finished-only`): it covers the {units['covered']} of {units['planned']} "
            "(seed, suite) units whose runs have all ended; the rest of the study has not run yet, and neither have "
            "Figure 2's extensions, so a method that did not reach a threshold within its nominal length reads "
            "as censored there. Verdicts on fewer than 5 seeds are provisional.",
            "",
        ]
    if env == "tabletop":
        lines += table_2(results)
    for suite in suites if env != "tabletop" else []:
        lines += table_3(suite, results[suite])
    lines += distill_then_grpo(results)
    lines += figure_2(results)
    for suite in suites:
        lines += figure_4(suite, results[suite])

    for suite in suites:
        result = results[suite]
        ref, methods = result["reference"], result["methods"]
        tasks = result["tasks"]
        lines += [
            "",
            f"## Suite `{suite}`",
            "",
            f"Seen: {len(tasks['seen'])} tasks. Unseen: {len(tasks['held_out'])} held-out compositions "
            f"({', '.join(tasks['held_out'])}). Pre-training retention: {len(tasks['retention'])} of the base's "
            f"tasks ({', '.join(tasks['retention'])}).",
            "",
            "### Seen, unseen and pre-training success; entropy; cost",
            "",
        ]
        labels = result["reference_labels"]
        rows = [
            [
                labels[key],
                _v(ref[key]["seen_success"]),
                _v(ref[key]["unseen_success"]),
                _v(ref[key]["pretrain_success"]),
                "–",
                _v(ref[key]["entropy"]),
                "–",
                "–",
            ]
            for key in REF_ROWS
        ]
        for m in _method_keys(result):
            f = methods[m]["final"]
            rows.append(
                [
                    methods[m]["label"],
                    _pm(f["seen_success"]),
                    _pm(f["unseen_success"]),
                    _pm(f["pretrain_success"]),
                    _pm(f["entropy_start"]),
                    _pm(f["entropy"]),
                    _kl_change(f),
                    _pm(methods[m]["seconds_per_step"], 1),
                ]
            )
        lines += _table(
            [
                "Method",
                "Seen",
                "Unseen (held-out)",
                "Pre-training",
                "Entropy start",
                "Entropy final",
                "KL to teacher start -> final",
                "s / step",
            ],
            rows,
        )
        lines += [
            "",
            "Reference rows' entropy: on their own sampled rollouts. SFT's entropy is on demo states and "
            "its steps are gradient steps on demos, not rollouts. KL to teacher: per-dimension KL(student || "
            "teacher) in nats on the student's own rollout states (SFT has no rollouts), step 1 -> the mean of the "
            "last 3 steps: whether a run moved towards the teacher, whatever its success did.",
            "",
        ]

        lines += [
            "### Steps to reach 90% of the teacher's success",
            "",
            f"Teacher greedy seen success {ref['teacher']['seen_success']:.2f} (threshold "
            f"{0.9 * ref['teacher']['seen_success']:.2f}); teacher sampled success "
            f"{ref['teacher']['sampled_success']:.2f} (threshold {0.9 * ref['teacher']['sampled_success']:.2f}). "
            "Evaluation-based steps have the evaluation cadence as resolution.",
            "",
        ]
        rows = []
        for m in _method_keys(result):
            if m == "sft":
                continue
            reach = methods[m]["steps_to_90"]
            rows.append([methods[m]["label"], _reach(reach["eval"]), _reach(reach["train"]), str(reach["censored_at"])])
        lines += _table(
            ["Method", "Eval success (greedy)", "Training success (sampled, 3-step mean)", "Run length"], rows
        )

        lines += [""] + objective_lrs(result)
        lines += table_4(result)

        lines += [
            "",
            "### The paper's claims, as measured",
            "",
            "Each verdict follows the stated rule on the numbers above; nothing is tuned to make a claim "
            "hold. *undetermined*: the runs were too short to decide (a method never reached the threshold, "
            "so its number is only bounded below).",
            "",
        ]
        lines += _table(
            ["Claim", "Rule", "Measured", "Verdict"],
            [[c["claim"], c["rule"], c["measured"], f"**{c['verdict']}**"] for c in result["claims"]],
        )

        lines += ["", "### Plots", ""]
        for kind, caption in (
            (
                "success",
                "Success curves (left: greedy evaluation; right: sampled training "
                "rollouts). Dotted vertical line: distill-then-GRPO switches to GRPO.",
            ),
            ("entropy", "Policy entropy per step, the teacher's entropy as reference."),
            (
                "tradeoff",
                "Seen vs unseen success at every checkpoint, one panel per unseen task "
                "(arrows point to the last checkpoint).",
            ),
            ("ablation", "Group-size ablation (reverse KL)."),
            (
                "objective_lr",
                "The objective ablation at each learning rate: entropy (top, the teacher's on its own states as "
                "reference) and sampled training success (bottom, the student init dotted).",
            ),
            ("objectives", "Figure 4: reverse KL vs forward KL vs hard CE on one task (training success, entropy)."),
        ):
            if kind in plots.get(suite, {}):
                lines += [f"![{kind} {suite}]({plots[suite][kind]})", "", f"*{caption}*", ""]

        assets = result["assets"]
        lines += ["### Assets", ""]
        lines += _table(
            ["Role", "Checkpoint", "Source", "Recipe"],
            [
                [
                    a["role"],
                    f"`{a['checkpoint']}`",
                    a["source"],
                    f"{a.get('name')}: {a.get('steps')} steps, {a.get('num_demos')} demos/task, lr {a.get('lr')}",
                ]
                for a in assets.values()
            ],
        )
    lines += ["", "## Definitions", ""] + [f"- **{k}**: {v}" for k, v in DEFINITIONS.items()] + [""]
    return "\n".join(lines)
