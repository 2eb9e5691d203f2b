"""Inspector: at one frame of a filmed evaluation rollout, the student's and the teacher's distributions over the
256 bins of every action dimension, with the per-dimension reverse KL, forward KL and entropies.

The rollout is re-simulated from the run's checkpoint (worker.api.inspect_actions; cached, so the frame slider is
fast). The URL (?run=&step=&task=&frame=) opens a given rollout; the Videos page links here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from app.backend import api
from app.charts import show_figure
from app.html_table import html_table
from app.views.common import guarded, labeller

STUDENT_COLOR = "#1f77b4"
TEACHER_COLOR = "#ff7f0e"
PANEL_COLUMNS = 2
PANEL_HEIGHT = 250
"""Pixels per row of panels (title lines included)."""
MASS_SHOWN = 1e-3
"""Zoomed panels show the bins where either distribution has at least this much probability (and a margin)."""
IMAGE_WIDTH = 280
HOW_TO_READ = (
    "**Reverse KL** KL(student ‖ teacher), what `reverse_kl` minimises, is small when the student puts its mass "
    "where the teacher has mass, even on one of several teacher modes (mode-seeking). **Forward KL** KL(teacher ‖ "
    "student), what `forward_kl` minimises, is large when the student misses mass the teacher has (mode-covering). "
    "`hard_ce` keeps only the teacher's argmax (▼), whatever its spread. Entropies H in nats; a uniform 256-bin "
    "distribution has H = 5.55. In the table, S is the student, T the teacher, and the chosen bin the action "
    "the student took at this frame."
)


@guarded
def render() -> None:
    st.title("Action inspector")
    lab = api()
    runs = [run for run in lab.list_runs() if run.status != "queued"]
    filmed = {run.id: lab.videos(run.id) for run in runs}
    runs = [run for run in runs if filmed[run.id]]
    if not runs:
        st.info("No run has filmed an evaluation rollout yet: the inspector opens the rollouts of the Videos page.")
        return
    query = st.query_params
    known = [run.id for run in runs]
    wanted_run = _int(query.get("run"))
    by_id = {run.id: run for run in runs}
    top = st.columns([3, 1])
    run_id = top[0].selectbox(
        "Run",
        known,
        index=known.index(wanted_run) if wanted_run in known else 0,
        format_func=labeller(runs),
        key="inspector_run",
    )
    run = by_id[run_id]
    saved = {checkpoint.step for checkpoint in lab.checkpoints(run_id)}
    steps = sorted({video.step for video in filmed[run_id]} & saved)
    if not steps:
        st.info(f"Run #{run_id} has no checkpoint at the steps it filmed, so its rollouts cannot be replayed.")
        return
    wanted_step = _int(query.get("step"))
    step = top[1].selectbox(
        "Checkpoint step",
        steps,
        index=steps.index(wanted_step) if wanted_step in steps else len(steps) - 1,
        key=f"inspector_step_{run_id}",
    )
    tasks = [video.task for video in filmed[run_id] if video.step == step]
    second = st.columns(2)
    task = second[0].selectbox(
        "Task (filmed rollout)",
        tasks,
        index=tasks.index(query["task"]) if query.get("task") in tasks else 0,
        key=f"inspector_task_{run_id}_{step}",
    )
    choices = lab.inspector_teachers(run_id)
    if not choices:
        st.warning("This run has no teacher and none is shipped for its simulator: finish a run to compare with.")
        return
    paths = [choice.path for choice in choices]
    labels = {choice.path: choice.label for choice in choices}
    teacher = second[1].selectbox(
        "Teacher",
        paths,
        index=_default_teacher_index(choices, query.get("teacher")),
        format_func=labels.get,
        key=f"inspector_teacher_{run_id}",
        help="The run's own teacher, a shipped teacher, or any finished run's final "
        "checkpoint: for runs trained without a teacher (GRPO, SFT) too.",
    )
    if (run.config or {}).get("env") == "libero":
        st.info(
            "LIBERO rollouts are re-simulated in LIBERO itself: the first view of a rollout takes about as long "
            "as the episode took in the evaluation (minutes); the frame slider is fast after that.",
            icon=":material/hourglass_top:",
        )
    try:
        with st.spinner("Replaying the rollout from the checkpoint..."):
            first = lab.inspect_actions(run_id, step, task, 0, teacher)
    except ValueError as error:
        st.error(f"This rollout cannot be inspected: {error}")
        return
    last = first.num_frames - 1
    frame = 0
    if last > 0:
        wanted_frame = _int(query.get("frame"))
        frame = st.slider(
            "Frame (the action taken at this frame of the video)",
            0,
            last,
            min(wanted_frame or 0, last),
            key=f"inspector_frame_{run_id}_{step}_{task}",
        )
    shown = first if frame == 0 else lab.inspect_actions(run_id, step, task, frame, teacher)
    st.query_params.update(
        {"run": str(run_id), "step": str(step), "task": task, "frame": str(frame), "teacher": teacher}
    )

    left, right = st.columns([1.2, 3])
    with left:
        st.image(shown.image, width="stretch" if shown.image.shape[1] > shown.image.shape[0] else IMAGE_WIDTH)
        st.markdown(_frame_caption(shown))
    with right:
        zoom = st.toggle(
            "Zoom to the bins with mass",
            value=True,
            key="inspector_zoom",
            help=f"Show the bins where either distribution has at least {MASS_SHOWN:g} probability.",
        )
        show_figure(
            distribution_figure(shown.distributions, zoom=zoom),
            key="inspector_chart",
            filename=f"inspector-run{run_id}-step{step}",
        )
    st.caption(HOW_TO_READ)
    st.html(html_table(per_quantity(shown.distributions.rows())))


def _frame_caption(shown: Any) -> str:
    outcome = ":green[success]" if shown.filmed_success else ":red[failure]"
    replay = "alone" if shown.replay == "solo" else "inside the whole evaluation batch"
    lines = [
        f"Frame **{shown.frame}** of {shown.num_frames} with an action · filmed {outcome}",
        f"Replayed {replay} at temperature {shown.temperature:g}.",
    ]
    if shown.reproduced:
        lines.append(":material/check: The replay took the filmed episode's steps and outcome.")
    else:
        filmed = "missing" if shown.filmed_frames is None else f"{shown.filmed_frames - 1} steps"
        lines.append(
            f":orange[:material/warning: The replay differs from the video (video: {filmed}, "
            f"{'success' if shown.filmed_success else 'failure'}; replay: {shown.replay_length} steps, "
            f"{'success' if shown.replay_success else 'failure'}): the image is the video's, the "
            "distributions the replay's.]"
        )
    if shown.distributions.query_frame != shown.frame:
        lines.append(f"Action chunk decided at frame {shown.distributions.query_frame}.")
    lines.append(f"Teacher: {shown.teacher.label.split(' (')[0]}")
    return "  \n".join(lines)


def _default_teacher_index(choices: list[Any], from_url: str | None) -> int:
    """The teacher named in the URL, else the API's default (listed first)."""
    paths = [choice.path for choice in choices]
    return paths.index(from_url) if from_url in paths else 0


QUANTITIES = {
    "chosen bin": "chosen bin",
    "chosen value": "its value",
    "student argmax": "argmax S",
    "teacher argmax": "argmax T",
    "p_student(chosen)": "p_S(chosen)",
    "p_teacher(chosen)": "p_T(chosen)",
    "reverse KL": "KL(S ‖ T)",
    "forward KL": "KL(T ‖ S)",
    "student entropy": "H_S",
    "teacher entropy": "H_T",
}
"""The table's rows, in order, with their labels (S the student, T the teacher, as the caption above says)."""


def per_quantity(rows: list[dict]) -> list[dict]:
    """The inspector's numbers with a column per action dimension and a row per quantity: seven or fourteen
    narrow columns fit at 1024 px where eleven quantity columns did not."""
    table = []
    for key, label in QUANTITIES.items():
        line: dict[str, Any] = {"quantity": label}
        for row in rows:
            value = row[key]
            line[row["dimension"]] = str(value) if isinstance(value, int) else f"{value:.3g}"
        table.append(line)
    return table


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().lstrip("-").isdigit() else None


# ============================================================================================ figure
def panel_title(distributions: Any, d: int) -> str:
    """Dimension name and its numbers on three short lines (a panel is about 170 px wide at 1024 px): reverse KL,
    forward KL, student / teacher entropy."""
    return (
        f"<b>{distributions.dimensions[d]}</b> · bin {int(distributions.chosen_bins[d])}<br>"
        f"RKL {distributions.reverse_kl[d]:.3f} · FKL {distributions.forward_kl[d]:.3f}<br>"
        f"H {distributions.student_entropy[d]:.2f} / {distributions.teacher_entropy[d]:.2f}"
    )


def shown_range(student: np.ndarray, teacher: np.ndarray, chosen: int, margin: int = 6) -> tuple[float, float]:
    """Bins (as an axis range) where either distribution has at least MASS_SHOWN, the chosen bin included."""
    heavy = np.nonzero((student >= MASS_SHOWN) | (teacher >= MASS_SHOWN))[0]
    low, high = (
        min(int(heavy.min()) if len(heavy) else chosen, chosen),
        max(int(heavy.max()) if len(heavy) else chosen, chosen),
    )
    low, high = max(0, low - margin), min(len(student) - 1, high + margin)
    if high - low < 16:  # a spike: keep some context around it
        centre = (low + high) / 2
        low, high = max(0, centre - 8), min(len(student) - 1, centre + 8)
    return low - 0.5, high + 0.5


def distribution_figure(distributions: Any, zoom: bool = True) -> go.Figure:
    """One panel per action dimension: student and teacher probabilities over the bins (filled steps), the
    student's chosen bin (dotted line) and the teacher's argmax (▼, the hard-CE target)."""
    dims = len(distributions.dimensions)
    rows = -(-dims // PANEL_COLUMNS)
    figure = make_subplots(
        rows=rows,
        cols=PANEL_COLUMNS,
        subplot_titles=[panel_title(distributions, d) for d in range(dims)],
        horizontal_spacing=0.08,
        vertical_spacing=0.5 / rows,
    )
    bins = np.arange(distributions.student_probs.shape[1])
    for d in range(dims):
        row, col = d // PANEL_COLUMNS + 1, d % PANEL_COLUMNS + 1
        values = distributions.bin_values[d]
        hover = "bin %{x} (value %{customdata:.3f})<br>p = %{y:.4f}<extra>%{fullData.name}</extra>"
        for name, probs, color in (
            ("student", distributions.student_probs[d], STUDENT_COLOR),
            ("teacher", distributions.teacher_probs[d], TEACHER_COLOR),
        ):
            figure.add_trace(
                go.Scatter(
                    x=bins,
                    y=probs,
                    name=name,
                    legendgroup=name,
                    showlegend=d == 0,
                    mode="lines",
                    line={"shape": "hvh", "width": 1.5, "color": color},
                    fill="tozeroy",
                    fillcolor=_alpha(color, 0.25),
                    customdata=values,
                    hovertemplate=hover,
                ),
                row=row,
                col=col,
            )
        chosen = int(distributions.chosen_bins[d])
        top = float(max(distributions.student_probs[d].max(), distributions.teacher_probs[d].max()))
        figure.add_trace(
            go.Scatter(
                x=[chosen, chosen],
                y=[0, top * 1.08],
                name="chosen bin",
                legendgroup="chosen",
                showlegend=d == 0,
                mode="lines",
                line={"color": "#222", "dash": "dot", "width": 1.5},
                hovertemplate=f"chosen bin {chosen}<extra></extra>",
            ),
            row=row,
            col=col,
        )
        target = int(distributions.teacher_argmax[d])
        figure.add_trace(
            go.Scatter(
                x=[target],
                y=[top * 1.1],
                name="teacher argmax (hard CE)",
                legendgroup="argmax",
                showlegend=d == 0,
                mode="markers",
                marker={
                    "symbol": "triangle-down",
                    "size": 9,
                    "color": TEACHER_COLOR,
                    "line": {"color": "#222", "width": 1},
                },
                hovertemplate=f"teacher argmax {target}<extra></extra>",
            ),
            row=row,
            col=col,
        )
        if zoom:
            figure.update_xaxes(
                range=shown_range(distributions.student_probs[d], distributions.teacher_probs[d], chosen),
                row=row,
                col=col,
            )
        else:
            figure.update_xaxes(range=[-0.5, len(bins) - 0.5], row=row, col=col)
        figure.update_yaxes(rangemode="tozero", row=row, col=col)
    figure.update_annotations(font_size=12)
    figure.update_xaxes(title_text="bin", title_standoff=2, title_font_size=11)
    figure.update_yaxes(title_text="p", title_standoff=2, title_font_size=11)
    spare = dims % PANEL_COLUMNS != 0  # an empty last cell holds the legend; else it goes above the panels
    legend = (
        {"orientation": "v", "x": 1 - 1 / PANEL_COLUMNS + 0.1, "xanchor": "left", "y": 0.35 / rows, "yanchor": "middle"}
        if spare
        else {"orientation": "h", "x": 0, "y": 1 + 40 / (PANEL_HEIGHT * rows), "yanchor": "bottom"}
    )
    figure.update_layout(
        height=PANEL_HEIGHT * rows + 40,
        margin={"l": 40, "r": 10, "t": 60 if spare else 90, "b": 30},
        legend={**legend, "font_size": 12},
        hovermode="closest",
    )
    return figure


def _alpha(color: str, alpha: float) -> str:
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"
