"""Playback in step: the Videos grid's players play, pause, seek and change speed together.

The checkpoint slider already shows every run at the same training step; this makes their playback share one
clock too, so that frame t of one run's episode is beside frame t of another's. A Streamlit v2 component (no
iframe) watches the page's <video> elements and mirrors each user action on one player to the others; a shorter
episode holds its last frame while the longer ones go on.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

_SYNC_JS = """
export default function (component) {
  const state = window.__opdVideoSync || (window.__opdVideoSync = { enabled: false });
  state.enabled = component.data.enabled;
  if (state.observer) return;
  const players = () => [...document.querySelectorAll("video")];
  // A change made here to another player fires that player's own event: it is marked as expected for a moment,
  // so that it is not mirrored back (a clamped seek of a shorter episode would pull the others back).
  const expect = (video, kind) => { (video.__opdExpected ||= {})[kind] = performance.now(); };
  const expected = (video, kind) => {
    const since = video.__opdExpected && video.__opdExpected[kind];
    if (since === undefined) return false;
    delete video.__opdExpected[kind];
    return performance.now() - since < 1000;
  };
  const align = (other, time) => {
    const target = Math.min(time, other.duration || time);
    if (Math.abs(other.currentTime - target) > 0.01) { expect(other, "seeked"); other.currentTime = target; }
  };
  const actions = {
    play: (source, other) => {
      align(other, source.currentTime);
      if (other.paused) { expect(other, "play"); other.muted = true; other.play().catch(() => {}); }
    },
    pause: (source, other) => { if (!other.paused) { expect(other, "pause"); other.pause(); } },
    seeked: (source, other) => align(other, source.currentTime),
    ratechange: (source, other) => {
      if (other.playbackRate === source.playbackRate) return;
      expect(other, "ratechange");
      other.playbackRate = source.playbackRate;
    },
  };
  const attach = (video) => {
    if (video.dataset.opdSync) return;
    video.dataset.opdSync = "1";
    for (const [kind, act] of Object.entries(actions)) {
      video.addEventListener(kind, () => {
        if (expected(video, kind) || !state.enabled) return;
        for (const other of players()) if (other !== video) act(video, other);
      });
    }
  };
  players().forEach(attach);
  state.observer = new MutationObserver(() => players().forEach(attach));
  state.observer.observe(document.body, { childList: true, subtree: true });
}
"""

_component: Any = None


def sync_players(enabled: bool) -> None:
    """Mount the synchroniser once per page (a hidden element); `enabled` False lets each player run alone."""
    global _component
    if _component is None:  # registered on first use, not at import
        _component = st.components.v2.component("opd_video_sync", js=_SYNC_JS, isolate_styles=False)
    _component(data={"enabled": enabled}, key="opd_video_sync")
