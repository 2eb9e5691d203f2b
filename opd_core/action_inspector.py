"""The action-distribution inspector: a filmed evaluation episode replayed, and at any of its frames the student's
and the teacher's categorical over the K bins of every action dimension, with the per-dimension divergences.

What it shows is what the objectives see: reverse KL(student || teacher) is what `reverse_kl` minimises
(mode-seeking: the student may drop teacher modes but must not put mass where the teacher has none), forward
KL(teacher || student) what `forward_kl` minimises (mode-covering), and the teacher's argmax the only thing
`hard_ce` keeps of the teacher.

Replay. The evaluation (opd_core.evaluate) films init state 0 of some tasks inside one batch of every (task, init
state) episode, all sampling from one generator seeded with the run's seed. At temperature 0 an episode does not
depend on the others, so it is replayed alone (`BATCH_SOLO`); at temperature > 0 the draws do, so the whole
evaluation batch is replayed (`BATCH_EVALUATION`) with the same generator. Either way the replay runs through
`rollout.collect`, the loop the evaluation itself uses, so the two cannot drift apart.

Frames. Frame t of a video is the observation after t environment steps; frames 0..length-1 are followed by an
action, the last one is the outcome. A policy emitting chunks of C actions is queried at frames 0, C, 2C, ... and
the action taken at frame t is position t mod C of the chunk decided at frame C * (t // C): that query's
distributions are the ones shown for frame t.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from opd_core import objectives
from opd_core.envs.base import Observation
from opd_core.errors import OpdError, TokenizerMismatchError
from opd_core.labeling import label_states
from opd_core.policies.base import Policy
from opd_core.registry import make_env
from opd_core.rollout import collect

DIMENSION_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
"""The 7 action dimensions (end-effector delta position, delta rotation, gripper), in the tokenizer's order."""
BATCH_SOLO = "solo"
BATCH_EVALUATION = "evaluation"


class InspectionError(OpdError):
    """The episode, frame or policy pair cannot be inspected; the message says why."""


@dataclass
class ReplayedEpisode:
    """One filmed evaluation episode, re-simulated: what the policy saw and did at every query."""

    task: str
    init_id: int
    temperature: float
    seed: int
    batch: str
    """BATCH_SOLO (the episode alone) or BATCH_EVALUATION (inside the evaluation's whole batch)."""
    batch_size: int
    """Episodes simulated together in the replay."""
    frames: list[np.ndarray]
    """What the video shows: length + 1 frames (uint8 [H, W, 3])."""
    success: bool
    length: int
    """Environment steps taken (the frames followed by an action)."""
    queries: Observation
    """The observations the policy was queried on, in order [Q]."""
    bins: torch.Tensor
    """The bins the policy chose at each query [Q, chunk * D] (long)."""
    student_logits: torch.Tensor
    """The policy's logits at temperature 1 at each query [Q, chunk * D, K]; an autoregressive policy's are
    teacher-forced on its own chosen bins (what `Policy.sample` returns, and what training uses)."""
    chunk_size: int
    action_dim: int

    def query_of(self, frame: int) -> tuple[int, int]:
        """(query index, position in its action chunk) of the action taken at `frame`."""
        if not 0 <= frame < self.length:
            raise InspectionError(
                f"frame {frame} is out of range: the episode took actions at frames "
                f"0..{self.length - 1} (frame {self.length} is its outcome)"
            )
        return frame // self.chunk_size, frame % self.chunk_size


@dataclass
class ActionDistributions:
    """Student and teacher distributions over the bins of every action dimension at one frame."""

    frame: int
    query_frame: int
    """The frame the policy was queried at (== frame for policies that emit one action per query)."""
    dimensions: tuple[str, ...]
    student_probs: np.ndarray
    """softmax of the student's logits [D, K]."""
    teacher_probs: np.ndarray
    """softmax of the teacher's logits [D, K], teacher-forced on the student's chosen bins."""
    chosen_bins: np.ndarray
    """The bin the student took [D]."""
    student_argmax: np.ndarray
    teacher_argmax: np.ndarray
    """The bin `hard_ce` would train towards [D]."""
    reverse_kl: np.ndarray
    """KL(student || teacher) per dimension, nats [D]."""
    forward_kl: np.ndarray
    """KL(teacher || student) per dimension, nats [D]."""
    student_entropy: np.ndarray
    teacher_entropy: np.ndarray
    bin_values: np.ndarray
    """The action value of each bin's centre, in the environment's units [D, K]."""

    def rows(self) -> list[dict]:
        """One dict per dimension: the numbers of the table under the charts."""
        return [
            {
                "dimension": name,
                "chosen bin": int(self.chosen_bins[d]),
                "chosen value": float(self.bin_values[d, self.chosen_bins[d]]),
                "student argmax": int(self.student_argmax[d]),
                "teacher argmax": int(self.teacher_argmax[d]),
                "p_student(chosen)": float(self.student_probs[d, self.chosen_bins[d]]),
                "p_teacher(chosen)": float(self.teacher_probs[d, self.chosen_bins[d]]),
                "reverse KL": float(self.reverse_kl[d]),
                "forward KL": float(self.forward_kl[d]),
                "student entropy": float(self.student_entropy[d]),
                "teacher entropy": float(self.teacher_entropy[d]),
            }
            for d, name in enumerate(self.dimensions)
        ]


# ============================================================================================ replay
def evaluation_episodes(seen: list[str], unseen: list[str], init_states: int) -> list[tuple[str, int]]:
    """The (task, init state) episodes of one evaluation, in the order opd_core.evaluate batches them."""
    tasks = list(dict.fromkeys([*seen, *unseen]))
    return [(task, i) for task in tasks for i in range(init_states)]


@torch.no_grad()
def replay_episode(
    policy: Policy,
    env_name: str,
    episodes: list[tuple[str, int]],
    index: int,
    *,
    temperature: float,
    seed: int,
    image_size: int,
    max_episode_steps: int = 0,
    batch: str = BATCH_SOLO,
) -> ReplayedEpisode:
    """Re-simulate `episodes` together as one evaluation batch does (one generator seeded with `seed`) and keep
    episode `index`: its frames and, at each query, the observation, the chosen bins and the logits."""
    if not 0 <= index < len(episodes):
        raise InspectionError(f"episode index {index} is not in a batch of {len(episodes)}")
    env = make_env(env_name, len(episodes), image_size=image_size, max_episode_steps=max_episode_steps)
    was_training = policy.training
    policy.eval()
    try:
        generator = torch.Generator().manual_seed(seed)
        rollout = collect(
            policy,
            env,
            [t for t, _ in episodes],
            [i for _, i in episodes],
            temperature,
            generator,
            film={index},
            keep_states=True,
        )
    finally:
        policy.train(was_training)
        env.close()
    mine = np.nonzero(rollout.trajectory == index)[0]
    task, init_id = episodes[index]
    return ReplayedEpisode(
        task,
        init_id,
        temperature,
        seed,
        batch,
        len(episodes),
        rollout.frames[index],
        bool(rollout.success[index]),
        int(rollout.lengths[index]),
        rollout.obs.take(mine),
        rollout.actions[mine],
        rollout.student_logits[mine],
        policy.chunk_size,
        policy.tokenizer.dim,
    )


def replay_evaluation_episode(
    policy: Policy,
    env_name: str,
    seen: list[str],
    unseen: list[str],
    task: str,
    *,
    init_states: int,
    temperature: float,
    seed: int,
    image_size: int,
    max_episode_steps: int = 0,
    batch: str | None = None,
) -> ReplayedEpisode:
    """The episode an evaluation filmed for `task` (init state 0), replayed alone at temperature 0 and inside the
    whole evaluation batch otherwise (`batch` forces either)."""
    episodes = evaluation_episodes(seen, unseen, max(1, init_states))
    if (task, 0) not in episodes:
        evaluated = ", ".join(dict.fromkeys([*seen, *unseen]))
        raise InspectionError(f"task {task!r} is not among the evaluated tasks ({evaluated})")
    batch = batch or (BATCH_SOLO if temperature == 0 else BATCH_EVALUATION)
    if batch == BATCH_SOLO:
        return replay_episode(
            policy,
            env_name,
            [(task, 0)],
            0,
            temperature=temperature,
            seed=seed,
            image_size=image_size,
            max_episode_steps=max_episode_steps,
            batch=BATCH_SOLO,
        )
    if batch != BATCH_EVALUATION:
        raise InspectionError(f"unknown replay batch {batch!r}; expected {BATCH_SOLO} or {BATCH_EVALUATION}")
    return replay_episode(
        policy,
        env_name,
        episodes,
        episodes.index((task, 0)),
        temperature=temperature,
        seed=seed,
        image_size=image_size,
        max_episode_steps=max_episode_steps,
        batch=BATCH_EVALUATION,
    )


# ============================================================================================ distributions
def check_pair(student: Policy, teacher: Policy) -> None:
    """Refuse a teacher whose action tokens cannot be compared with the student's (bins, ranges, chunks)."""
    try:
        student.tokenizer.check_compatible(teacher.tokenizer, "teacher")
    except TokenizerMismatchError as exc:
        raise InspectionError(str(exc)) from exc
    if teacher.chunk_size != student.chunk_size:
        raise InspectionError(
            f"the teacher emits {teacher.chunk_size} actions per query, the student "
            f"{student.chunk_size}: their token distributions cannot be compared"
        )


@torch.no_grad()
def teacher_logits_at(episode: ReplayedEpisode, teacher: Policy, query: int) -> torch.Tensor:
    """The teacher's logits [chunk * D, K] at one query of the episode, teacher-forced on the student's bins
    there (as Phase 2 labelling, `label_states`, scores every visited state). One state per forward pass, so that
    the numbers shown are exactly the teacher's at that observation (batched float32 kernels differ in the last
    bits)."""
    was_training = teacher.training
    teacher.eval()
    try:
        return label_states(teacher, episode.queries.take(np.array([query])), episode.bins[query : query + 1], 1)[
            0
        ].cpu()
    finally:
        teacher.train(was_training)


def frame_distributions(
    episode: ReplayedEpisode, teacher_logits: torch.Tensor, frame: int, bin_values: np.ndarray | None = None
) -> ActionDistributions:
    """Distributions and divergences of the action taken at `frame`, from the replay and the teacher's logits at
    that frame's query (`teacher_logits_at(episode, teacher, episode.query_of(frame)[0])`).

    `bin_values` [D, K]: the action value of each bin (the student tokenizer's, see `bin_values`); bin indices
    when omitted."""
    query, offset = episode.query_of(frame)
    dims = slice(offset * episode.action_dim, (offset + 1) * episode.action_dim)
    student = episode.student_logits[query, dims].double()[None]  # [1, D, K]
    teacher = teacher_logits[dims].double()[None]
    chosen = episode.bins[query, dims]
    per_dim = range(episode.action_dim)
    num_bins = student.shape[-1]
    return ActionDistributions(
        frame=frame,
        query_frame=query * episode.chunk_size,
        dimensions=tuple(DIMENSION_NAMES[d] if d < len(DIMENSION_NAMES) else f"a{d}" for d in per_dim),
        student_probs=torch.softmax(student[0], -1).numpy(),
        teacher_probs=torch.softmax(teacher[0], -1).numpy(),
        chosen_bins=chosen.numpy().astype(np.int64),
        student_argmax=student[0].argmax(-1).numpy(),
        teacher_argmax=teacher[0].argmax(-1).numpy(),
        reverse_kl=np.array(
            [objectives.reverse_kl_exact(student[:, d : d + 1], teacher[:, d : d + 1]).item() for d in per_dim]
        ),
        forward_kl=np.array(
            [objectives.forward_kl(student[:, d : d + 1], teacher[:, d : d + 1]).item() for d in per_dim]
        ),
        student_entropy=objectives.entropy(student)[0].numpy(),
        teacher_entropy=objectives.entropy(teacher)[0].numpy(),
        bin_values=bin_values
        if bin_values is not None
        else np.tile(np.arange(num_bins, dtype=np.float64), (episode.action_dim, 1)),
    )


def bin_values(policy: Policy) -> np.ndarray:
    """The action value of every bin's centre per dimension [D, K], in the environment's units."""
    tokenizer = policy.tokenizer
    centres = tokenizer.bin_centers()
    return tokenizer.unnormalize(np.repeat(centres[:, None], tokenizer.dim, axis=1)).T


def inspect_frame(student: Policy, teacher: Policy, episode: ReplayedEpisode, frame: int) -> ActionDistributions:
    """Everything at once for one frame (the dashboard caches the replay and the teacher logits per query)."""
    check_pair(student, teacher)
    query, _ = episode.query_of(frame)
    return frame_distributions(episode, teacher_logits_at(episode, teacher, query), frame, bin_values(student))
