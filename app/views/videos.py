"""Videos: the evaluation rollouts of a checkpoint, one run or two side by side at the same checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from app.backend import api
from app.views.common import artifact, guarded, ids_from_query, labeller

VIDEO_WIDTH = 420
"""Pixels: the renders are 64x64, and two players must fit side by side."""


@guarded
def render() -> None:
    st.title("Videos")
    lab = api()
    runs = [run for run in lab.list_runs() if run.status != "queued"]
    if not runs:
        st.info("No run has started yet, so there are no rollout videos.")
        return
    known = [run.id for run in runs]
    from_url = ids_from_query("runs", known)
    left, right = st.columns(2)
    first = left.selectbox("Run", known, index=known.index(from_url[0]) if from_url else 0,
                           format_func=labeller(runs), key="videos_run")
    others = [None, *[i for i in known if i != first]]
    second = right.selectbox("Side by side with", others, format_func=lambda i: "—" if i is None
                             else labeller(runs)(i), index=others.index(from_url[1])
                             if len(from_url) > 1 and from_url[1] in others else 0, key="videos_other")
    chosen = [first] + ([second] if second is not None else [])
    videos = {run_id: lab.videos(run_id) for run_id in chosen}
    steps = sorted(set.intersection(*({video.step for video in found} for found in videos.values())))
    if not steps:
        st.info("No checkpoint has videos " + ("for both runs." if second is not None else "yet."))
        return
    step = st.select_slider("Checkpoint step", steps, value=steps[-1], key=f"videos_step_{'_'.join(map(str, chosen))}")
    tasks = list(dict.fromkeys(v.task for found in videos.values() for v in found if v.step == step))
    task = st.selectbox("Task", tasks, key="videos_task")
    by_id = {run.id: run for run in runs}
    for column, run_id in zip(st.columns(len(chosen)), chosen):
        with column:
            _player(by_id[run_id], [v for v in videos[run_id] if v.step == step and v.task == task])


def _player(run: Any, matches: list[Any]) -> None:
    st.markdown(f"**#{run.id} {run.name}**")
    if not matches:
        st.caption("No video of this task at this checkpoint.")
        return
    video = matches[0]
    path = Path(artifact(video.path))
    outcome = ":green[:material/check_circle: success]" if video.success else ":red[:material/cancel: failure]"
    st.markdown(f"{outcome} · step {video.step} · `{video.task}`")
    if not path.is_file():
        st.warning(f"The video file is missing: {path}")
        return
    st.video(str(path), width=VIDEO_WIDTH)
