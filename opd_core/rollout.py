"""Phase 1: the student acts in the simulator, on-policy, and every visited state is kept.

B instructions x G trajectories run as one vectorized batch. Each step the policy is queried only for the
episodes still running; an episode ends at success or at the suite's step limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from opd_core.envs.base import Observation, VectorEnv
from opd_core.policies.base import Policy


@dataclass
class Rollout:
    obs: Observation
    """Every visited state, flattened over trajectories and time [S]."""
    actions: torch.Tensor
    """Sampled bins [S, D] (long)."""
    behaviour_logp: torch.Tensor
    """log-prob of the sampled bins under the sampling distribution [S, D]."""
    student_logits: torch.Tensor
    """The student's logits (temperature 1) at acting time [S, D, K], for entropy and KL diagnostics."""
    trajectory: np.ndarray
    """Trajectory index of each state [S]."""
    success: np.ndarray
    """Per trajectory [num_traj] bool."""
    lengths: np.ndarray
    """Steps taken per trajectory."""
    tasks: list[str]
    frames: dict[int, list[np.ndarray]] = field(default_factory=dict)
    """Trajectory index -> rendered frames, for the trajectories asked to be filmed."""

    @property
    def env_steps(self) -> int:
        return int(self.lengths.sum())


@torch.no_grad()
def collect(
    policy: Policy,
    env: VectorEnv,
    tasks: list[str],
    init_ids: list[int],
    temperature: float,
    generator: torch.Generator | list[torch.Generator] | None = None,
    film: set[int] = frozenset(),
    keep_states: bool = True,
    active: int | None = None,
    shards: int = 1,
) -> Rollout:
    """Run one episode per environment (tasks[i] from init_ids[i]) with the policy sampling at `temperature`.

    `generator`: one for the whole batch, or a list with one per episode (each episode's draws then do not depend
    on the other episodes in the batch). `active`: only the first `active` episodes run (the rest pad an environment
    of fixed size). An episode ends at success, at the step limit, or when the simulator lost it (`env.failed`).
    `shards`: the policy is queried shard by shard (contiguous blocks of episodes), as the ranks of a run with that
    many ranks query it (a forward pass's float rounding can depend on its batch size)."""
    n = len(tasks)
    obs = env.reset(tasks, init_ids)
    running = np.arange(n) < (n if active is None else active)
    success = np.zeros(n, dtype=bool)
    lengths = np.zeros(n, dtype=np.int64)
    frames = {i: [obs.frame(i)] for i in film}
    kept: dict[str, list] = {"obs": [], "actions": [], "logp": [], "logits": [], "traj": []}
    while running.any():
        queried = np.nonzero(running)[0]
        current = obs.take(queried)
        rows = [generator[i] for i in queried] if isinstance(generator, list) else generator
        bins, logp, logits = _sample_by_shard(policy, current, queried // -(-n // shards), temperature, rows)
        if keep_states:
            kept["obs"].append(current)
            kept["actions"].append(bins.cpu())
            kept["logp"].append(logp.cpu())
            kept["logits"].append(logits.cpu())
            kept["traj"].append(queried)
        chunk = policy.tokenizer.decode(bins.view(len(queried), -1, policy.tokenizer.dim).cpu().numpy())
        for step_actions in chunk.transpose(1, 0, 2):  # an action chunk runs open loop, step by step
            still = running[queried]
            actions = np.zeros((n, policy.tokenizer.dim))
            actions[queried[still]] = step_actions[still]
            obs, step_success = env.step(actions)
            lengths[running] += 1
            success[running] |= step_success[running]
            for i in film:
                if running[i]:
                    frames[i].append(obs.frame(i))
            running &= ~step_success & ~env.failed & (lengths < env.max_episode_steps)
            if not running[queried].any():
                break
    return _assemble(kept, success, lengths, tasks, frames, keep_states)


def _sample_by_shard(
    policy: Policy,
    obs: Observation,
    shard: np.ndarray,
    temperature: float,
    generator: torch.Generator | list[torch.Generator] | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`policy.sample` on each shard's rows of `obs` in turn (`shard`: each row's shard), joined in row order."""
    if len(np.unique(shard)) <= 1:
        return policy.sample(obs, temperature, generator)
    parts = []
    for k in np.unique(shard):
        rows = np.nonzero(shard == k)[0]
        rows_generator = [generator[i] for i in rows] if isinstance(generator, list) else generator
        parts.append(policy.sample(obs.take(rows), temperature, rows_generator))
    return tuple(torch.cat(column) for column in zip(*parts))


def _assemble(kept, success, lengths, tasks, frames, keep_states) -> Rollout:
    if not keep_states or not kept["obs"]:
        empty = Observation(np.zeros((0, 1, 1, 3), np.uint8), np.zeros((0, 5), np.float32), [])
        return Rollout(
            empty,
            torch.zeros(0, 0, dtype=torch.long),
            torch.zeros(0, 0),
            torch.zeros(0, 0, 0),
            np.zeros(0, np.int64),
            success,
            lengths,
            list(tasks),
            frames,
        )
    states = [o.state for o in kept["obs"]]  # kept so that a scripted teacher can label every visited state
    obs = Observation(
        np.concatenate([o.image for o in kept["obs"]]),
        np.concatenate([o.proprio for o in kept["obs"]]),
        [text for o in kept["obs"] for text in o.instructions],
        None if any(s is None for s in states) else np.concatenate(states),
    )
    return Rollout(
        obs,
        torch.cat(kept["actions"]),
        torch.cat(kept["logp"]),
        torch.cat(kept["logits"]),
        np.concatenate(kept["traj"]),
        success,
        lengths,
        list(tasks),
        frames,
    )
