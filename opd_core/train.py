"""The training loop (paper Algorithm 1) and its pipelines: sft, opd, grpo, opd_then_grpo.

One flat loop per pipeline family. For the on-policy pipelines every step is:
  Phase 1  rollout: B instructions x G trajectories sampled by the student
  Phase 2  label:   the frozen teacher's logits on every visited state (distillation phases only)
  Phase 3  update:  `updates_per_step` passes of minibatch gradient steps on the chosen objective
and, every `eval_every` steps, an evaluation of seen and unseen tasks on fixed initial states (with videos) and a
checkpoint. Metrics go to a `MetricsSink`; the loop knows nothing of where they end up.

A run with several ranks (`nproc_per_node`, `nnodes`) runs this loop on every rank; the loop sees them only as a
`World` (opd_core.distributed): each rank rolls out and labels its share of whole groups, the update's global
minibatches are split by owner and the gradients summed, metrics are reduced, and rank 0 alone writes.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError

from opd_core import objectives
from opd_core.checkpoint import (
    load_policy,
    load_training_state,
    optimizer_state,
    restore_rng,
    rng_state,
    run_checkpoints,
    save_checkpoint,
    verify_checkpoint,
)
from opd_core.config import ConfigError, RunConfig
from opd_core.data import DemoSet, load_demos
from opd_core.data_parallel import Replica, data_parallel
from opd_core.envs.base import VectorEnv
from opd_core.errors import CheckpointError, CheckpointSkippedWarning, DivergenceError
from opd_core.eval_result import EvalResult, mean_success
from opd_core.evaluate import evaluate
from opd_core.labeling import label_states
from opd_core.policies.base import Policy
from opd_core.registry import LAUNCHERS, build_policy, env_spec, make_env, task_catalog
from opd_core.rollout import Rollout, collect
from opd_core.sinks import MetricsSink
from opd_core.tokenizer import ActionTokenizer
from opd_core.world import SINGLE, World, merge_eval_details, shard_tasks, trajectory_generators

TRAIN_INIT_RANGE = (50, 1000)
"""Training rollouts start from initial states 50-999; evaluation uses 0-49 and demos 1000+."""


@dataclass
class TrainResult:
    status: str
    """finished | cancelled"""
    step: int
    out_dir: Path
    last_eval: dict = field(default_factory=dict)
    resumed_from: int | None = None
    """The checkpoint step a resumed run continued from (None: it started at step 0)."""


@dataclass
class RunState:
    config: RunConfig
    sink: MetricsSink
    out_dir: Path
    student: Policy
    optimizer: torch.optim.Optimizer
    seen: list[str]
    unseen: list[str]
    rng: np.random.Generator
    generator: torch.Generator
    teacher: Policy | None = None
    demos: DemoSet | None = None
    rollout_env: VectorEnv | None = None
    """The training rollouts' simulator, kept between steps (LIBERO: worker processes); closed by `train`."""
    rollout_env_key: tuple = ()
    step: int = 0
    """The training step in progress."""
    skipped_updates: int = 0
    """Updates dropped for a non-finite loss or gradient during the current step (on_nonfinite: skip)."""
    last_update: tuple[float, float] = (math.nan, math.nan)
    """(loss, grad norm) of the last applied update, for the divergence message."""
    env_steps: int = 0
    wall_offset: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    cpu_offset: float = 0.0
    cpu_started: float = field(default_factory=time.process_time)
    last_eval: dict = field(default_factory=dict)
    world: World = SINGLE
    """This process's rank in a multi-process run (SINGLE: the run is this one process)."""
    parallel: Replica | None = None
    """How the ranks share the student (DDP, FSDP2; one process: the student itself); set by `_setup`."""

    def wall_seconds(self) -> float:
        return self.wall_offset + time.perf_counter() - self.started

    def cpu_seconds(self) -> float:
        """CPU time of this process over the run's attempts (environment worker processes not included)."""
        return self.cpu_offset + time.process_time() - self.cpu_started

    def close_rollout_env(self) -> None:
        if self.rollout_env is not None:
            env, self.rollout_env, self.rollout_env_key = self.rollout_env, None, ()
            env.close()


# ============================================================================================ entry point
def train(
    config: RunConfig,
    sink: MetricsSink,
    *,
    stop_requested: Callable[[], bool] = lambda: False,
    resume: bool = False,
    progress_bar: bool = False,
    world: World | None = None,
) -> TrainResult:
    """Run `config` to completion (or until `stop_requested()` is true after a step) writing to `sink`.

    A config with more than one rank (nproc_per_node > 1) is launched over that many processes
    (the `local` entry of `opd_core.registry.LAUNCHERS`); `world` is given by the launcher to each of those ranks."""
    config.validate()
    if world is None:
        if config.world_size > 1:
            return LAUNCHERS.get("local")(config, sink, stop_requested=stop_requested, resume=resume)
        world = SINGLE
    state = _setup(config, sink, resume, world)
    try:
        return _loop(state, stop_requested, resume, progress_bar)
    finally:
        state.close_rollout_env()  # LIBERO keeps worker processes (GBs each) alive until closed


def _loop(state: RunState, stop_requested: Callable[[], bool], resume: bool, progress_bar: bool) -> TrainResult:
    config, sink = state.config, state.sink
    resumed_from = _resume(state) if resume else None
    start = resumed_from or 0
    total = config.total_steps
    bar = _progress(progress_bar and state.world.is_main, total, start, config.name)
    if start == 0:
        _evaluate_and_save(state, 0)
    status, step = "finished", start
    for step in range(start + 1, total + 1):
        step_started = time.perf_counter()
        state.step, state.skipped_updates = step, 0
        metrics = _sft_step(state) if config.pipeline == "sft" else _on_policy_step(state, _phase(config, step))
        if config.on_nonfinite == "skip":
            metrics["train/skipped_updates"] = float(state.skipped_updates)
        metrics["time/step_seconds"] = time.perf_counter() - step_started
        metrics["time/env_steps"] = float(state.env_steps)
        metrics["time/wall_seconds"] = state.wall_seconds()
        metrics["time/cpu_seconds"] = state.cpu_seconds()
        sink.log(metrics, step)
        sink.progress(step, total)
        if bar is not None:
            bar.update(1)
            bar.set_postfix({k.split("/")[-1]: f"{v:.3f}" for k, v in metrics.items() if k in _BAR_KEYS})
        cancel = state.world.any(stop_requested())  # rank 0 decides; every rank stops at this step
        if _due(step, config.eval_every, total):
            _evaluate_and_save(state, step)
        elif cancel or _due(step, config.save_every, total):
            _save(state, step)
        if cancel:
            status = "cancelled"
            break
    if bar is not None:
        bar.close()
    return TrainResult(status, step, state.out_dir, state.last_eval, resumed_from)


_BAR_KEYS = ("train/success", "train/entropy", "train/loss", "eval/seen_success")


def _phase(config: RunConfig, step: int) -> str:
    if config.pipeline == "grpo" or (config.pipeline == "opd_then_grpo" and step > config.steps):
        return "grpo"
    return "opd"


def _due(step: int, every: int, total: int) -> bool:
    return step == total or (every > 0 and step % every == 0)


def _progress(enabled: bool, total: int, start: int, name: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=start, desc=name, unit="step", dynamic_ncols=True)


# ============================================================================================ setup
def _setup(config: RunConfig, sink: MetricsSink, resume: bool, world: World = SINGLE) -> RunState:
    torch.manual_seed(config.seed)
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seen, unseen = _resolve_tasks(config)
    demos = _load_sft_demos(config, seen) if config.pipeline == "sft" else None
    student = _build_student(config, demos)
    student.train()
    parallel = data_parallel(student, world, config.data_parallel)  # every replica starts from rank 0's weights
    optimizer = torch.optim.AdamW(student.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    teacher = (
        _load_teacher(config, student.tokenizer, student.chunk_size)
        if config.pipeline in ("opd", "opd_then_grpo")
        else None
    )
    if world.is_main:
        config.save(out_dir / "config.yaml")
    return RunState(
        config,
        sink,
        out_dir,
        student,
        optimizer,
        seen,
        unseen,
        np.random.default_rng(config.seed),
        torch.Generator().manual_seed(config.seed),
        teacher,
        demos,
        world=world,
        parallel=parallel,
    )


def _resolve_tasks(config: RunConfig) -> tuple[list[str], list[str]]:
    catalog = task_catalog(config.env)
    try:
        seen = list(config.tasks) or catalog.suite_tasks(config.suite)
    except KeyError as exc:
        raise ConfigError("suite", str(exc).strip("'\"")) from exc
    for field_name, names in (("tasks", seen), ("unseen_tasks", config.unseen_tasks)):
        for task in names:
            try:
                catalog.instruction(task)
            except KeyError as exc:
                raise ConfigError(field_name, str(exc).strip("'\"")) from exc
    return seen, list(config.unseen_tasks)


def _load_sft_demos(config: RunConfig, seen: list[str]) -> DemoSet:
    return load_demos(config.demos, config.num_demos, seen)


def _default_tokenizer(config: RunConfig, demos: DemoSet | None) -> ActionTokenizer:
    native = env_spec(config.env).fresh_student_tokenizer
    if native is not None:
        return native()
    if demos is None:
        raise ConfigError("student_checkpoint", "a fresh student on this env needs demos to fit action statistics")
    return ActionTokenizer.fit(demos.actions)


def _build_student(config: RunConfig, demos: DemoSet | None) -> Policy:
    if config.student_checkpoint:
        student = _load_checkpoint_policy(config.student_checkpoint, config.device, "student", config)
        native = env_spec(config.env).fresh_student_tokenizer
        if native is not None and native().dim != student.tokenizer.dim:
            raise ConfigError(
                "student_checkpoint",
                f"the student acts in {student.tokenizer.dim}-D, the {config.env} env takes {native().dim}-D actions",
            )
        return student
    arch = {
        "width": config.policy_width,
        "hidden": config.policy_hidden,
        "input_size": config.policy_input_size,
        "proprio_dim": env_spec(config.env).proprio_dim,
    }
    return build_policy(config.policy, arch, _default_tokenizer(config, demos)).to(config.device)


def _load_checkpoint_policy(path: str, device: str, role: str, config: RunConfig) -> Policy:
    if not Path(path).exists():
        raise CheckpointError(f"{role} checkpoint not found: {path}")
    return load_policy(path, device, hf_settings=config.hf_settings())


def _load_teacher(config: RunConfig, student_tokenizer: ActionTokenizer, student_chunk: int) -> Policy:
    teacher = _load_checkpoint_policy(
        config.teacher_checkpoint, config.teacher_device or config.device, "teacher", config
    )
    student_tokenizer.check_compatible(teacher.tokenizer, "teacher")
    if teacher.chunk_size != student_chunk:
        raise CheckpointError(
            f"the teacher emits {teacher.chunk_size} actions per query, the student {student_chunk}: "
            "their token distributions cannot be compared"
        )
    teacher.eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher


def _resume(state: RunState) -> int | None:
    """Continue from the newest checkpoint that loads (a damaged one is skipped with a warning naming its file);
    returns its step, or None when the run has no checkpoint yet."""
    candidates = run_checkpoints(state.out_dir)
    if not candidates:
        return None
    failures = []
    for checkpoint in candidates:
        try:
            verify_checkpoint(checkpoint)
            state.parallel.load_weights(checkpoint)
            saved = load_training_state(checkpoint)
            state.parallel.load_optimizer_state(state.optimizer, optimizer_state(checkpoint))
            break
        except (CheckpointError, OSError, RuntimeError, ValueError, KeyError, SafetensorError) as exc:
            reason = str(exc) if isinstance(exc, CheckpointError) else f"{type(exc).__name__}: {exc}"
            failures.append(f"{checkpoint}: {reason}")
            warnings.warn(
                f"resume: skipping checkpoint {checkpoint}, it does not load ({reason})",
                CheckpointSkippedWarning,
                stacklevel=2,
            )
    else:
        raise CheckpointError(f"no checkpoint of {state.out_dir} loads: " + "; ".join(failures))
    restore_rng(saved.rng, state.rng)
    if "generator" in saved.extra:
        state.generator.set_state(torch.tensor(saved.extra["generator"], dtype=torch.uint8))
    ranks = saved.extra.get("rank_rng", [])
    if state.world.distributed and len(ranks) == state.world.size:  # every rank continues its own streams
        mine = ranks[state.world.rank]
        torch.set_rng_state(torch.tensor(mine["torch"], dtype=torch.uint8))
        state.generator.set_state(torch.tensor(mine["generator"], dtype=torch.uint8))
    state.env_steps = int(saved.extra.get("env_steps", 0))
    state.wall_offset = float(saved.extra.get("wall_seconds", 0.0))
    state.cpu_offset = float(saved.extra.get("cpu_seconds", 0.0))
    state.last_eval = saved.extra.get("eval", {})
    state.sink.resume_from(saved.step)
    return saved.step


# ============================================================================================ sft
def _sft_step(state: RunState) -> dict[str, float]:
    config, demos = state.config, state.demos
    index = state.rng.integers(0, len(demos), size=min(config.sft_batch_size, len(demos)))
    targets = torch.from_numpy(state.student.tokenizer.encode(demos.actions[index])).to(state.student.device)
    logits = state.student(demos.observations(index))
    loss = objectives.sft(logits, targets, label_sigma=config.sft_label_sigma)
    grad_norm, _ = _optimize(state, loss)
    with torch.no_grad():
        accuracy = (logits.argmax(-1) == targets).float().mean().item()
        entropy = objectives.entropy(logits).mean().item()
    return {
        "train/loss": loss.item(),
        "train/entropy": entropy,
        "train/bin_accuracy": accuracy,
        "train/grad_norm": grad_norm,
    }


def _optimize(state: RunState, loss: torch.Tensor) -> tuple[float, bool]:
    """One gradient step; returns (grad norm, whether the update was applied).

    A non-finite loss or gradient norm never reaches the weights: the run stops with `DivergenceError`
    (on_nonfinite: stop) or the update is dropped and counted (skip)."""
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    return _clip_and_step(state, loss.item())


def _clip_and_step(state: RunState, loss_value: float) -> tuple[float, bool]:
    """Clip the gradients in place and apply them (see `_optimize`); returns (grad norm, applied)."""
    max_norm = state.config.max_grad_norm if state.config.max_grad_norm > 0 else math.inf
    grad_norm = float(torch.nn.utils.clip_grad_norm_(state.student.parameters(), max_norm))
    if not (math.isfinite(loss_value) and math.isfinite(grad_norm)):
        if state.config.on_nonfinite == "stop":
            raise DivergenceError(state.step, loss_value, grad_norm, state.optimizer.param_groups[0]["lr"])
        state.optimizer.zero_grad(set_to_none=True)
        state.skipped_updates += 1
        return grad_norm, False
    state.optimizer.step()
    state.last_update = (loss_value, grad_norm)
    return grad_norm, True


# ============================================================================================ on-policy step
def _rollout_env(state: RunState, num_envs: int) -> VectorEnv:
    """The run's rollout simulator for `num_envs` episodes (rebuilt only when its size changes)."""
    config = state.config
    key = (config.env, num_envs, config.image_size, config.max_episode_steps)
    if state.rollout_env is None or state.rollout_env_key != key:
        state.close_rollout_env()
        state.rollout_env = make_env(config.env, num_envs, config.image_size, config.max_episode_steps)
        state.rollout_env_key = key
    return state.rollout_env


def _on_policy_step(state: RunState, phase: str) -> dict[str, float]:
    config, world = state.config, state.world
    # ---- Phase 1: B instructions x G on-policy trajectories (each rank its share of whole groups)
    t0 = time.perf_counter()
    tasks, init_ids = _sample_instructions(state)
    share = world.shard(len(tasks))
    tasks, init_ids = tasks[share], init_ids[share]
    generator = state.generator
    if config.trajectory_seeding:
        generator = trajectory_generators(config.seed, state.step, share.start, len(tasks))
    env = _rollout_env(state, len(tasks))
    shards = config.shards // world.size
    try:
        with state.parallel.full_parameters():
            rollout = collect(state.student, env, tasks, init_ids, config.temperature, generator, shards=shards)
    except FloatingPointError as exc:  # finite updates can still blow the logits up (a huge lr)
        raise DivergenceError(
            state.step,
            *state.last_update,
            state.optimizer.param_groups[0]["lr"],
            "the student's action logits are not finite in its rollout",
        ) from exc
    state.env_steps += int(world.sum([rollout.env_steps])[0])
    t1 = time.perf_counter()
    # ---- Phase 2: frozen teacher labels every visited state (distillation only)
    teacher_logits = None
    if state.teacher is not None and phase == "opd":
        teacher_logits = label_states(
            state.teacher,
            rollout.obs,
            rollout.actions,
            config.label_batch_size,
            state.student.device,
            parts=_shard_states(rollout, shards),
        )
    t2 = time.perf_counter()
    # ---- Phase 3: policy update
    if phase == "opd":
        loss, grad_norm, used = _update(state, rollout, _distillation_objective(config, rollout, teacher_logits))
    else:
        loss, grad_norm, used = _update(state, rollout, _grpo_objective(config, rollout))
    t3 = time.perf_counter()
    return {
        **_rollout_metrics(rollout, teacher_logits, state.student.tokenizer.dim, world),
        "train/loss": loss,
        "train/grad_norm": grad_norm,
        "train/updated_state_fraction": used,
        "train/phase_grpo": float(phase == "grpo"),
        "time/rollout_seconds": t1 - t0,
        "time/label_seconds": t2 - t1,
        "time/update_seconds": t3 - t2,
    }


def _sample_instructions(state: RunState) -> tuple[list[str], list[int]]:
    config = state.config
    replace = config.batch_tasks > len(state.seen)
    chosen = state.rng.choice(len(state.seen), size=config.batch_tasks, replace=replace)
    init_ids = state.rng.integers(*TRAIN_INIT_RANGE, size=config.batch_tasks)
    tasks = [state.seen[i] for i in chosen for _ in range(config.group_size)]
    return tasks, [int(i) for i in init_ids for _ in range(config.group_size)]


LossFn = Callable[[torch.Tensor, np.ndarray], torch.Tensor]


@dataclass
class UpdateObjective:
    """What Phase 3 minimises: `loss(student_logits, index)` on the rollout states `index`, over `states`."""

    loss: LossFn
    states: np.ndarray
    """Indices of the rollout states that carry a gradient (the update shuffles and batches only these)."""


def _distillation_objective(config: RunConfig, rollout: Rollout, teacher_logits: torch.Tensor) -> UpdateObjective:
    def loss_fn(student_logits: torch.Tensor, index: np.ndarray) -> torch.Tensor:
        return objectives.distillation_loss(
            config.objective,
            student_logits,
            rollout.actions[index].to(student_logits.device),
            teacher_logits[index],
            rollout.behaviour_logp[index].to(student_logits.device),
            clip_eps=config.clip_eps,
        )

    return UpdateObjective(loss_fn, np.arange(len(rollout.obs)))


def _grpo_objective(config: RunConfig, rollout: Rollout) -> UpdateObjective:
    success = torch.from_numpy(rollout.success.astype(np.float32)).view(-1, config.group_size)
    per_trajectory = objectives.group_advantages(success).reshape(-1)
    advantages = per_trajectory[torch.from_numpy(rollout.trajectory)]

    def loss_fn(student_logits: torch.Tensor, index: np.ndarray) -> torch.Tensor:
        device = student_logits.device
        return objectives.grpo(
            student_logits,
            rollout.actions[index].to(device),
            rollout.behaviour_logp[index].to(device),
            advantages[index].to(device),
            clip_eps=config.clip_eps,
        )

    # states of all-success or all-failure groups have zero advantage: they carry no gradient
    return UpdateObjective(loss_fn, np.nonzero((advantages != 0).numpy())[0])


def _update(state: RunState, rollout: Rollout, objective: UpdateObjective) -> tuple[float, float, float]:
    """`updates_per_step` shuffled passes of minibatch steps; returns mean loss, mean grad norm, share of states
    used.

    The minibatches are drawn over the global state order (query round, then global trajectory index), the same
    whatever the number of ranks; each is computed shard by shard (`batch_shards`), every shard's states in the
    order its rank holds them, each shard's loss its share of the minibatch mean. A 1-rank run with as many shards
    as a multi-rank run has ranks thus makes the same forward passes and adds the same gradients."""
    config = state.config
    shard, local, carries = _global_states(state.world, rollout, objective.states, config.shards)
    states = np.nonzero(carries)[0]
    if len(states) == 0:
        return 0.0, 0.0, 0.0
    per_rank = config.shards // state.world.size
    mine = range(state.world.rank * per_rank, (state.world.rank + 1) * per_rank)
    losses, norms = [], []
    for _ in range(config.updates_per_step):
        order = state.rng.permutation(states)
        for start in range(0, len(order), config.minibatch_size):
            index = order[start : start + config.minibatch_size]
            parts = [local[index[shard[index] == k]] for k in mine]
            loss_value = _accumulated_backward(state, rollout, objective, parts, len(index))
            grad_norm, applied = _clip_and_step(state, loss_value)
            if applied:  # a skipped (non-finite) update is counted in train/skipped_updates, not averaged in
                norms.append(grad_norm)
                losses.append(loss_value)
    return _mean(losses), _mean(norms), len(states) / len(shard)


def _shard_states(rollout: Rollout, shards: int) -> list[np.ndarray]:
    """This rank's rollout states by shard (contiguous blocks of its trajectories), each in rollout order."""
    per_shard = len(rollout.tasks) // shards
    return [np.nonzero(rollout.trajectory // per_shard == k)[0] for k in range(shards)]


def _global_states(
    world: World, rollout: Rollout, states: np.ndarray, shards: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Over the global state order: the shard that holds each state, its index on its rank, whether it carries
    gradient."""
    trajectory = rollout.trajectory
    by_trajectory = np.argsort(trajectory, kind="stable")
    first = np.searchsorted(trajectory[by_trajectory], trajectory[by_trajectory], side="left")
    query_round = np.empty(len(trajectory), np.int64)
    query_round[by_trajectory] = np.arange(len(trajectory)) - first  # the k-th state of a trajectory: round k
    carries = np.zeros(len(trajectory), bool)
    carries[states] = True
    offset = world.shard(len(rollout.tasks) * world.size).start
    parts = world.gather((query_round, trajectory + offset, carries))
    rounds, trajectories, carried = (np.concatenate(column) for column in zip(*parts))
    locals_ = np.concatenate([np.arange(len(p[0])) for p in parts])
    order = np.lexsort((trajectories, rounds))
    per_shard = len(rollout.tasks) * world.size // shards
    return trajectories[order] // per_shard, locals_[order], carried[order]


def _accumulated_backward(
    state: RunState, rollout: Rollout, objective: UpdateObjective, parts: list[np.ndarray], total: int
) -> float:
    """Backward of this rank's shards of a global minibatch of `total` states, one micro-batch per shard, the
    gradients accumulated locally and summed over ranks by the data-parallel engine on the last one; returns the
    global minibatch loss.

    DDP and FSDP2 average over ranks, so each loss is scaled by the world size too (a power of two scales floats
    exactly: a 2-rank run's averaged gradient is, bit for bit, the 1-rank run's accumulated one). A rank with no
    state in its last shard still joins that synced backward, with one state at weight 0."""
    world, parallel = state.world, state.parallel
    state.optimizer.zero_grad(set_to_none=True)
    partial = 0.0
    for position, mine in enumerate(parts):
        synced = position == len(parts) - 1
        if len(mine) == 0 and not (synced and world.distributed):
            continue
        rows = mine if len(mine) else np.zeros(1, np.int64)
        weight = len(mine) / total
        with parallel.gradient_sync(synced):
            loss = objective.loss(parallel.train_module(rollout.obs.take(rows), rollout.actions[rows]), rows)
            (loss * (weight * world.size)).backward()
        partial += loss.item() * weight
    return world.sum([partial])[0]


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _rollout_metrics(
    rollout: Rollout, teacher_logits: torch.Tensor | None, action_dim: int, world: World = SINGLE
) -> dict[str, float]:
    """Over every rank's trajectories (success, length) and visited states (entropy, KL, ...)."""
    stats = objectives.distribution_stats(rollout.student_logits, teacher_logits, action_dim=action_dim)
    metrics = world.weighted_mean(
        {"train/success": float(rollout.success.mean()), "train/episode_length": float(rollout.lengths.mean())},
        len(rollout.success),
    )
    metrics.update(world.weighted_mean({f"train/{key}": value for key, value in stats.items()}, len(rollout.obs)))
    return metrics


# ============================================================================================ eval + checkpoints
def _evaluate_and_save(state: RunState, step: int) -> None:
    config = state.config
    if config.eval_init_states > 0 and (config.eval_every > 0 or step == config.total_steps):
        result = _run_eval(state, step)
        state.sink.log(result.metrics(), step)
        for video in result.videos:
            state.sink.log_video(step, video["task"], video["success"], video["path"])
        state.last_eval = result.summary()
    _save(state, step)


def _run_eval(state: RunState, step: int) -> EvalResult:
    config = state.config
    video_tasks = state.seen[: config.videos_per_eval] + (state.unseen[:1] if config.videos_per_eval else [])
    if env_spec(config.env).release_rollout_envs_before_eval:
        state.close_rollout_env()  # the evaluation builds its own simulators: never hold two sets (LIBERO: GBs each)
    with state.parallel.full_parameters():
        if state.world.distributed:
            return _run_eval_sharded(state, step, video_tasks)
        return _evaluate_here(state, step, video_tasks)


def _evaluate_here(state: RunState, step: int, video_tasks: list[str]) -> EvalResult:
    config = state.config
    return evaluate(
        state.student,
        config.env,
        state.seen,
        state.unseen,
        init_states=config.eval_init_states,
        temperature=config.eval_temperature,
        image_size=config.image_size,
        max_episode_steps=config.max_episode_steps,
        video_tasks=video_tasks,
        video_dir=state.out_dir / "videos" / f"step_{step}",
        run_dir=state.out_dir,
        seed=config.seed,
    )


def _run_eval_sharded(state: RunState, step: int, video_tasks: list[str]) -> EvalResult:
    """Each rank evaluates its share of the tasks (rank 0 those filmed); the results are gathered on every rank."""
    config, world = state.config, state.world
    tasks = list(dict.fromkeys([*state.seen, *state.unseen]))
    mine = shard_tasks(tasks, video_tasks, world.size)[world.rank]
    part = None
    if mine:
        result = evaluate(
            state.student,
            config.env,
            [t for t in state.seen if t in mine],
            [t for t in state.unseen if t in mine],
            init_states=config.eval_init_states,
            temperature=config.eval_temperature,
            image_size=config.image_size,
            max_episode_steps=config.max_episode_steps,
            video_tasks=[t for t in video_tasks if t in mine] if world.is_main else [],
            video_dir=state.out_dir / "videos" / f"step_{step}",
            run_dir=state.out_dir,
            seed=config.seed,
        )
        part = (result.per_task, result.videos, result.details)
    parts = [p for p in world.gather(part) if p is not None]
    per_task = {task: value for p in parts for task, value in p[0].items()}
    per_task = {task: per_task[task] for task in tasks}
    videos = [video for p in parts for video in p[1]]
    unseen = mean_success(per_task, state.unseen) if state.unseen else None
    return EvalResult(
        per_task, mean_success(per_task, state.seen), unseen, videos, merge_eval_details([p[2] for p in parts])
    )


def _save(state: RunState, step: int) -> None:
    path = state.out_dir / "checkpoints" / f"step_{step}"
    extra = {
        "env_steps": state.env_steps,
        "wall_seconds": state.wall_seconds(),
        "cpu_seconds": state.cpu_seconds(),
        "eval": state.last_eval,
        "generator": state.generator.get_state().tolist(),
    }
    if state.world.distributed:  # every rank's streams, each restored by its own rank on resume
        extra["rank_rng"] = state.world.gather(
            {"torch": torch.get_rng_state().tolist(), "generator": state.generator.get_state().tolist()}
        )
    optimizer = state.parallel.optimizer_state(state.optimizer)  # FSDP2: every rank takes part in gathering
    student = state.parallel.checkpoint_module()  # these two
    if not state.world.is_main:
        return
    save_checkpoint(
        path,
        student,
        step=step,
        run_config=state.config.to_dict(),
        optimizer=optimizer,
        rng=rng_state(state.rng),
        extra=extra,
    )
    state.sink.log_checkpoint(step, str(path.relative_to(state.out_dir)), state.last_eval)
