"""worker.api.inspect_actions on tiny runs made through the lab (launched, then executed in this process): the
filmed episode is replayed from the run's checkpoint, reproduces the video, and the distributions are the
checkpoint's and the teacher's own softmax at the replayed state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from opd_core import action_inspector as inspector
from opd_core.checkpoint import load_policy
from opd_core.envs.libero import libero_available
from opd_core.envs.tabletop.tasks import CATALOG

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED = REPO_ROOT / "assets" / "tabletop" / "object"
SEEN = CATALOG.suite_tasks("object")[:2]
UNSEEN = CATALOG.suite_tasks("unseen")[:1]


def tiny_run(lab, **changes) -> int:
    """Launch a one-step run from the shipped student, evaluate at steps 0 and 1 (filming SEEN[0] and UNSEEN[0]),
    and run it here, as a worker would."""
    from worker.inspection import clear_caches
    from worker.tasks import execute_run

    clear_caches()
    config = {
        "name": "inspected",
        "pipeline": "opd",
        "objective": "reverse_kl",
        "suite": "object",
        "tasks": SEEN,
        "unseen_tasks": UNSEEN,
        "student_checkpoint": str(SHIPPED / "student"),
        "teacher_checkpoint": str(SHIPPED / "teacher"),
        "steps": 1,
        "batch_tasks": 2,
        "group_size": 2,
        "max_episode_steps": 20,
        "eval_every": 1,
        "eval_init_states": 2,
        "videos_per_eval": 1,
        "save_every": 1,
        "minibatch_size": 64,
        "updates_per_step": 1,
        **changes,
    }
    run_id = lab.launch(config)
    outcome = execute_run(lab._current().store, lab.settings(), run_id, 1, "test")
    assert outcome["status"] == "finished", lab.get_run(run_id).error
    return run_id


def test_inspect_actions_replays_the_filmed_episode_and_shows_the_policies_softmax(lab, monkeypatch):
    run_id = tiny_run(lab, eval_temperature=1.0)  # sampled: the replay must rerun the whole evaluation batch
    replays = []
    real_replay = inspector.replay_episode
    monkeypatch.setattr(inspector, "replay_episode", lambda *a, **k: replays.append(a) or real_replay(*a, **k))
    videos = lab.videos(run_id, 1)
    assert {v.task for v in videos} == {SEEN[0], UNSEEN[0]}
    for video in videos:
        shown = lab.inspect_actions(run_id, 1, video.task, 0)
        assert shown.reproduced, (shown.filmed_frames, shown.replay_length, shown.filmed_success, shown.replay_success)
        assert shown.replay == inspector.BATCH_EVALUATION and shown.filmed_success == video.success
        assert shown.teacher.source == "run" and shown.image.ndim == 3
    assert len(replays) == 2

    task = UNSEEN[0]
    last = lab.inspect_actions(run_id, 1, task, 0).num_frames - 1
    shown = lab.inspect_actions(run_id, 1, task, last)
    assert len(replays) == 2  # the slider moves over a cached replay

    student = load_policy(lab.artifact_path(lab.checkpoints(run_id)[-1].path))
    teacher = load_policy(SHIPPED / "teacher")
    episode = inspector.replay_evaluation_episode(
        student,
        "tabletop",
        SEEN,
        UNSEEN,
        task,
        init_states=2,
        temperature=1.0,
        seed=0,
        image_size=64,
        max_episode_steps=20,
    )
    obs = episode.queries.take(np.array([last]))
    with torch.no_grad():
        np.testing.assert_allclose(
            shown.distributions.student_probs, torch.softmax(student(obs).double(), -1)[0].numpy(), atol=1e-6
        )
        np.testing.assert_allclose(
            shown.distributions.teacher_probs, torch.softmax(teacher(obs).double(), -1)[0].numpy(), atol=1e-6
        )
    assert np.array_equal(shown.distributions.chosen_bins, episode.bins[last].numpy())


def test_a_run_without_teacher_is_inspected_against_a_shipped_or_another_runs_checkpoint(lab):
    finished = tiny_run(lab)
    grpo = tiny_run(lab, pipeline="grpo", teacher_checkpoint="", name="no teacher")
    choices = lab.inspector_teachers(grpo)
    sources = [c.source for c in choices]
    assert "run" not in sources and "shipped" in sources and "checkpoint" in sources
    assert Path(choices[0].path).resolve() == (SHIPPED / "teacher").resolve()  # the default first: its suite's
    other = next(c for c in choices if c.source == "checkpoint")
    assert other.label.startswith(f"#{finished} ") and other.path == lab.checkpoints(finished)[-1].path

    default = lab.inspect_actions(grpo, 1, SEEN[0], 2)
    assert default.teacher.source == "shipped" and Path(default.teacher.path) == SHIPPED / "teacher"
    assert default.reproduced and default.replay == inspector.BATCH_SOLO  # greedy evaluation: replayed alone
    picked = lab.inspect_actions(grpo, 1, SEEN[0], 2, teacher=other.path)
    assert np.array_equal(picked.distributions.student_probs, default.distributions.student_probs)
    assert not np.allclose(picked.distributions.teacher_probs, default.distributions.teacher_probs)


def test_what_cannot_be_inspected_is_named(lab):
    run_id = tiny_run(lab)
    with pytest.raises(ValueError, match="no checkpoint at step 7"):
        lab.inspect_actions(run_id, 7, SEEN[0], 0)
    with pytest.raises(ValueError, match="filmed no episode of task"):
        lab.inspect_actions(run_id, 1, SEEN[1], 0)
    with pytest.raises(ValueError, match="frame 999 is out of range"):
        lab.inspect_actions(run_id, 1, SEEN[0], 999)
    with pytest.raises(ValueError, match="is not a checkpoint folder"):
        lab.inspect_actions(run_id, 1, SEEN[0], 0, teacher="runs/nowhere")
    with pytest.raises(lab.RunNotFound):
        lab.inspect_actions(run_id + 100, 1, SEEN[0], 0)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.skipif(
    not libero_available(),
    reason="LIBERO is an optional extra and is not installed (pip install -r requirements-libero.txt)",
)
@pytest.mark.parametrize("lab_settings", ["embedded"], indirect=True)
def test_a_libero_rollout_is_replayed_through_the_env_registry(lab, lab_settings):
    """The LIBERO smoke run (tiny policies, one task, three steps per episode) inspected like any other."""
    from opd_core.checkpoint import save_checkpoint
    from opd_core.policies import build_policy
    from opd_core.tokenizer import ActionTokenizer

    for name, seed in (("student", 0), ("teacher", 1)):
        torch.manual_seed(seed)
        policy = build_policy("small_vla", {"width": 4, "hidden": 32, "input_size": 16}, ActionTokenizer.identity())
        save_checkpoint(lab_settings.data_dir / "models" / name, policy, step=0)
    task = "pick_up_the_alphabet_soup_and_place_it_in_the_basket"
    run_id = tiny_run(
        lab,
        env="libero",
        suite="libero_object",
        tasks=[task],
        unseen_tasks=[],
        student_checkpoint="models/student",
        teacher_checkpoint="models/teacher",
        max_episode_steps=3,
        image_size=32,
        eval_init_states=1,
        save_every=0,
    )
    shown = lab.inspect_actions(run_id, 1, task, 2)
    assert shown.env == "libero" and shown.replay == inspector.BATCH_SOLO
    assert shown.reproduced, (shown.filmed_frames, shown.replay_length, shown.filmed_success, shown.replay_success)
    assert shown.distributions.student_probs.shape == (7, 256) and (shown.distributions.reverse_kl >= 0).all()
