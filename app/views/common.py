"""Helpers every page shares: the store-failure guard, run labels, and selections kept in the URL."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import streamlit as st

from app.backend import ApiUnavailable, action_errors, api, is_store_unavailable

STORE_HELP = (
    "Check that the database is running and reachable (`OPD_DATABASE_URL`, or the SQLite file in "
    "`OPD_DATA_DIR`), then reload this page."
)


def guarded(render: Callable[..., Any]) -> Callable[..., Any]:
    """Run a page (or fragment) body; an unreachable store or a broken worker API becomes one st.error."""

    @functools.wraps(render)
    def wrapper(*args, **kwargs):
        try:
            return render(*args, **kwargs)
        except ApiUnavailable as error:
            st.error(f"**The lab's worker API is not available.** {error}", icon=":material/power_off:")
        except Exception as error:  # noqa: BLE001 - only the store's own failure is handled here
            if not is_store_unavailable(error):
                raise
            st.error(f"**The run store is unreachable.** {error}\n\n{STORE_HELP}", icon=":material/database:")

    return wrapper


def refusal(action: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, str | None]:
    """(result, None), or (None, the reason) when the API refuses the action (a run that changed status in the
    meantime, a broker that is down, a config it rejects)."""
    try:
        return action(*args, **kwargs), None
    except action_errors() as error:
        return None, str(error)


def run_label(run: Any) -> str:
    return f"#{run.id} {run.name} · {run.status}"


def labeller(runs: Sequence[Any]) -> Callable[[int], str]:
    by_id = {run.id: run for run in runs}
    return lambda run_id: run_label(by_id[run_id]) if run_id in by_id else f"#{run_id} (deleted)"


def ids_from_query(name: str, allowed: Iterable[int] | None = None) -> list[int]:
    """Run ids from repeated query parameters (?runs=3&runs=5); unknown or malformed ones are dropped."""
    allowed_set = None if allowed is None else set(allowed)
    ids = []
    for value in st.query_params.get_all(name):
        if value.strip().isdigit() and (allowed_set is None or int(value) in allowed_set):
            ids.append(int(value))
    return list(dict.fromkeys(ids))


def init_from_query(state_key: str, default: Any, parse: Callable[[list[str]], Any], param: str) -> None:
    """Seed a widget's session state from the URL once (the first run of the page in this session)."""
    if state_key not in st.session_state:
        values = st.query_params.get_all(param)
        try:
            st.session_state[state_key] = parse(values) if values else default
        except (TypeError, ValueError):
            st.session_state[state_key] = default


def query_writer(state_key: str, param: str) -> Callable[[], None]:
    """An on_change callback that mirrors a widget's value into the URL, so the view can be shared."""

    def write() -> None:
        value = st.session_state.get(state_key)
        st.query_params[param] = [str(v) for v in value] if isinstance(value, (list, tuple)) else str(value)

    return write


def artifact(path: str) -> str:
    """Absolute path of a file a run recorded (the store keeps checkpoint and video paths relative to the data
    directory)."""
    return str(api().artifact_path(path))
