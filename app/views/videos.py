"""Videos: the evaluation rollouts of several runs at one checkpoint step, in a grid.

One checkpoint-step slider drives every player; a row per run (tasks across) or a column per run (tasks down);
each player carries the episode's outcome as a badge (✓ success in green, ✗ failure in red); the players play,
pause and seek together (app/video_sync.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from app import navigation
from app.backend import api
from app.video_sync import sync_players
from app.views.common import artifact, guarded, ids_from_query, labeller, query_writer

DEFAULT_RUNS = 2
"""Runs shown side by side when the URL names none: the newest that have videos."""
LAYOUTS = {"rows": "a row per run", "columns": "a column per run"}
VIDEO_WIDTH = 320
"""Pixels per player: the renders are small, and a grid of several runs must fit on a screen."""


def grid_steps(videos: Mapping[int, Sequence[Any]]) -> list[int]:
    """Every checkpoint step at which any of the runs has a video, ascending (a run without a video at the
    chosen step says so in its cell)."""
    return sorted({video.step for found in videos.values() for video in found})


def grid_tasks(videos: Mapping[int, Sequence[Any]], step: int) -> list[str]:
    return list(dict.fromkeys(video.task for found in videos.values() for video in found if video.step == step))


def cell(videos: Sequence[Any], step: int, task: str) -> Any | None:
    """The run's video of `task` at `step` (None when it has none)."""
    return next((video for video in videos if video.step == step and video.task == task), None)


def outcome_badge(success: bool) -> tuple[str, str]:
    """(label, colour) of the success badge: a mark and a word, so it reads without colour too."""
    return ("✓ success", "green") if success else ("✗ failure", "red")


@guarded
def render() -> None:
    st.title("Videos")
    lab = api()
    runs = [run for run in lab.list_runs() if run.status != "queued"]
    if not runs:
        st.info("No run has started yet, so there are no rollout videos.")
        return
    known = [run.id for run in runs]
    if "videos_runs" not in st.session_state:
        st.session_state["videos_runs"] = ids_from_query("runs", known) or _newest_with_videos(lab, known)
    st.session_state["videos_runs"] = [i for i in st.session_state["videos_runs"] if i in known]
    chosen = st.multiselect(
        "Runs", known, key="videos_runs", format_func=labeller(runs), on_change=query_writer("videos_runs", "runs")
    )
    if not chosen:
        st.info("Pick runs to watch their rollouts side by side.")
        return
    videos = {run_id: lab.videos(run_id) for run_id in chosen}
    steps = grid_steps(videos)
    if not steps:
        st.info("No checkpoint of these runs has videos yet.")
        return
    if st.session_state.get("videos_step") not in steps:
        wanted = st.query_params.get("step", "")
        st.session_state["videos_step"] = int(wanted) if wanted.isdigit() and int(wanted) in steps else steps[-1]
    step_column, layout_column = st.columns([3, 2])
    with step_column:
        step = st.select_slider(
            "Checkpoint step (drives every player)",
            steps,
            key="videos_step",
            on_change=query_writer("videos_step", "step"),
        )
    layout = layout_column.radio("Layout", list(LAYOUTS), format_func=LAYOUTS.get, horizontal=True, key="videos_layout")
    autoplay = layout_column.toggle(
        "Play all together", key="videos_autoplay", help="Start every player at once, muted, looping"
    )
    synced = layout_column.toggle(
        "Players in step",
        value=True,
        key="videos_synced",
        help="Play, pause, seek and speed on one player move every player to the same moment of its episode",
    )
    sync_players(synced)
    tasks = grid_tasks(videos, step)
    kept = [t for t in st.session_state.get("videos_tasks", []) if t in tasks]
    st.session_state["videos_tasks"] = kept or tasks[:2]
    shown = st.multiselect("Tasks", tasks, key="videos_tasks")
    by_id = {run.id: run for run in runs}
    _grid([by_id[i] for i in chosen], videos, step, shown, layout, autoplay)


def _newest_with_videos(lab: Any, known: list[int]) -> list[int]:
    found = []
    for run_id in known:  # newest first
        if len(found) == DEFAULT_RUNS:
            break
        if lab.videos(run_id):
            found.append(run_id)
    return found or known[:1]


def _grid(
    runs: Sequence[Any],
    videos: Mapping[int, Sequence[Any]],
    step: int,
    tasks: Sequence[str],
    layout: str,
    autoplay: bool,
) -> None:
    if not tasks:
        st.info("Pick one or more tasks.")
        return
    if layout == "rows":
        for run in runs:
            st.markdown(f"**#{run.id} {run.name}**")
            for column, task in zip(st.columns(len(tasks)), tasks):
                with column:
                    _player(run.id, cell(videos[run.id], step, task), task, step, autoplay)
        return
    columns = st.columns(len(runs))
    for column, run in zip(columns, runs):
        column.markdown(f"**#{run.id} {run.name}**")
    for task in tasks:
        for column, run in zip(st.columns(len(runs)), runs):
            with column:
                _player(run.id, cell(videos[run.id], step, task), task, step, autoplay)


def _player(run_id: int, video: Any | None, task: str, step: int, autoplay: bool) -> None:
    if video is None:
        st.caption(f"`{task}`: no video at step {step}")
        return
    label, color = outcome_badge(video.success)
    st.badge(label, color=color)
    st.caption(f"step {video.step} · `{video.task}`")
    path = Path(artifact(video.path))
    if not path.is_file():
        st.warning(f"The video file is missing: {path}")
        return
    st.video(str(path), autoplay=autoplay, muted=autoplay, loop=autoplay, width=VIDEO_WIDTH)
    st.page_link(
        navigation.page("inspector"),
        label="Inspect this rollout",
        icon=":material/query_stats:",
        query_params={"run": run_id, "step": video.step, "task": video.task},
    )
