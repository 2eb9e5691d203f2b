"""The pages against the real worker.api on a temporary SQLite data directory (no broker consumer needed).

Runs are written the way a worker writes them (worker.sql_sink.SqlSink), so the paths, series and summaries the
pages read are the real ones; the queued runs' messages simply wait in the filesystem broker.
"""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from app import backend
from opd_core.config import RunConfig

UNSEEN = ["unseen/put_red_block_behind_tray", "unseen/put_green_block_to_the_left_of_plate"]


def _script(page: str) -> None:
    from app.main import main

    main(default=page)


def open_page(page: str, query: dict | None = None) -> AppTest:
    at = AppTest.from_function(_script, kwargs={"page": page}, default_timeout=60)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    return at.run()


@pytest.fixture
def real_lab(tmp_path):
    from worker import api
    from worker.settings import Settings

    settings = Settings(data_dir=tmp_path / "data")
    api.configure(settings)
    backend.uninstall()
    yield api, settings
    api.configure(None)


def write_like_a_worker(settings, run_id: int, steps: int, objective_bias: float) -> None:
    """Claim the run and log what opd_core.train would: metrics every step, a checkpoint and a video per eval."""
    from worker import lifecycle
    from worker.sql_sink import SqlSink
    from worker.store import Store

    store = Store(settings)
    claim = lifecycle.claim(store, run_id, 1, "test-host")
    sink = SqlSink(store, run_id, claim.attempt, run_dir=claim.config["out_dir"], heartbeat_seconds=0.2)
    for step in range(0, steps + 1):
        if step:
            sink.log(
                {
                    "train/success": min(1.0, step / steps + objective_bias),
                    "train/entropy": 2.5 - step / 100,
                    "time/env_steps": 64.0 * step,
                    "time/wall_seconds": 0.5 * step,
                },
                step,
            )
            sink.progress(step, steps)
        if step % 5 == 0:
            seen = min(1.0, step / steps + objective_bias)
            per_task = {UNSEEN[0]: 0.5 - step / 100, UNSEEN[1]: 0.3}
            sink.log({"eval/seen_success": seen, "eval/unseen_success": 0.4}, step)
            sink.log_checkpoint(
                step, f"checkpoints/step_{step}", {"seen_success": seen, "unseen_success": 0.4, "per_task": per_task}
            )
            video = settings.data_dir / claim.config["out_dir"] / f"videos/step_{step}/task.mp4"
            video.parent.mkdir(parents=True, exist_ok=True)
            video.write_bytes(b"\x00\x00\x00\x18ftypmp42")  # a stand-in: AppTest does not decode videos
            sink.log_video(step, "object/pick_red_block_into_basket", step > 5, f"videos/step_{step}/task.mp4")
    sink.close()
    lifecycle.finish(store, run_id, claim.attempt, "finished", step=steps)
    store.close()


def test_every_page_on_a_real_store(real_lab):
    api, settings = real_lab
    for name in ("teacher", "student"):  # launch refuses checkpoints that are not there
        (settings.data_dir / name).mkdir(parents=True, exist_ok=True)
        (settings.data_dir / name / "meta.json").write_text("{}")
    base = RunConfig(
        teacher_checkpoint="teacher", student_checkpoint="student", unseen_tasks=UNSEEN, steps=20
    ).to_dict()
    sweep_id, run_ids = api.launch_sweep(base, {"objective": ["reverse_kl", "hard_ce"]}, "ablation")
    for run_id, bias in zip(run_ids, (0.2, 0.0)):
        write_like_a_worker(settings, run_id, steps=20, objective_bias=bias)
    queued = api.launch({**base, "name": "waiting"})

    at = open_page("overview")
    assert not at.exception and {m.label: m.value for m in at.metric}["finished"] == "2"

    at = open_page("runs")
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["id"]) == [queued, *reversed(run_ids)]
    assert table["train success"].iloc[1] == pytest.approx(1.0) and table["sweep"].iloc[1] == "ablation"

    at = open_page("compare", {"runs": [str(i) for i in run_ids], "x": "env_steps"})
    assert not at.exception and at.multiselect(key="compare_runs").value == run_ids
    assert "eval/seen_success" in at.multiselect(key="compare_keys").options

    at = open_page("forgetting")
    assert not at.exception and at.multiselect(key="forgetting_runs").value == [queued]
    at.multiselect(key="forgetting_runs").set_value(run_ids).run()
    assert not at.exception

    at = open_page("videos", {"runs": [str(run_ids[0])]})
    assert not at.exception
    assert at.select_slider(key="videos_step").value == 20
    assert any(":green-badge[✓ success]" in m.value for m in at.markdown)

    at = open_page("run", {"id": str(run_ids[0])})
    assert not at.exception and not at.error
    codes = "\n".join(c.value for c in at.code)
    assert '"step": 20' in codes  # the tail of the run folder's metrics.jsonl
    checkpoints = next(df.value for df in at.dataframe if "seen success" in df.value.columns)
    assert list(checkpoints["step"]) == [0, 5, 10, 15, 20] and checkpoints["seen success"].iloc[-1] == 1.0
    history = next(df.value for df in at.dataframe if "event" in df.value.columns)
    assert list(history["event"])[0] == "queued" and list(history["event"])[-1] == "finished"

    at = open_page("sweep", {"sweep": str(sweep_id)})
    assert not at.exception and at.multiselect(key="sweep_runs").value == run_ids
    assert at.selectbox(key="sweep_field").value == "objective"

    at = open_page("results")
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["method"]) == ["Student init", "OPD (reverse KL)", "OPD (hard CE)"]
    assert list(table["object"]) == ["20.0", "100.0", "100.0"]  # step 0 of the first run: 0 + its bias 0.2


def test_launch_form_queues_a_run_in_the_real_store(real_lab):
    api, _ = real_lab
    at = open_page("launch")
    at.selectbox(key="launch_pipeline").set_value("grpo")
    at.number_input(key="launch_steps").set_value(3)
    at.button[0].click().run()
    assert not at.exception, at.exception
    (run,) = api.list_runs()
    assert run.status == "queued" and run.config["pipeline"] == "grpo" and run.total_steps == 3


def test_an_unreachable_database_is_a_message(tmp_path, monkeypatch):
    from worker import api

    backend.uninstall()
    api.configure(None)
    monkeypatch.setenv("OPD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("OPD_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/opd")  # nothing listens
    try:
        at = open_page("runs")
    finally:
        api.configure(None)
    assert not at.exception
    assert "run store is unreachable" in at.error[0].value and "Connection refused" in at.error[0].value
