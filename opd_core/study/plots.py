"""PNG plots of a study, drawn from summary.json's numbers with matplotlib's object API (no pyplot state).

Per suite: success curves (paper Fig. 2), entropy curves with the teacher as reference (Fig. 4), the seen-unseen
trade-off with one panel per unseen task (Fig. 3), the group-size ablation (Fig. 5), the objective ablation at
each learning rate (entropy and training success, when objectives ran at a second one), and, when the study ran
it, the objective ablation on one task (Fig. 4: training success and entropy per step of each objective).
"""

from __future__ import annotations

from pathlib import Path

from opd_core.study.presets import METHODS, OBJECTIVES, TRADEOFF_METHODS

COLORS = {
    "reverse_kl": "#d62728",
    "reverse_kl_exact": "#ff7f0e",
    "forward_kl": "#1f77b4",
    "hard_ce": "#2ca02c",
    "grpo": "#7f7f7f",
    "sft": "#9467bd",
    "opd_then_grpo": "#8c564b",
}
ON_POLICY = [m for m in METHODS if m != "sft"]


def _figure(cols: int, rows: int = 1, width: float = 5.2, height: float = 3.8):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * cols, height * rows), dpi=110, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, [ax for row in axes for ax in row]


def _legend_below(fig, ax) -> None:
    """One legend for the figure, under its panels, so that it never covers a curve."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 5), fontsize=7, frameon=False)


def _band(ax, steps, curve, label, color, marker=None):
    mean = [float("nan") if v is None else v for v in curve["mean"]]
    std = [0.0 if v is None else v for v in curve["std"]]
    ax.plot(steps, mean, label=label, color=color, marker=marker, markersize=3, linewidth=1.6)
    if any(std):
        ax.fill_between(
            steps,
            [m - s for m, s in zip(mean, std)],
            [m + s for m, s in zip(mean, std)],
            color=color,
            alpha=0.15,
            linewidth=0,
        )


def _switch(ax, method: dict, color):
    """Where distill then GRPO switched: one line per distinct switch step of its seeds."""
    steps = method.get("grpo_from_step")
    for step in sorted(set(steps if isinstance(steps, list) else [steps] if steps else [])):
        ax.axvline(step + 0.5, color=color, linestyle=":", linewidth=1)


def success_plot(suite: str, result: dict, path: Path) -> Path:
    methods, ref = result["methods"], result["reference"]
    fig, (ax_eval, ax_train) = _figure(2)
    for name in ON_POLICY:
        if name not in methods:
            continue
        m = methods[name]
        _band(ax_eval, m["eval_curves"]["step"], m["eval_curves"]["seen_success"], m["label"], COLORS[name], "o")
        _band(ax_train, m["curves"]["step"], m["curves"]["train_success"], m["label"], COLORS[name])
        _switch(ax_eval, m, COLORS[name])
        _switch(ax_train, m, COLORS[name])
    for ax, key, what in (
        (ax_eval, "seen_success", "greedy, evaluation states"),
        (ax_train, "sampled_success", "sampled training rollouts"),
    ):
        ax.axhline(ref["teacher"][key], color="black", linewidth=1, label="teacher")
        ax.axhline(0.9 * ref["teacher"][key], color="black", linewidth=0.8, linestyle="--", label="90% of teacher")
        ax.axhline(ref["student_init"][key], color="black", linewidth=0.8, linestyle=":", label="student init")
        ax.set(xlabel="training step", ylabel="success rate", ylim=(-0.02, 1.02), title=f"{suite}: {what}")
        ax.grid(alpha=0.3)
    _legend_below(fig, ax_eval)
    fig.savefig(path)
    return path


def entropy_plot(suite: str, result: dict, path: Path) -> Path:
    methods, ref = result["methods"], result["reference"]
    fig, (ax,) = _figure(1, width=8.5)
    for name in ON_POLICY:
        if name in methods:
            m = methods[name]
            _band(ax, m["curves"]["step"], m["curves"]["entropy"], m["label"], COLORS[name])
            _switch(ax, m, COLORS[name])
    ax.axhline(ref["teacher"]["entropy"], color="black", linewidth=1.2, label="teacher (own states)")
    rkl = methods.get("reverse_kl")
    if rkl and any(v is not None for v in rkl["curves"]["teacher_entropy"]["mean"]):
        ax.plot(
            rkl["curves"]["step"],
            [float("nan") if v is None else v for v in rkl["curves"]["teacher_entropy"]["mean"]],
            color="black",
            linestyle="--",
            linewidth=0.9,
            label="teacher on reverse-KL student states",
        )
    ax.set(xlabel="training step", ylabel="entropy (nats per action dimension)", title=f"{suite}: policy entropy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.savefig(path)
    return path


def objective_groups(methods: dict) -> dict[float, list[str]]:
    """lr -> the objectives' method keys run at it (the main runs at the recipe's lr, <objective>_lr<lr> at the
    others); empty when no objective ran at a second learning rate."""
    groups: dict[float, list[str]] = {}
    for key, method in methods.items():
        if key.rsplit("_lr", 1)[0] in OBJECTIVES and method.get("lr") is not None:
            groups.setdefault(method["lr"], []).append(key)
    return dict(sorted(groups.items())) if len(groups) > 1 else {}


def objective_lr_plot(suite: str, result: dict, path: Path) -> Path | None:
    """The objective ablation at each learning rate: entropy (top) and training success (bottom) per step."""
    methods, ref = result["methods"], result["reference"]
    groups = objective_groups(methods)
    if not groups:
        return None
    fig, axes = _figure(len(groups), 2, width=5.0, height=3.5)
    for column, (lr, keys) in enumerate(groups.items()):
        top, bottom = axes[column], axes[len(groups) + column]
        for key in keys:
            m, color = methods[key], COLORS[key.rsplit("_lr", 1)[0]]
            _band(top, m["curves"]["step"], m["curves"]["entropy"], m["label"], color)
            _band(bottom, m["curves"]["step"], m["curves"]["train_success"], m["label"], color)
        top.axhline(ref["teacher"]["entropy"], color="black", linewidth=1, label="teacher (own states)")
        bottom.axhline(ref["student_init"]["sampled_success"], color="black", linewidth=0.8, linestyle=":")
        top.set(title=f"{suite}: lr {lr:g}, entropy", ylabel="nats per action dimension")
        bottom.set(title=f"lr {lr:g}, sampled training success", xlabel="training step", ylim=(-0.02, 1.02))
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
        top.legend(fontsize=6, loc="best")
    fig.savefig(path)
    return path


def tradeoff_plot(suite: str, result: dict, path: Path) -> Path:
    """x: seen success, y: one unseen task's success, one point per checkpoint (start at the student init)."""
    methods, ref, tasks = result["methods"], result["reference"], result["tasks"]
    panels = [(task, f"task:{task}", task.split("/", 1)[-1].replace("_", " ")) for task in tasks["held_out"]]
    if tasks["retention"]:
        panels.append((None, "pretrain_success", f"pre-training tasks (mean of {len(tasks['retention'])})"))
    cols = min(3, max(1, len(panels)))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = _figure(cols, rows, width=4.2, height=3.8)
    for ax, (task, key, title) in zip(axes, panels):
        for name in TRADEOFF_METHODS:
            if name not in methods:
                continue
            curves = methods[name]["eval_curves"]
            xs = [float("nan") if v is None else v for v in curves["seen_success"]["mean"]]
            ys = [float("nan") if v is None else v for v in curves[key]["mean"]]
            ax.plot(xs, ys, marker="o", markersize=3, color=COLORS[name], label=methods[name]["label"], linewidth=1.3)
            if xs:
                ax.annotate(
                    "",
                    xy=(xs[-1], ys[-1]),
                    xytext=(xs[-2], ys[-2]) if len(xs) > 1 else (xs[-1], ys[-1]),
                    arrowprops={"arrowstyle": "->", "color": COLORS[name]},
                )
        for row, marker in (("student_init", "*"), ("teacher", "X"), ("base", "s")):
            y = ref[row]["per_task"].get(task) if task else ref[row]["pretrain_success"]
            if y is not None:
                ax.scatter(
                    [ref[row]["seen_success"]],
                    [y],
                    marker=marker,
                    s=60,
                    color="black",
                    zorder=5,
                    label=row.replace("_", " "),
                )
        ax.set(xlabel="seen success", ylabel="unseen success", xlim=(-0.03, 1.03), ylim=(-0.03, 1.03), title=title)
        ax.title.set_fontsize(8)
        ax.grid(alpha=0.3)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=6, loc="best")
    fig.suptitle(f"{suite}: seen vs unseen success during post-training")
    fig.savefig(path)
    return path


def ablation_plot(suite: str, result: dict, path: Path) -> Path:
    methods, ref, ablation = result["methods"], result["reference"], result["ablation"]
    fig, (ax_eval, ax_train) = _figure(2)
    palette = ["#fdae61", "#f46d43", "#a50026", "#67001f"]
    for i, (g, key) in enumerate(sorted(ablation["group_sizes"].items(), key=lambda kv: int(kv[0]))):
        if key not in methods:
            continue
        m = methods[key]
        label = f"G={g}, B={m['batch_tasks']}"
        _band(ax_eval, m["eval_curves"]["step"], m["eval_curves"]["seen_success"], label, palette[i % 4], "o")
        _band(ax_train, m["curves"]["step"], m["curves"]["train_success"], label, palette[i % 4])
    for ax, key in ((ax_eval, "seen_success"), (ax_train, "sampled_success")):
        ax.axhline(ref["teacher"][key], color="black", linewidth=1, label="teacher")
        ax.axhline(ref["student_init"][key], color="black", linewidth=0.8, linestyle=":", label="student init")
        ax.set(xlabel="training step", ylabel="success rate", ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    ax_eval.set_title(f"{suite}: reverse KL, {ablation['trajectories']} trajectories/step (eval)")
    ax_train.set_title("training rollouts")
    _legend_below(fig, ax_eval)
    fig.savefig(path)
    return path


def objective_plot(suite: str, result: dict, path: Path) -> Path:
    ablation, ref = result["objective_ablation"], result["reference"]
    fig, (ax_success, ax_entropy) = _figure(2)
    for objective, m in ablation["methods"].items():
        curves = m["curves"]
        _band(ax_success, curves["step"], curves["train_success"], m["label"], COLORS.get(objective, "black"))
        _band(ax_entropy, curves["step"], curves["entropy"], m["label"], COLORS.get(objective, "black"))
    ax_success.set(xlabel="training step", ylabel="training success rate", ylim=(-0.02, 1.02))
    ax_entropy.set(xlabel="training step", ylabel="actor entropy (nats)")
    if ref["teacher"].get("entropy") is not None:
        ax_entropy.axhline(ref["teacher"]["entropy"], color="black", linewidth=1, label="teacher (own states)")
    for ax in (ax_success, ax_entropy):
        ax.grid(alpha=0.3)
    ax_success.set_title(
        f"{ablation['task']}: {ablation['trajectories']} trajectories/step (a) training success", fontsize=8
    )
    ax_entropy.set_title("(b) actor entropy", fontsize=8)
    ax_entropy.legend(fontsize=7, loc="best")
    fig.savefig(path)
    return path


def draw_all(summary: dict, folder: Path) -> dict[str, dict[str, str]]:
    """Every plot of every suite; returns suite -> plot kind -> path relative to the study folder."""
    folder.mkdir(parents=True, exist_ok=True)
    made: dict[str, dict[str, str]] = {}
    for suite, result in summary["results"].items():
        made[suite] = {}
        for kind, draw in (
            ("success", success_plot),
            ("entropy", entropy_plot),
            ("tradeoff", tradeoff_plot),
            ("ablation", ablation_plot),
            ("objective_lr", objective_lr_plot),
        ):
            if kind == "ablation" and not result["ablation"]["group_sizes"]:
                continue
            path = draw(suite, result, folder / f"{kind}_{suite}.png")
            if path is not None:
                made[suite][kind] = f"{folder.name}/{path.name}"
        if result.get("objective_ablation"):
            path = objective_plot(suite, result, folder / f"objectives_{suite}.png")
            made[suite]["objectives"] = f"{folder.name}/{path.name}"
    return made
