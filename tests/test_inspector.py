"""The action-distribution inspector on real checkpoints: the shipped object student and teacher, and a tiny run
through the lab (its evaluation films the episodes the inspector replays)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from opd_core import action_inspector as inspector
from opd_core.checkpoint import load_policy
from opd_core.envs.tabletop.sim import TabletopVecEnv
from opd_core.envs.tabletop.tasks import CATALOG
from opd_core.evaluate import evaluate
from opd_core.video import read_video_info

REPO_ROOT = Path(__file__).resolve().parent.parent
STUDENT = REPO_ROOT / "assets" / "tabletop" / "object" / "student"
TEACHER = REPO_ROOT / "assets" / "tabletop" / "object" / "teacher"
SEEN = CATALOG.suite_tasks("object")[:3]
UNSEEN = CATALOG.suite_tasks("unseen")[:1]
STEPS = 30


@pytest.fixture(scope="module")
def student():
    return load_policy(STUDENT).eval()


@pytest.fixture(scope="module")
def teacher():
    return load_policy(TEACHER).eval()


def kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """sum_k p log(p / q) per row, straight from the definition."""
    return np.sum(np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0), axis=-1)


def entropy(p: np.ndarray) -> np.ndarray:
    return -np.sum(np.where(p > 0, p * np.log(p), 0.0), axis=-1)


@torch.no_grad()
def greedy_state_at(policy, task: str, frame: int):
    """The observation after `frame` greedy steps from init state 0, stepped here without the rollout loop."""
    env = TabletopVecEnv(1, image_size=64, max_episode_steps=STEPS)
    obs = env.reset([task], [0])
    for _ in range(frame):
        bins = policy(obs).argmax(-1)
        obs, _ = env.step(policy.tokenizer.decode(bins.numpy()))
    return obs


# ============================================================================================ the library
@pytest.mark.parametrize("frame", [0, 7])
def test_the_distributions_shown_are_the_policies_own_softmax_at_that_state(student, teacher, frame):
    task = SEEN[1]
    episode = inspector.replay_evaluation_episode(
        student,
        "tabletop",
        SEEN,
        UNSEEN,
        task,
        init_states=2,
        temperature=0.0,
        seed=0,
        image_size=64,
        max_episode_steps=STEPS,
    )
    assert episode.batch == inspector.BATCH_SOLO and episode.length > frame
    shown = inspector.inspect_frame(student, teacher, episode, frame)

    obs = greedy_state_at(student, task, frame)
    assert np.array_equal(obs.image[0], episode.frames[frame])
    with torch.no_grad():
        student_p = torch.softmax(student(obs).double(), -1)[0].numpy()
        teacher_p = torch.softmax(teacher(obs).double(), -1)[0].numpy()
    np.testing.assert_allclose(shown.student_probs, student_p, atol=1e-6)
    np.testing.assert_allclose(shown.teacher_probs, teacher_p, atol=1e-6)
    np.testing.assert_allclose(shown.student_probs.sum(-1), 1.0, atol=1e-9)
    assert shown.dimensions == ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
    assert np.array_equal(shown.chosen_bins, student_p.argmax(-1))  # greedy evaluation: the argmax was taken
    assert np.array_equal(shown.teacher_argmax, teacher_p.argmax(-1))
    np.testing.assert_allclose(shown.reverse_kl, kl(shown.student_probs, shown.teacher_probs), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(shown.forward_kl, kl(shown.teacher_probs, shown.student_probs), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(shown.student_entropy, entropy(shown.student_probs), rtol=1e-6)
    np.testing.assert_allclose(shown.teacher_entropy, entropy(shown.teacher_probs), rtol=1e-6)
    assert (shown.reverse_kl > 0).all() and not np.allclose(shown.reverse_kl, shown.forward_kl)
    values = shown.bin_values[np.arange(7), shown.chosen_bins]
    np.testing.assert_allclose(values, student.tokenizer.decode(shown.chosen_bins))
    assert [row["dimension"] for row in shown.rows()] == list(shown.dimensions)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_the_replay_reproduces_the_filmed_episode(student, tmp_path, temperature):
    """Greedy: the episode replayed alone; sampled: inside the evaluation's whole batch (one shared generator)."""
    result = evaluate(
        student,
        "tabletop",
        SEEN,
        UNSEEN,
        init_states=2,
        temperature=temperature,
        image_size=64,
        max_episode_steps=STEPS,
        video_tasks=[SEEN[0], SEEN[1], UNSEEN[0]],
        video_dir=tmp_path,
        run_dir=tmp_path,
        seed=3,
    )
    assert len(result.videos) == 3
    for video in result.videos:
        episode = inspector.replay_evaluation_episode(
            student,
            "tabletop",
            SEEN,
            UNSEEN,
            video["task"],
            init_states=2,
            temperature=temperature,
            seed=3,
            image_size=64,
            max_episode_steps=STEPS,
        )
        assert episode.batch == (inspector.BATCH_SOLO if temperature == 0 else inspector.BATCH_EVALUATION)
        assert read_video_info(tmp_path / video["path"])["frames"] == episode.length + 1 == len(episode.frames)
        assert episode.success == video["success"]
        assert len(episode.queries) == len(episode.bins) == episode.length  # one action per query here


def test_bad_frames_and_incomparable_teachers_are_refused_by_name(student):
    episode = inspector.replay_evaluation_episode(
        student,
        "tabletop",
        SEEN,
        UNSEEN,
        SEEN[0],
        init_states=1,
        temperature=0.0,
        seed=0,
        image_size=64,
        max_episode_steps=5,
    )
    with pytest.raises(inspector.InspectionError, match="frame 5 is out of range"):
        episode.query_of(episode.length)
    with pytest.raises(inspector.InspectionError, match="not among the evaluated tasks"):
        inspector.replay_evaluation_episode(
            student, "tabletop", SEEN, [], UNSEEN[0], init_states=1, temperature=0.0, seed=0, image_size=64
        )
    from opd_core.policies.base import build_policy
    from opd_core.tokenizer import ActionTokenizer

    other = build_policy(
        "small_vla", {"width": 4, "hidden": 16, "input_size": 16}, ActionTokenizer((-2.0,) * 7, (2.0,) * 7)
    )
    with pytest.raises(inspector.InspectionError, match="action statistics differ"):
        inspector.inspect_frame(student, other, episode, 0)
