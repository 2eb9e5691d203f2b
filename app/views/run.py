"""Run: one run's page (/run?id=5): status and its history, the failure, config, checkpoints with their
evaluations, the log the run folder holds, and where its files are.

Every table that lists runs links here. The status history comes from `worker.api.run_events` (re-queued,
resumed, attempts) where the API has it, else from the times the run row keeps (created, started, finished).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from app import exports, navigation
from app.backend import api
from app.charts import show_figure
from app.figures import SUCCESS_RANGE, color_of
from app.forms import field_sections
from app.run_groups import method_label
from app.runs_table import duration_seconds, format_duration, status_text
from app.views.common import guarded, labeller

RUN_KEY = "run_page_id"
LOG_TAIL_LINES = 40
"""Lines of a run folder's log files (metrics.jsonl, *.log) shown on the page."""
OPEN_SECTIONS = ("what to run", "environment", "optimisation")
"""Config sections shown unfolded: what a researcher checks first."""
STATUS_COLORS = {
    "queued": "gray",
    "running": "blue",
    "finished": "green",
    "failed": "red",
    "crashed": "red",
    "cancelled": "orange",
}


@dataclass(frozen=True)
class Event:
    """One line of a run's status history (the shape of worker.api's RunEvent)."""

    at: datetime
    kind: str
    message: str


def page_url(run_id: int) -> str:
    """The run page's address relative to any other page (for LinkColumns in tables)."""
    return f"run?id={run_id}"


@guarded
def render() -> None:
    lab = api()
    runs = lab.list_runs()
    if not runs:
        st.title("Run")
        st.info("No runs yet: launch one.")
        return
    run = _chosen(runs)
    st.title(f"#{run.id} {run.name}")
    _summary(run)
    _failure(run)
    _history(lab, run)
    _checkpoints(lab, run)
    _config(run.config)
    _log(lab, run)
    _files(lab, run)


def _chosen(runs: Sequence[Any]) -> Any:
    """The run named by ?id= (kept in the URL when another run is picked here)."""
    known = [run.id for run in runs]
    wanted = st.query_params.get("id", "")
    if RUN_KEY not in st.session_state or (
        wanted.isdigit() and int(wanted) in known and int(wanted) != st.session_state[RUN_KEY]
    ):
        if wanted and not (wanted.isdigit() and int(wanted) in known):
            st.warning(f"No run with id {wanted!r}; showing the newest run instead.")
        st.session_state[RUN_KEY] = int(wanted) if wanted.isdigit() and int(wanted) in known else known[0]
    if st.session_state[RUN_KEY] not in known:  # deleted meanwhile
        st.session_state[RUN_KEY] = known[0]
    run_id = st.selectbox("Run", known, key=RUN_KEY, format_func=labeller(runs), on_change=_write_id)
    st.query_params["id"] = str(run_id)
    return next(run for run in runs if run.id == run_id)


def _write_id() -> None:
    st.query_params["id"] = str(st.session_state[RUN_KEY])


# ============================================================================================ summary
def _summary(run: Any) -> None:
    color = STATUS_COLORS.get(run.status, "gray")
    attempt = getattr(run, "attempt", 1) or 1
    st.badge(status_text(run), color=color)
    facts = [
        ("method", method_label(run.config)),
        ("suite", run.config.get("suite", "")),
        ("steps", f"{run.step}/{run.total_steps}" if run.total_steps else "—"),
        ("attempt", str(attempt)),
        ("duration", format_duration(duration_seconds(run, _now())) or "—"),
        ("worker", getattr(run, "worker_host", None) or "—"),
    ]
    st.markdown(" · ".join(f"{label} **{value}**" for label, value in facts))
    links = st.container(horizontal=True, gap="medium")
    links.page_link(
        navigation.page("compare"),
        label="Open on Compare",
        icon=":material/monitoring:",
        query_params={"runs": [str(run.id)]},
    )
    links.page_link(
        navigation.page("videos"), label="Rollout videos", icon=":material/movie:", query_params={"runs": [str(run.id)]}
    )
    if getattr(run, "parent_run_id", None) is not None:
        links.page_link(
            navigation.page("run"),
            label=f"Parent run #{run.parent_run_id}",
            icon=":material/arrow_upward:",
            query_params={"id": str(run.parent_run_id)},
        )
    if run.tags or run.notes:
        st.caption(" · ".join(part for part in (", ".join(run.tags), run.notes) if part))


def _now() -> datetime:
    return datetime.now(UTC)


def _failure(run: Any) -> None:
    if not (run.error or run.traceback):
        return
    st.error(f"**{run.status.capitalize()}:** {run.error or 'no message'}", icon=":material/error:")
    if run.traceback:
        with st.expander("Traceback", expanded=run.status == "failed"):
            st.code(run.traceback, language="text")


# ============================================================================================ history
def run_history(lab: Any, run: Any) -> list[Event]:
    """The API's recorded events when it has them, else what the run row's times say, oldest first."""
    recorded = getattr(lab, "run_events", None)
    if callable(recorded):
        events = [Event(e.at, e.kind, e.message) for e in recorded(run.id)]
        if events:
            return sorted(events, key=lambda e: e.at)
    events = [Event(run.created_at, "queued", f"queued on {getattr(run, 'queue', '') or 'the default queue'}")]
    if run.started_at is not None:
        host = getattr(run, "worker_host", None)
        attempt = getattr(run, "attempt", 1) or 1
        events.append(Event(run.started_at, "started", f"attempt {attempt}" + (f" on {host}" if host else "")))
    if run.finished_at is not None:
        events.append(
            Event(
                run.finished_at,
                run.status,
                (run.error or "").strip().splitlines()[0][:200] if run.error else f"at step {run.step}",
            )
        )
    return events


def _history(lab: Any, run: Any) -> None:
    st.subheader("Status history")
    events = run_history(lab, run)
    st.dataframe(
        [{"time": e.at.strftime("%Y-%m-%d %H:%M:%S"), "event": e.kind, "detail": e.message} for e in events],
        hide_index=True,
        key="run_history",
        column_config={"detail": st.column_config.TextColumn("detail", width="large")},
    )
    if not callable(getattr(lab, "run_events", None)):
        st.caption("From the run's recorded times (this lab's API keeps no event history).")


# ============================================================================================ checkpoints
def checkpoint_rows(checkpoints: Sequence[Any]) -> list[dict[str, Any]]:
    """One row per checkpoint: step, seen and unseen success, then every per-task success it recorded."""
    rows = []
    for checkpoint in sorted(checkpoints, key=lambda c: c.step):
        summary = checkpoint.summary or {}
        row = {
            "step": checkpoint.step,
            "seen success": _number(summary.get("seen_success")),
            "unseen success": _number(summary.get("unseen_success")),
        }
        for task, value in sorted((summary.get("per_task") or {}).items()):
            row[task] = _number(value)
        row["path"] = checkpoint.path
        rows.append(row)
    return rows


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def checkpoint_figure(rows: Sequence[dict[str, Any]], title: str) -> go.Figure:
    """Seen and unseen success per checkpoint step (the evaluations the run recorded)."""
    figure = go.Figure()
    for index, column in enumerate(("seen success", "unseen success")):
        points = [(row["step"], row[column]) for row in rows if row[column] is not None]
        if points:
            figure.add_trace(
                go.Scatter(
                    x=[p[0] for p in points],
                    y=[p[1] for p in points],
                    mode="lines+markers",
                    name=column,
                    line={"color": color_of(index)},
                    hovertemplate="step %{x}: %{y:.2f}<extra>" + column + "</extra>",
                )
            )
    figure.update_layout(
        title={"text": title, "x": 0},
        height=320,
        margin={"l": 60, "r": 20, "t": 70, "b": 40},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 1, "xanchor": "right"},
        hovermode="x unified",
    )
    figure.update_xaxes(title_text="training step")
    figure.update_yaxes(title_text="success rate", range=SUCCESS_RANGE)
    return figure


def _checkpoints(lab: Any, run: Any) -> None:
    st.subheader("Checkpoints and evaluations")
    rows = checkpoint_rows(lab.checkpoints(run.id))
    if not rows:
        st.caption("No checkpoint yet.")
        return
    if any(row["seen success"] is not None or row["unseen success"] is not None for row in rows):
        figure = checkpoint_figure(rows, f"Evaluation success of #{run.id}")
        show_figure(figure, key="run_chart", filename=f"run-{run.id}-evaluations")
        exports.download_buttons(figure, f"run-{run.id}-evaluations", key="run_chart_export")
    numbers = [key for key in dict.fromkeys(k for row in rows for k in row) if key not in ("step", "path")]
    st.dataframe(
        rows,
        hide_index=True,
        key="run_checkpoints",
        column_config={
            key: st.column_config.NumberColumn(_task_header(key), format="%.2f", help=key) for key in numbers
        },
    )


def _task_header(key: str) -> str:
    """'unseen/put_red_block_behind_tray' -> 'unseen: put red block behind tray' (its full key on hover)."""
    suite, _, task = key.rpartition("/")
    return f"{suite}: {task.replace('_', ' ')}" if suite else key


# ============================================================================================ config
def config_sections(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The config grouped under RunConfig's own section titles, in the dataclass's order; unknown fields (an
    older or newer config) go under "other"."""
    sections = field_sections()
    grouped: dict[str, dict[str, Any]] = {}
    for name in [*[n for n in sections if n in config], *[n for n in config if n not in sections]]:
        grouped.setdefault(sections.get(name, "other"), {})[name] = config[name]
    return grouped


def _config(config: dict[str, Any]) -> None:
    st.subheader("Config")
    grouped = config_sections(config)
    columns = st.columns(2)
    for index, (section, values) in enumerate(grouped.items()):
        title = section if len(section) <= 40 else section.split(" (")[0]  # the long ones explain themselves
        with columns[index % 2].expander(title.capitalize(), expanded=section in OPEN_SECTIONS):
            # st.table wraps long values (task lists, paths) where a dataframe would cut them
            st.table({"value": {name: _shown(value) for name, value in values.items()}})
    st.download_button(
        "Config (JSON)",
        json.dumps(config, indent=2),
        file_name="config.json",
        mime="application/json",
        key="run_config_json",
        on_click="ignore",
    )


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) if value else "(none)"
    if value == "":
        return "(none)"
    return str(value)


# ============================================================================================ log and files
def tail_lines(path: Path, count: int = LOG_TAIL_LINES, block: int = 65536) -> list[str]:
    """The last `count` lines of a text file, reading only its end."""
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - block))
        data = handle.read()
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > block:
        lines = lines[1:]  # the first line read is probably cut
    return lines[-count:]


def _run_folder(lab: Any, run: Any) -> Path | None:
    if not run.out_dir:
        return None
    try:
        return Path(lab.artifact_path(run.out_dir))
    except ValueError:
        return None


def log_files(folder: Path | None) -> list[Path]:
    """What the run folder holds that reads as a log: *.log files first, then metrics.jsonl."""
    if folder is None or not folder.is_dir():
        return []
    return [*sorted(folder.glob("*.log")), *[p for p in (folder / "metrics.jsonl",) if p.is_file()]]


def _log(lab: Any, run: Any) -> None:
    st.subheader("Log")
    files = log_files(_run_folder(lab, run))
    if not files:
        st.caption("The run folder holds no log yet.")
        return
    names = [path.name for path in files]
    chosen = st.radio("File", names, horizontal=True, key=f"run_log_{run.id}", label_visibility="collapsed")
    path = files[names.index(chosen)]
    st.caption(f"Last {LOG_TAIL_LINES} lines of `{path}`")
    st.code("\n".join(tail_lines(path)) or "(empty)", language="json" if path.suffix == ".jsonl" else "text")


def _files(lab: Any, run: Any) -> None:
    st.subheader("Files")
    folder = _run_folder(lab, run)
    if folder is None:
        st.caption("This run records no folder.")
        return
    st.markdown("Run folder:")
    st.code(str(folder), language="text")
    if not folder.is_dir():
        st.caption("The folder does not exist (yet).")
        return
    rows = [
        {"file": str(path.relative_to(folder)) + ("/" if path.is_dir() else ""), "size": _size(path), "path": str(path)}
        for path in sorted(folder.iterdir())
    ]
    st.dataframe(
        rows,
        hide_index=True,
        key="run_files",
        column_config={"path": st.column_config.TextColumn("path", width="large")},
    )
    videos = lab.videos(run.id)
    if videos:
        st.caption(f"{len(videos)} rollout videos; newest: `{lab.artifact_path(videos[-1].path)}`")


def _size(path: Path) -> str:
    total = path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    for unit in ("B", "kB", "MB", "GB"):
        if total < 1024 or unit == "GB":
            return f"{total:.0f} {unit}" if unit == "B" else f"{total:.1f} {unit}"
        total /= 1024
    return ""
