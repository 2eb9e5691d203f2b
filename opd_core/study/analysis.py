"""Summary numbers of a study, read back from the run folders' metrics.jsonl (nothing is taken from memory).

Definitions (also written into summary.json):
  success (eval)     greedy success on the fixed evaluation initial states, every `eval_every` steps
  success (train)    success of the step's B x G sampled training rollouts (temperature 1), every step
  steps to 90%       eval: the first evaluated step whose seen success >= 0.9 x the teacher's greedy seen success;
                     train: the first step whose trailing 3-step mean training success >= 0.9 x the teacher's
                     sampled (temperature 1) success. null when never reached (the run's length is `censored_at`)
  entropy            the student's mean per-dimension action entropy (nats) on its own rollout states;
                     start = step 1, final = mean of the last 3 steps
  unseen / pretrain  greedy success on the held-out compositions / on a few of the base's pre-training tasks
  spread             over seeds: std (ddof=1 when more than one seed), min, max
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from opd_core.sinks import read_metrics
from opd_core.study.plan import RunSpec, TaskGroups
from opd_core.study.presets import METHOD_LABELS

TRAIN_KEYS = {
    "train_success": "train/success",
    "entropy": "train/entropy",
    "teacher_entropy": "train/teacher_entropy",
    "reverse_kl": "train/reverse_kl",
    "forward_kl": "train/forward_kl",
    "loss": "train/loss",
    "phase_grpo": "train/phase_grpo",
}
REACH_FRACTION = 0.9
TRAIN_WINDOW = 3
FINAL_ENTROPY_WINDOW = 3

DEFINITIONS = {
    "success_eval": "greedy success on the fixed evaluation initial states, every eval_every steps",
    "success_train": "success of the step's B x G sampled training rollouts (temperature 1)",
    "steps_to_90_eval": "first evaluated step with seen success >= 0.9 x teacher greedy seen success (null: never)",
    "steps_to_90_train": "first step with trailing 3-step mean training success >= 0.9 x teacher sampled success",
    "entropy": "mean per-dimension action entropy (nats) on the policy's own rollout states; start = step 1, "
    "final = mean of the last 3 steps",
    "reverse_kl": "mean per-dimension KL(student || teacher) (nats) on the student's own rollout states, whatever "
    "the method optimises: whether a run moved towards the teacher; start = step 1, final = mean of the last 3 steps",
    "unseen_success": "greedy success on the held-out compositions (unseen suite)",
    "pretrain_success": "greedy success on a few of the base's pre-training tasks (retention)",
    "seconds_per_step": "median wall seconds per training step (rollout + labeling + update; eval excluded)",
    "spread": "over seeds: std (ddof=1 when n > 1), min, max",
}


# ============================================================================================ one run
def read_run(folder: Path, groups: TaskGroups) -> dict:
    """Per-step training series and per-checkpoint evaluation series of one run folder."""
    return run_from_rows(read_metrics(folder), str(folder), groups)


def run_from_rows(rows: list[dict], where: str, groups: TaskGroups) -> dict:
    """The same from metric rows ({"step": s, key: value, ...}) wherever they were read (a folder, the store);
    `where` names the run's folder in the summary."""
    train_rows: dict[int, dict] = {}
    eval_rows: dict[int, dict] = {}
    for row in rows:
        step = int(row["step"])
        if "train/loss" in row:
            train_rows.setdefault(step, {}).update(row)
        if "eval/seen_success" in row:
            eval_rows.setdefault(step, {}).update(row)
    steps = sorted(train_rows)
    eval_steps = sorted(eval_rows)
    per_task = {
        task: [_num(eval_rows[s].get(f"eval/success/{task}")) for s in eval_steps]
        for task in [*groups.seen, *groups.unseen]
    }
    step_seconds = [_num(train_rows[s].get("time/step_seconds")) for s in steps]
    return {
        "folder": where,
        "steps": steps,
        "train": {name: [_num(train_rows[s].get(key)) for s in steps] for name, key in TRAIN_KEYS.items()},
        "eval_steps": eval_steps,
        "eval": {
            "seen_success": _group_mean(per_task, groups.seen, len(eval_steps)),
            "unseen_success": _group_mean(per_task, groups.held_out, len(eval_steps)),
            "pretrain_success": _group_mean(per_task, groups.retention, len(eval_steps)),
        },
        "per_task": per_task,
        "seconds_per_step": float(np.nanmedian(step_seconds)) if step_seconds else math.nan,
        "wall_seconds": _num(train_rows[steps[-1]].get("time/wall_seconds")) if steps else math.nan,
        "cpu_seconds": _num(train_rows[steps[-1]].get("time/cpu_seconds")) if steps else math.nan,
    }


def compute(runs: list[dict]) -> dict:
    """The training time the study's runs took, summed over them whatever sitting made them (from each run's own
    clock, so a study spread over sittings or machines is counted once per run)."""
    wall = [r["wall_seconds"] for r in runs if not math.isnan(r.get("wall_seconds", math.nan))]
    cpu = [r["cpu_seconds"] for r in runs if not math.isnan(r.get("cpu_seconds", math.nan))]
    return {
        "runs": len(runs),
        "run_wall_seconds": float(sum(wall)),
        "run_cpu_seconds": float(sum(cpu)),
        "runs_without_cpu_seconds": len(runs) - len(cpu),
    }


def _group_mean(per_task: dict[str, list[float]], tasks: list[str], length: int) -> list[float]:
    if not tasks:
        return [math.nan] * length
    return [float(np.nanmean([per_task[t][i] for t in tasks])) for i in range(length)]


def first_reach(steps: list[int], values: list[float], threshold: float, window: int = 1) -> int | None:
    """The first step whose trailing `window` mean reaches `threshold`, or None."""
    for i, step in enumerate(steps):
        recent = [v for v in values[max(0, i - window + 1) : i + 1] if not math.isnan(v)]
        if recent and np.mean(recent) >= threshold - 1e-9:
            return step
    return None


# ============================================================================================ aggregation
def aggregate(values: list[float | None]) -> dict:
    """Mean and spread over seeds (None and NaN are left out of the statistics but kept in `values`)."""
    clean = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    out = {"values": [_json(v) for v in values], "n": len(clean)}
    if clean:
        out.update(
            mean=float(np.mean(clean)),
            std=float(np.std(clean, ddof=1)) if len(clean) > 1 else 0.0,
            min=float(np.min(clean)),
            max=float(np.max(clean)),
        )
    else:
        out.update(mean=None, std=None, min=None, max=None)
    return out


def aggregate_curves(step_lists: list[list[int]], series: list[dict[str, list[float]]]) -> dict:
    """Mean/std per step over seeds, on the steps every seed has."""
    if not step_lists:
        return {"step": []}
    common = sorted(set(step_lists[0]).intersection(*map(set, step_lists[1:])))
    out: dict = {"step": common}
    for name in series[0]:
        stacked = np.array(
            [[run[name][steps.index(s)] for s in common] for steps, run in zip(step_lists, series)], dtype=float
        ).reshape(len(series), len(common))
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(stacked, axis=0) if len(common) else np.array([])
            std = np.nanstd(stacked, axis=0, ddof=1 if len(series) > 1 else 0) if len(common) else np.array([])
        out[name] = {"mean": [_json(v) for v in mean], "std": [_json(v) for v in std]}
    return out


def summarize_method(
    method: str,
    specs: list[RunSpec],
    runs: list[dict],
    teacher: dict,
    total_steps: int,
    pipeline: str,
    switch_step: int | None,
    fractions: tuple[float, ...] = (REACH_FRACTION,),
    extended: bool = False,
    lr: float | None = None,
) -> dict:
    """One method over its seeds. `total_steps`: the nominal run length (the final row is the checkpoint there);
    `extended`: its runs may have continued past it (Figure 2's extension), which only the step counts use."""
    reach = {_fraction_key(f): _reach_at(f, runs, teacher) for f in sorted({*fractions, REACH_FRACTION})}
    lengths = [r["eval_steps"][-1] if r["eval_steps"] else total_steps for r in runs]
    censored_at = max([total_steps, *lengths]) if extended else total_steps
    for row in reach.values():
        row["censored_at"] = censored_at
        row["lengths"] = lengths
    full_runs, runs = runs, [_truncate(r, total_steps) for r in runs]  # Table 2's row: the nominal checkpoint
    final = {
        key: aggregate([r["eval"][key][-1] if r["eval"][key] else None for r in runs])
        for key in ("seen_success", "unseen_success", "pretrain_success")
    }
    final["entropy_start"] = aggregate([r["train"]["entropy"][0] if r["steps"] else None for r in runs])
    final["entropy"] = aggregate([_tail_mean(r["train"]["entropy"]) for r in runs])
    final["reverse_kl_start"] = aggregate([r["train"]["reverse_kl"][0] if r["steps"] else None for r in runs])
    final["reverse_kl"] = aggregate([_tail_mean(r["train"]["reverse_kl"]) for r in runs])
    final["teacher_entropy_on_student_states"] = aggregate([_tail_mean(r["train"]["teacher_entropy"]) for r in runs])
    per_task = (
        {
            task: aggregate([r["per_task"][task][-1] if r["per_task"][task] else None for r in runs])
            for task in runs[0]["per_task"]
        }
        if runs
        else {}
    )
    return {
        "label": METHOD_LABELS.get(method, _ablation_label(method)),
        "pipeline": pipeline,
        "lr": lr,
        "seeds": [spec.seed for spec in specs],
        "runs": [r["folder"] for r in runs],
        "batch_tasks": specs[0].batch_tasks,
        "group_size": specs[0].group_size,
        "total_steps": total_steps,
        "grpo_from_step": switch_step,
        "curves": aggregate_curves([r["steps"] for r in full_runs], [r["train"] for r in full_runs]),
        "eval_curves": aggregate_curves(
            [r["eval_steps"] for r in full_runs],
            [{**r["eval"], **{f"task:{t}": v for t, v in r["per_task"].items()}} for r in full_runs],
        ),
        "steps_to_90": reach[_fraction_key(REACH_FRACTION)],
        "steps_to": reach,
        "extended": extended,
        "final": final,
        "final_per_task": per_task,
        "seconds_per_step": aggregate([r["seconds_per_step"] for r in runs]),
        "wall_seconds": aggregate([r["wall_seconds"] for r in runs]),
    }


def _fraction_key(fraction: float) -> str:
    return f"{round(100 * fraction)}"


def _reach_at(fraction: float, runs: list[dict], teacher: dict) -> dict:
    """First evaluated / trained step at `fraction` of the teacher, per seed."""
    eval_threshold = fraction * teacher["seen_success"]
    train_threshold = fraction * teacher["sampled_success"]
    # a teacher at 0% makes "90% of the teacher" meaningless: no step is reported then
    reach_eval = [
        first_reach(r["eval_steps"], r["eval"]["seen_success"], eval_threshold) if eval_threshold > 0 else None
        for r in runs
    ]
    reach_train = [
        first_reach(r["steps"], r["train"]["train_success"], train_threshold, TRAIN_WINDOW)
        if train_threshold > 0
        else None
        for r in runs
    ]
    return {
        "fraction": fraction,
        "eval": {**_reach(reach_eval), "threshold": eval_threshold, "defined": eval_threshold > 0},
        "train": {**_reach(reach_train), "threshold": train_threshold, "defined": train_threshold > 0},
    }


def _truncate(run: dict, last_step: int) -> dict:
    """The run as it stood at `last_step` (an extended run's nominal end)."""
    keep = sum(step <= last_step for step in run["steps"])
    keep_eval = sum(step <= last_step for step in run["eval_steps"])
    if keep == len(run["steps"]) and keep_eval == len(run["eval_steps"]):
        return run
    return {
        **run,
        "steps": run["steps"][:keep],
        "train": {k: v[:keep] for k, v in run["train"].items()},
        "eval_steps": run["eval_steps"][:keep_eval],
        "eval": {k: v[:keep_eval] for k, v in run["eval"].items()},
        "per_task": {k: v[:keep_eval] for k, v in run["per_task"].items()},
    }


def _ablation_label(method: str) -> str:
    if "_lr" in method:
        base, lr = method.rsplit("_lr", 1)
        return f"{METHOD_LABELS.get(base, base)} at lr {lr}"
    return f"reverse KL, G={method.split('_G')[-1]}" if "_G" in method else method


def _reach(values: list[int | None]) -> dict:
    reached = [v for v in values if v is not None]
    return {
        "values": values,
        "reached": len(reached),
        "of": len(values),
        "mean": float(np.mean(reached)) if reached else None,
        "max": max(reached) if reached else None,
    }


def _tail_mean(values: list[float]) -> float | None:
    clean = [v for v in values[-FINAL_ENTROPY_WINDOW:] if not math.isnan(v)]
    return float(np.mean(clean)) if clean else None


# ============================================================================================ speed-up
BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 0


def speedups(
    methods: dict,
    fractions: tuple[float, ...],
    nominal_steps: int,
    *,
    distill: str = "reverse_kl",
    others: tuple[str, ...] = ("grpo",),
) -> list[dict]:
    """Figure 2's ratio: (other method's steps) / (distillation's steps) to each fraction of the teacher (eval),
    seeds paired by index, with a percentile bootstrap interval over seeds. A seed of the other method that never
    got there counts at its run length (`censored_at`), so the ratio is then a lower bound; a distillation seed that
    never got there leaves the ratio undefined. Also the success of each at the nominal step and at 3x it (the
    paper's "distillation at 50 steps vs GRPO at 150")."""
    if distill not in methods:
        return []
    out = []
    for other in (m for m in others if m in methods):
        for fraction in sorted(fractions):
            key = _fraction_key(fraction)
            d_reach, o_reach = methods[distill]["steps_to"][key], methods[other]["steps_to"][key]
            d, o = d_reach["eval"]["values"], o_reach["eval"]["values"]
            censored_at = o_reach["censored_at"]
            row = {
                "method": other,
                "distill": distill,
                "fraction": fraction,
                "distill_steps": d,
                "steps": o,
                "censored_at": censored_at,
                "reached": sum(v is not None for v in o),
                "of": len(o),
                "ratio": None,
                "interval": None,
                "lower_bound": None in o,
                "defined": bool(d) and None not in d and sum(d) > 0,
            }  # reached at step 0 in every seed: 0/0
            if row["defined"] and d_reach["eval"]["defined"] and len(d) == len(o):
                filled = np.array([censored_at if v is None else v for v in o], dtype=float)
                base = np.array(d, dtype=float)
                row["ratio"] = float(filled.mean() / base.mean())
                rng = np.random.default_rng(BOOTSTRAP_SEED)
                picks = rng.integers(0, len(base), size=(BOOTSTRAP_SAMPLES, len(base)))
                ratios = filled[picks].mean(axis=1) / base[picks].mean(axis=1)
                row["interval"] = [float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))]
            out.append(row)
        row_at = {
            "method": other,
            "distill": distill,
            "step": nominal_steps,
            "other_step": 3 * nominal_steps,
            "distill_success": _success_at(methods[distill], nominal_steps),
            "other_success": _success_at(methods[other], 3 * nominal_steps),
        }
        out.append({"fraction": None, **row_at})
    return out


def _success_at(method: dict, step: int) -> float | None:
    """Mean (over seeds) greedy seen success at `step`, None when not every seed was evaluated there."""
    curves = method["eval_curves"]
    if step not in curves["step"]:
        return None
    return curves["seen_success"]["mean"][curves["step"].index(step)]


# ============================================================================================ claims
def claims(suite_result: dict) -> list[dict]:
    """The paper's claims as this study measured them: numbers and a verdict by the stated rule, never forced."""
    ref = suite_result["reference"]
    methods = suite_result["methods"]
    teacher, student = ref["teacher"], ref["student_init"]
    out = []

    def add(claim: str, rule: str, measured: str, verdict: bool | str | None):
        if not isinstance(verdict, str):
            verdict = "not measured" if verdict is None else ("holds" if verdict else "does not hold")
        out.append({"claim": claim, "rule": rule, "measured": measured, "verdict": verdict})

    add(
        "The teacher is at least 90% on the suite",
        "teacher greedy seen success >= 0.90",
        f"teacher {teacher['seen_success']:.2f}",
        teacher["seen_success"] >= 0.9,
    )
    add(
        "The student init (1-demo on the tabletop, many-demo on twin) is well below the teacher",
        "student < 0.75 x teacher (greedy seen success)",
        f"student {student['seen_success']:.2f} vs teacher {teacher['seen_success']:.2f}",
        student["seen_success"] < 0.75 * teacher["seen_success"],
    )

    rkl, grpo = methods.get("reverse_kl"), methods.get("grpo")
    if rkl and grpo:
        for kind in ("eval", "train"):
            r, g = rkl["steps_to_90"][kind], grpo["steps_to_90"][kind]
            censored = grpo["steps_to_90"]["censored_at"]
            # GRPO's mean with each seed that never reached counted at its run length: a lower bound
            g_bound = float(np.mean([censored if v is None else v for v in g["values"]])) if g["values"] else None
            if not r.get("defined", True):
                verdict, text = None, "the teacher's success is 0: 90% of it is undefined"
            elif r["reached"] < r["of"]:
                verdict, length = False, rkl["steps_to_90"]["censored_at"]
                text = f"reverse KL reached in {r['reached']}/{r['of']} seeds within its {length} steps"
            else:
                verdict = r["max"] <= g_bound / 3
                text = f"reverse KL {r['max']} (slowest seed) vs GRPO {g_bound:.1f}"
                if g["reached"] < g["of"]:
                    text += f" ({g['reached']}/{g['of']} GRPO seeds reached; the others counted at {censored})"
                    if not verdict:  # GRPO's true number is only bounded below: the claim is open, not refuted
                        verdict = "undetermined"
                        text += (
                            f"; it holds if GRPO needs at least {3 * r['max']} steps, which runs longer than "
                            f"{censored} steps would tell"
                        )
            add(
                f"Reverse KL reaches 90% of the teacher in at most a third of GRPO's steps ({kind} success)",
                "slowest reverse-KL seed <= GRPO mean / 3, a GRPO seed that never reached counted at its run "
                "length (so GRPO's number is a lower bound)",
                text,
                verdict,
            )

    for row in suite_result.get("speedup", []):
        if row["fraction"] is None or row["method"] != "grpo":
            continue
        add(*_speedup_claim(row))

    for suffix, lr in _lr_suffixes(methods):
        at = f" (lr {lr:g})" if lr is not None else ""
        ent = {
            m: methods[m + suffix]["final"] for m in ("forward_kl", "hard_ce", "reverse_kl") if m + suffix in methods
        }
        if len(ent) == 3 and all(ent[m]["entropy"]["mean"] is not None for m in ent):
            fkl, hce, rk = (ent[m]["entropy"]["mean"] for m in ("forward_kl", "hard_ce", "reverse_kl"))
            fkl0, hce0 = ent["forward_kl"]["entropy_start"]["mean"], ent["hard_ce"]["entropy_start"]["mean"]
            t_ent = teacher["entropy"]
            t_on = ent["forward_kl"]["teacher_entropy_on_student_states"]["mean"]
            add(
                f"Forward KL's entropy rises above its start and above the teacher's{at}",
                "final > start and final > teacher (on its own states)",
                f"forward KL {fkl0:.2f} -> {fkl:.2f}; teacher {t_ent:.2f} on its own states"
                + (f", {t_on:.2f} on forward-KL student states" if t_on is not None else ""),
                fkl > fkl0 and fkl > t_ent,
            )
            add(
                f"Hard CE's entropy ends lowest and below its start{at}",
                "final < start and lowest of the three",
                f"hard CE {hce0:.2f} -> {hce:.2f}",
                hce < hce0 and hce < min(fkl, rk),
            )
            add(
                f"Reverse KL's entropy ends between them{at}",
                "hard CE < reverse KL < forward KL (final)",
                f"hard CE {hce:.2f}, reverse KL {rk:.2f}, forward KL {fkl:.2f}",
                hce < rk < fkl,
            )
        valley = success_valley(methods.get("forward_kl" + suffix))
        if valley is not None:
            add(
                f"Forward KL shows an early success valley{at}",
                "min training success in the first third of the steps < step-1 success - 0.10 (the paper: a drop "
                "of more than 50%)",
                f"step 1 {format_rate(valley['start'])}, early minimum {format_rate(valley['minimum'])} "
                f"at step {valley['step']} "
                f"({_relative(valley['drop'])})",
                valley["minimum"] < valley["start"] - 0.10,
            )

    handoff = suite_result.get("distill_then_grpo")
    if handoff and handoff["gain"]["mean"] is not None:
        switches = handoff["switch_steps"]
        add(
            "Distill then GRPO: GRPO adds success to the plateaued distilled student (the paper: +6.0 points on "
            "average, distill 87.4 -> distill + GRPO 93.4)",
            "mean over seeds of (seen success after GRPO at the study's length - seen success at the switch) > 0; "
            + handoff["rule"],
            f"switch at step(s) {', '.join(map(str, switches))} ({sum(handoff['plateaued'])}/{len(switches)} by the "
            f"plateau rule, the others at the latest step); {_pts(handoff['at_switch'])} at the switch -> "
            f"{_pts(handoff['after_grpo'])} after GRPO ({_signed(handoff['gain'])} points; per seed "
            f"{', '.join(_signed_value(v) for v in handoff['gain']['values'])}); reverse KL continued instead: "
            f"{_pts(handoff['distill_continued'])} ({_signed(handoff['gain_vs_distill_continued'])} points)",
            handoff["gain"]["mean"] > 0,
        )

    sft = methods.get("sft")
    if sft:
        parts, holds = [], True
        for key, name in (("unseen_success", "unseen"), ("pretrain_success", "pre-training")):
            if student.get(key) is None:
                continue
            init = student[key]
            sft_drop = init - (sft["final"][key]["mean"] or 0.0)
            text = f"{name}: init {init:.2f}, sft {sft['final'][key]['mean']:.2f}"
            for m in ("reverse_kl", "grpo"):
                if m in methods and methods[m]["final"][key]["mean"] is not None:
                    text += f", {m} {methods[m]['final'][key]['mean']:.2f}"
                    holds &= methods[m]["final"][key]["mean"] > sft["final"][key]["mean"]
            holds &= sft_drop > 0
            parts.append(text)
        add(
            "Offline SFT loses unseen and pre-training success where on-policy methods keep it",
            "sft final < student init, and reverse KL and GRPO final > sft final (both task groups)",
            "; ".join(parts),
            holds if parts else None,
        )

    g2 = next((m for key, m in methods.items() if key == suite_result["ablation"]["group_sizes"].get("2")), None)
    if g2:
        final = g2["final"]["seen_success"]["mean"]
        add(
            "G=2 still learns",
            "final seen success > student init + 0.05",
            f"G=2 final {final:.2f} vs student {student['seen_success']:.2f}",
            final > student["seen_success"] + 0.05,
        )

    if "reverse_kl" in methods and "reverse_kl_exact" in methods:
        a, b = methods["reverse_kl"], methods["reverse_kl_exact"]
        add(
            "Sampled (eq. 6) and exact reverse KL side by side",
            "reported, no verdict",
            f"final seen {a['final']['seen_success']['mean']:.2f} (sampled) vs "
            f"{b['final']['seen_success']['mean']:.2f} (exact); steps to 90% (eval) "
            f"{_fmt_reach(a['steps_to_90']['eval'])} vs {_fmt_reach(b['steps_to_90']['eval'])}",
            "reported",
        )
    return out


def _lr_suffixes(methods: dict) -> list[tuple[str, float | None]]:
    """("", the main lr) and ("_lr<lr>", lr) for every other learning rate an objective ran at."""
    main = next((methods[m].get("lr") for m in ("forward_kl", "reverse_kl", "hard_ce") if m in methods), None)
    others = sorted({key.rsplit("_lr", 1)[1] for key in methods if "_lr" in key}, key=float)
    return [("", main), *((f"_lr{lr}", float(lr)) for lr in others)]


def success_valley(method: dict | None) -> dict | None:
    """Forward KL's early valley: the lowest training success in the first third of the steps vs step 1."""
    if not method or not method["curves"]["step"]:
        return None
    pairs = [
        (s, v) for s, v in zip(method["curves"]["step"], method["curves"]["train_success"]["mean"]) if v is not None
    ]
    if not pairs:
        return None
    early = pairs[: max(2, len(pairs) // 3)]
    start = pairs[0][1]
    step, minimum = min(early, key=lambda pair: pair[1])
    return {"start": start, "minimum": minimum, "step": step, "drop": (start - minimum) / start if start > 0 else None}


def format_rate(value: float) -> str:
    """A success rate to two decimals, or three below 0.01 so that a small nonzero rate does not read as 0.00."""
    return f"{value:.3f}" if 0 < value < 0.01 else f"{value:.2f}"


def _relative(drop: float | None) -> str:
    return "relative drop undefined: step-1 success 0" if drop is None else f"a relative drop of {100 * drop:.0f}%"


def _pts(agg: dict) -> str:
    return "–" if agg["mean"] is None else f"{100 * agg['mean']:.1f}"


def _signed(agg: dict) -> str:
    return "–" if agg["mean"] is None else _signed_value(agg["mean"])


def _signed_value(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:+.1f}"


# ============================================================================================ Figure 4
VALLEY_DROP = 0.5
"""The paper's Figure 4: forward KL's success drops by more than 50% in the early stage."""


def objective_ablation(methods: dict[str, dict]) -> dict[str, dict]:
    """Per objective of the objective ablation (Fig. 4): its per-step training success and entropy, the early
    valley (lowest success in the first third of the steps vs step 1) and the entropy's extremes, with their steps."""
    out = {}
    for objective, method in methods.items():
        curves = method["curves"]
        steps = curves["step"]
        success = curves["train_success"]["mean"] if steps else []
        entropy = curves["entropy"]["mean"] if steps else []
        row: dict = {"label": method["label"], "steps": steps, "train_success": success, "entropy": entropy}
        known = [(s, v) for s, v in zip(steps, success) if v is not None]
        if known:
            valley = success_valley(method)  # the same early-valley rule as the learning-rate ablation's
            row["valley"] = {
                "start": valley["start"],
                "low": valley["minimum"],
                "at_step": valley["step"],
                "relative_drop": valley["drop"],
            }
            row["final_success"] = float(np.mean([v for _, v in known[-TRAIN_WINDOW:]]))
        known = [(s, v) for s, v in zip(steps, entropy) if v is not None]
        if known:
            (max_step, high), (min_step, low) = max(known, key=lambda sv: sv[1]), min(known, key=lambda sv: sv[1])
            row["entropy_extremes"] = {
                "start": known[0][1],
                "max": high,
                "max_at_step": max_step,
                "min": low,
                "min_at_step": min_step,
                "final": float(np.mean([v for _, v in known[-FINAL_ENTROPY_WINDOW:]])),
            }
        row["final_eval_success"] = method["final"]["seen_success"]["mean"]
        out[objective] = row
    return out


def objective_claims(figure_4: dict[str, dict], teacher_entropy: float | None) -> list[dict]:
    """Figure 4's claims as measured on the objective ablation's runs (rules stated, never forced)."""
    out = []

    def add(claim: str, rule: str, measured: str, verdict: bool | None):
        text = "not measured" if verdict is None else ("holds" if verdict else "does not hold")
        out.append({"claim": claim, "rule": rule, "measured": measured, "verdict": text})

    rkl, fkl, hce = (figure_4.get(k) for k in ("reverse_kl", "forward_kl", "hard_ce"))
    if fkl and fkl.get("valley"):
        v = fkl["valley"]
        drop = v["relative_drop"]
        add(
            "Fig. 4a: forward KL's training success drops by more than 50% early",
            "lowest training success in the first third of the steps < 0.5 x step-1 success",
            f"step 1 {format_rate(v['start'])}, lowest {format_rate(v['low'])} at step {v['at_step']}"
            + (f" ({100 * drop:.0f}% drop)" if drop is not None else " (step-1 success 0: no drop measurable)"),
            None if drop is None else drop > VALLEY_DROP,
        )
    finals = {k: r["final_success"] for k, r in figure_4.items() if r.get("final_success") is not None}
    if len(finals) == 3 and {"reverse_kl", "forward_kl", "hard_ce"} <= set(finals):
        add(
            "Fig. 4a: reverse KL ends highest and hard CE lowest",
            "final training success (mean of the last 3 steps): hard CE < forward KL and both < reverse KL",
            ", ".join(f"{k} {v:.2f}" for k, v in finals.items()),
            finals["hard_ce"] < finals["forward_kl"] < finals["reverse_kl"],
        )
    if rkl and fkl and hce and all(r.get("entropy_extremes") for r in (rkl, fkl, hce)):
        e = {k: r["entropy_extremes"] for k, r in (("reverse_kl", rkl), ("forward_kl", fkl), ("hard_ce", hce))}
        add(
            "Fig. 4b: forward KL's entropy explodes (highest peak, above its start)",
            "forward KL's max entropy > its step-1 entropy and > the max of reverse KL and hard CE",
            f"max: forward KL {e['forward_kl']['max']:.2f} (step {e['forward_kl']['max_at_step']}, start "
            f"{e['forward_kl']['start']:.2f}), reverse KL {e['reverse_kl']['max']:.2f}, "
            f"hard CE {e['hard_ce']['max']:.2f}"
            + (f"; teacher {teacher_entropy:.2f}" if teacher_entropy is not None else ""),
            e["forward_kl"]["max"] > e["forward_kl"]["start"]
            and e["forward_kl"]["max"] > max(e["reverse_kl"]["max"], e["hard_ce"]["max"]),
        )
        add(
            "Fig. 4b: hard CE's entropy collapses (lowest, below its start)",
            "hard CE's min entropy < its step-1 entropy and < the min of reverse KL and forward KL",
            f"min: hard CE {e['hard_ce']['min']:.2f} (step {e['hard_ce']['min_at_step']}, start "
            f"{e['hard_ce']['start']:.2f}), reverse KL {e['reverse_kl']['min']:.2f}, forward KL "
            f"{e['forward_kl']['min']:.2f}",
            e["hard_ce"]["min"] < e["hard_ce"]["start"]
            and e["hard_ce"]["min"] < min(e["reverse_kl"]["min"], e["forward_kl"]["min"]),
        )
        add(
            "Fig. 4b: reverse KL's entropy stays between the two",
            "final entropy: hard CE < reverse KL < forward KL",
            ", ".join(f"{k} {v['final']:.2f}" for k, v in e.items()),
            e["hard_ce"]["final"] < e["reverse_kl"]["final"] < e["forward_kl"]["final"],
        )
    return out


SPEEDUP_CLAIMED = 3.0
"""The paper's Figure 2: distillation reaches the teacher's level in a third of GRPO's steps."""
SPEEDUP_MIN_SEEDS = 5
"""A speed claim decided on fewer seeds is left undetermined (three seeds once gave a 2x that did not hold)."""


def _speedup_claim(row: dict) -> tuple[str, str, str, bool | str | None]:
    fraction = round(100 * row["fraction"])
    claim = f"GRPO needs at least {SPEEDUP_CLAIMED:g}x distillation's steps to reach {fraction}% of the teacher"
    rule = (
        f"the 95% bootstrap interval of GRPO / reverse-KL steps lies at or above {SPEEDUP_CLAIMED:g}: holds; "
        f"below it: does not hold (undetermined if GRPO seeds were censored); straddling it, or fewer than "
        f"{SPEEDUP_MIN_SEEDS} seeds: undetermined"
    )
    if row["ratio"] is None:
        return (
            claim,
            rule,
            "ratio undefined (distillation did not get there in every seed, or was there at step 0)",
            None if not row["distill_steps"] else "undetermined",
        )
    low, high = row["interval"]
    measured = (
        f"{'>= ' if row['lower_bound'] else ''}{row['ratio']:.2f} [{low:.2f}, {high:.2f}] over "
        f"{len(row['steps'])} seeds; reverse KL {row['distill_steps']}, GRPO {row['steps']}"
        + (f" (None: censored at {row['censored_at']})" if row["lower_bound"] else "")
    )
    if len(row["steps"]) < SPEEDUP_MIN_SEEDS:
        return claim, rule, measured, "undetermined"
    if low >= SPEEDUP_CLAIMED:
        return claim, rule, measured, True
    if high < SPEEDUP_CLAIMED and not row["lower_bound"]:
        return claim, rule, measured, False
    return claim, rule, measured, "undetermined"


def _fmt_reach(reach: dict) -> str:
    if reach["reached"] == 0:
        return "never"
    return f"{reach['mean']:.1f} ({reach['reached']}/{reach['of']} seeds)"


# ============================================================================================ helpers
def _num(value) -> float:
    return math.nan if value is None else float(value)


def _json(value):
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value
