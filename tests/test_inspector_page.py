"""The Inspector page through the real navigation with the in-memory worker API (Streamlit AppTest), and its
figure as a plain function (AppTest cannot render Plotly charts)."""

from __future__ import annotations

import numpy as np
import pytest

from app import backend
from app.views.inspector import distribution_figure, shown_range
from html_tables import read_html_table
from test_app_fakes import Checkpoint, FakeApi, Video, config
from test_app_pages import open_page, texts

TASK = "object/pick_red_block_into_basket"


@pytest.fixture
def lab():
    fake = FakeApi()
    backend.install(fake)
    yield fake
    backend.uninstall()


def with_rollouts(fake: FakeApi):
    run = fake.add_run(config=config(name="reverse kl"), step=20, total_steps=20)
    fake.checkpoint_rows[run.id] = [Checkpoint(run.id, s, f"runs/{run.id}/checkpoints/step_{s}", {}) for s in (0, 20)]
    fake.video_rows[run.id] = [
        Video(run.id, s, task, True, f"runs/{run.id}/videos/step_{s}/{i}.mp4")
        for s in (0, 20)
        for i, task in enumerate((TASK, "unseen/put_red_block_behind_tray"))
    ]
    grpo = fake.add_run(config=config(name="grpo", pipeline="grpo", teacher_checkpoint=""), step=20)
    fake.checkpoint_rows[grpo.id] = [Checkpoint(grpo.id, 20, f"runs/{grpo.id}/checkpoints/step_20", {})]
    fake.video_rows[grpo.id] = [Video(grpo.id, 20, TASK, False, f"runs/{grpo.id}/videos/step_20/0.mp4")]
    return run, grpo


def test_the_page_opens_the_rollout_named_in_the_url_and_follows_the_slider(lab):
    run, _ = with_rollouts(lab)
    at = open_page("inspector", {"run": str(run.id), "step": "0", "task": TASK, "frame": "5"})
    assert not at.exception
    assert at.selectbox(key="inspector_run").value == run.id
    assert at.selectbox(key=f"inspector_step_{run.id}").value == 0
    assert at.selectbox(key=f"inspector_task_{run.id}_0").value == TASK
    assert at.selectbox(key=f"inspector_teacher_{run.id}").value == "/ckpt/teacher"  # the run's own teacher
    slider = at.slider(key=f"inspector_frame_{run.id}_0_{TASK}")
    assert (slider.value, slider.max) == (5, 11)
    assert ("inspect_actions", run.id, 0, TASK, 5, "/ckpt/teacher") in lab.calls
    table = read_html_table(at)
    assert list(table) == ["quantity", "dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
    assert table["quantity"][6:8] == ["KL(S ‖ T)", "KL(T ‖ S)"]
    numbers = lab.inspect_actions(run.id, 0, TASK, 5, "/ckpt/teacher").distributions
    assert table["dz"][6] == f"{numbers.reverse_kl[2]:.3g}" and table["gripper"][0] == str(numbers.chosen_bins[6])
    assert "Frame **5** of 12" in texts(at) and "replay took the filmed episode" in texts(at)
    slider.set_value(9).run()
    assert ("inspect_actions", run.id, 0, TASK, 9, "/ckpt/teacher") in lab.calls
    assert at.query_params["frame"] == "9" and at.query_params["task"] == TASK


def test_a_run_without_teacher_offers_the_shipped_one_and_errors_are_messages(lab):
    _, grpo = with_rollouts(lab)
    at = open_page("inspector", {"run": str(grpo.id)})
    assert not at.exception
    assert at.selectbox(key=f"inspector_teacher_{grpo.id}").value == "/repo/assets/tabletop/object/teacher"
    lab.inspection_frames = 0  # a rollout the API refuses: a message, not a traceback
    at = open_page("inspector", {"run": str(grpo.id)})
    assert not at.exception and "cannot be inspected" in texts(at)


def test_without_filmed_rollouts_the_page_says_where_they_come_from(lab):
    lab.add_run(config=config(name="no videos"))
    at = open_page("inspector")
    assert not at.exception and "No run has filmed" in texts(at)


def test_the_figure_has_a_panel_per_dimension_titled_with_its_numbers(lab):
    run, _ = with_rollouts(lab)
    shown = lab.inspect_actions(run.id, 20, TASK, 3).distributions
    figure = distribution_figure(shown)
    titles = [a.text for a in figure.layout.annotations]
    assert len(titles) == 7 and titles[0].startswith("<b>dx</b>")
    assert f"RKL {shown.reverse_kl[2]:.3f} · FKL {shown.forward_kl[2]:.3f}" in titles[2]
    students = [t for t in figure.data if t.name == "student"]
    assert len(students) == 7 and np.array_equal(students[4].y, shown.student_probs[4])
    chosen = [t for t in figure.data if t.name == "chosen bin"]
    assert [int(t.x[0]) for t in chosen] == list(shown.chosen_bins)
    low, high = figure.layout.xaxis.range
    assert low <= shown.chosen_bins[0] <= high and high - low < 256  # zoomed to where the mass is
    assert list(distribution_figure(shown, zoom=False).layout.xaxis.range) == [-0.5, 255.5]


def test_the_zoomed_range_keeps_every_heavy_bin_and_the_chosen_one():
    student = np.zeros(256)
    student[[100, 101]] = 0.5
    teacher = np.full(256, 1e-6)
    teacher[[40, 180]] = 0.5
    assert shown_range(student, teacher, chosen=230) == (34 - 0.5, 236 + 0.5)
    low, high = shown_range(student, student, chosen=100)
    assert low <= 100 and high >= 101 and high - low >= 16
