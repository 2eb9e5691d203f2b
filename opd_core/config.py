"""The typed run configuration: one flat dataclass, a docstring per field, YAML in and out.

Every pipeline (sft, opd, grpo, opd_then_grpo) is driven by a `RunConfig`. Validation names the field that is
wrong so that a bad config is refused before any work starts (in the CLI, the worker and the dashboard alike).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from opd_core import registry

PIPELINES = ("sft", "opd", "grpo", "opd_then_grpo")
OBJECTIVES = registry.OBJECTIVES.names()
ENVS = registry.ENVS.names()
POLICY_KINDS = registry.POLICIES.names()
HF_DECODINGS = ("autoregressive", "parallel")
HF_DTYPES = ("auto", "float32", "bfloat16", "float16")
ON_NONFINITE = ("stop", "skip")
DATA_PARALLEL = ("ddp", "fsdp")
OPENVLA_PROMPT = "In: What action should the robot take to {instruction}?\nOut:"


class ConfigError(ValueError):
    """A config value is invalid; the message names the field."""

    def __init__(self, field_name: str, message: str):
        self.field = field_name
        self.reason = message
        super().__init__(f"config field '{field_name}': {message}")

    def __reduce__(self):  # picklable, so it crosses process boundaries (study jobs, Celery results)
        return ConfigError, (self.field, self.reason)


@dataclass
class RunConfig:
    # --- what to run ---
    name: str = "run"
    """Human-readable run name (used for folder names and in the dashboard)."""
    pipeline: str = "opd"
    """One of sft | opd | grpo | opd_then_grpo."""
    objective: str = "reverse_kl"
    """Distillation objective for opd pipelines: reverse_kl | reverse_kl_exact | forward_kl | hard_ce."""
    seed: int = 0
    """Seed for torch, numpy and the simulator's training initial states."""

    # --- environment ---
    env: str = "tabletop"
    """Simulator: tabletop (built in) or libero (optional extra)."""
    suite: str = "object"
    """Task suite: spatial | object | goal | long | pretrain (tabletop), or a LIBERO suite name."""
    tasks: list[str] = field(default_factory=list)
    """Task names to train on (the seen tasks); empty means every task of the suite."""
    unseen_tasks: list[str] = field(default_factory=list)
    """Held-out task names evaluated for the forgetting study (never trained on); may be empty."""
    max_episode_steps: int = 0
    """Episode step limit; 0 uses the suite's default."""
    image_size: int = 64
    """Side of the square agent-view render, in pixels."""

    # --- policies ---
    policy: str = "small_vla"
    """Student architecture when no student checkpoint is given: small_vla | transformers."""
    policy_width: int = 16
    """Small VLA: channels of the first conv layer (later layers double it)."""
    policy_hidden: int = 256
    """Small VLA: width of the fused trunk before the action head."""
    policy_input_size: int = 32
    """Small VLA: the image is resized to this side before the encoder (speed on the CPU)."""
    student_checkpoint: str = ""
    """Checkpoint directory to initialise the student from (empty: random init, only sensible for sft)."""
    teacher_checkpoint: str = ""
    """Frozen teacher checkpoint directory (required by opd pipelines)."""
    device: str = "cpu"
    """Torch device of the student, e.g. cpu or cuda."""
    teacher_device: str = ""
    """Torch device of the teacher; empty means the student's device."""

    # --- transformers checkpoints (student or teacher given as a model directory, e.g. OpenVLA) ---
    hf_unnorm_key: str = ""
    """Which dataset's action statistics to use when the checkpoint holds several (OpenVLA's unnorm_key)."""
    hf_action_vocab_offset: int = 0
    """Padding ids after the 256 action ids at the end of the vocabulary (OpenVLA: 64)."""
    hf_chunk_size: int = 1
    """Actions of 7 dims emitted per query (OpenVLA-OFT action chunks)."""
    hf_decoding: str = "autoregressive"
    """autoregressive (OpenVLA) | parallel (OpenVLA-OFT style: all action tokens in one pass)."""
    hf_prompt_template: str = OPENVLA_PROMPT
    """Prompt with an {instruction} slot; stored conventions in the model directory take over when left default."""
    hf_dtype: str = "auto"
    """auto (bf16 on CUDA, fp32 on CPU) | float32 | bfloat16 | float16."""
    hf_trust_remote_code: bool = False
    """Allow modeling code shipped inside a checkpoint directory (OpenVLA needs it)."""
    hf_lora_rank: int = 0
    """>0: train LoRA adapters (rank r) on the language model instead of all weights."""
    hf_gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (large students)."""

    # --- data (sft) ---
    demos: str = ""
    """Folder of LIBERO-layout HDF5 demo files (one per task); sft pipelines train on it."""
    num_demos: int = 50
    """Demos per task taken from `demos` (1 makes the paper's 1-traj split)."""
    sft_label_sigma: float = 2.0
    """Gaussian smoothing of sft targets over neighbouring bins, in bins (0: plain one-hot cross-entropy)."""
    sft_batch_size: int = 256
    """Transitions per sft gradient step."""

    # --- optimisation ---
    steps: int = 30
    """Training steps (one step = one rollout batch and its updates; for sft one gradient step)."""
    grpo_steps: int = 0
    """opd_then_grpo: GRPO steps that follow the `steps` distillation steps."""
    batch_tasks: int = 8
    """B: instructions (task, initial state) sampled per step."""
    group_size: int = 8
    """G: trajectories sampled per instruction."""
    temperature: float = 1.0
    """Student sampling temperature during rollouts."""
    lr: float = 3e-4
    """AdamW learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip (0 disables)."""
    updates_per_step: int = 2
    """Passes over each rollout batch (PPO-style epochs; >1 uses the importance ratio)."""
    minibatch_size: int = 1024
    """States per gradient minibatch during the update phase."""
    clip_eps: float = 0.2
    """PPO ratio clip for sampled-token objectives (reverse_kl, grpo)."""
    label_batch_size: int = 1024
    """States per teacher forward pass during labeling."""
    on_nonfinite: str = "stop"
    """A non-finite loss or gradient norm: stop (fail the run at that step, naming the values, before the update is
    applied; the last checkpoint stays the newest) | skip (drop that update, count it per step in
    train/skipped_updates). Non-finite action logits in a rollout always stop the run."""

    # --- evaluation, checkpoints, videos ---
    eval_every: int = 10
    """Evaluate seen and unseen tasks every K steps (and at the start and the end); 0 disables."""
    eval_init_states: int = 10
    """Fixed initial states per task used by evaluation (the first N of the task's set)."""
    eval_temperature: float = 0.0
    """Sampling temperature at evaluation; 0 is greedy (argmax per dimension)."""
    videos_per_eval: int = 2
    """Tasks per evaluation that get a rollout video (first initial state); 0 disables videos."""
    save_every: int = 10
    """Write a checkpoint every K steps (and at the end)."""
    out_dir: str = "runs/run"
    """Folder that receives everything the run writes (checkpoints, videos, metrics)."""
    max_attempts: int = 1
    """Attempts a lab run gets in all: a run that crashed (its worker was killed or lost) resumes by itself
    from its newest checkpoint until it has used this many; 1 never resumes it automatically."""

    # --- processes (data-parallel on torch.distributed) ---
    nproc_per_node: int = 1
    """Ranks (processes, one GPU each on CUDA) per machine; >1 splits every step's B x G trajectories over them by
    whole groups, each rank with its own simulators and teacher replica, and all-reduces the student's gradients."""
    nnodes: int = 1
    """Machines the run spans (started with torchrun on each, c10d rendezvous); the worker runs 1-machine runs."""
    per_trajectory_seeds: bool = False
    """Sample each trajectory from its own generator derived from (seed, step, trajectory index), so that the global
    batch is the same whatever the number of ranks. Always on when the run has more than one rank; on in a 1-rank
    run it reproduces a multi-rank run's batch (off: one generator for the whole batch, the 1-process default)."""
    batch_shards: int = 0
    """Shards (contiguous blocks of whole groups) the B x G trajectories are computed in: the student's rollout
    queries, the teacher's labeling and every update minibatch run shard by shard, gradients accumulated over a
    rank's shards, then summed over ranks. 0: one shard per rank. A 1-rank run with batch_shards: 2 makes the same
    forward passes and gradient sums as a 2-rank run (the same parameters, to the bit, on the same hardware)."""
    data_parallel: str = "ddp"
    """How ranks share the student: ddp (a full replica per rank, gradients all-reduced by DistributedDataParallel)
    | fsdp (FSDP2 fully_shard per transformer block: parameters, gradients and optimizer state sharded over ranks,
    for students too big for one device; LoRA students shard their frozen base too). A 1-rank run ignores it."""

    # ------------------------------------------------------------------
    def validate(self) -> RunConfig:
        """Raise ConfigError naming the first invalid field; return self when valid."""
        _check_choice("pipeline", self.pipeline, PIPELINES)
        _check_choice("objective", self.objective, registry.OBJECTIVES.names())
        _check_choice("env", self.env, registry.ENVS.names())  # live: an env registered later validates too
        _check_choice("policy", self.policy, registry.POLICIES.names())
        _check_choice("hf_decoding", self.hf_decoding, HF_DECODINGS)
        _check_choice("hf_dtype", self.hf_dtype, HF_DTYPES)
        _check_choice("on_nonfinite", self.on_nonfinite, ON_NONFINITE)
        if "{instruction}" not in self.hf_prompt_template:
            raise ConfigError("hf_prompt_template", "must contain the {instruction} slot")
        for name in (
            "hf_chunk_size",
            "steps",
            "batch_tasks",
            "group_size",
            "updates_per_step",
            "minibatch_size",
            "label_batch_size",
            "sft_batch_size",
            "num_demos",
            "image_size",
            "policy_width",
            "policy_hidden",
            "policy_input_size",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"must be at least 1, got {getattr(self, name)}")
        for name in (
            "hf_action_vocab_offset",
            "hf_lora_rank",
            "grpo_steps",
            "eval_every",
            "save_every",
            "videos_per_eval",
            "max_episode_steps",
            "eval_init_states",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(name, f"must not be negative, got {getattr(self, name)}")
        for name in ("lr", "temperature"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(name, f"must be a positive number, got {value}")
        for name in ("eval_temperature", "sft_label_sigma", "weight_decay", "max_grad_norm", "clip_eps"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(name, f"must be a non-negative number, got {value}")
        if self.pipeline in ("opd", "opd_then_grpo") and not self.teacher_checkpoint:
            raise ConfigError("teacher_checkpoint", f"pipeline {self.pipeline} needs a teacher checkpoint")
        if self.pipeline == "sft" and not self.demos:
            raise ConfigError("demos", "the sft pipeline needs a folder of demonstration files")
        if self.pipeline == "opd_then_grpo" and self.grpo_steps < 1:
            raise ConfigError("grpo_steps", "opd_then_grpo needs at least one GRPO step")
        if self.pipeline in ("grpo", "opd_then_grpo") and self.group_size < 2:
            raise ConfigError("group_size", "GRPO normalises within a group: it needs G >= 2")
        if self.pipeline != "sft" and not self.student_checkpoint and self.policy != "small_vla":
            raise ConfigError("student_checkpoint", "a transformers student must be loaded from a checkpoint")
        if not self.out_dir:
            raise ConfigError("out_dir", "must name a folder")
        if self.max_attempts < 1:
            raise ConfigError("max_attempts", f"must be at least 1, got {self.max_attempts}")
        self._validate_processes()
        return self

    def _validate_processes(self) -> None:
        for name in ("nproc_per_node", "nnodes"):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"must be at least 1, got {getattr(self, name)}")
        _check_choice("data_parallel", self.data_parallel, DATA_PARALLEL)
        if self.batch_shards < 0:
            raise ConfigError("batch_shards", f"must not be negative, got {self.batch_shards}")
        if self.batch_shards:
            if self.batch_shards % self.world_size:
                raise ConfigError(
                    "batch_shards",
                    f"{self.batch_shards} shards do not split over {self.world_size} ranks: "
                    "make it a multiple of nnodes x nproc_per_node",
                )
            if self.batch_tasks % self.batch_shards:
                raise ConfigError(
                    "batch_shards",
                    f"B={self.batch_tasks} instructions do not split into {self.batch_shards} shards of whole groups",
                )
        if self.world_size == 1:
            return
        if self.pipeline == "sft":
            raise ConfigError(
                "nproc_per_node",
                "multi-process runs support the on-policy pipelines (opd, grpo, "
                "opd_then_grpo); run sft with one process",
            )
        if self.batch_tasks % self.world_size:
            raise ConfigError(
                "batch_tasks",
                f"B={self.batch_tasks} instructions do not split into whole groups over "
                f"{self.world_size} ranks: make B a multiple of nnodes x nproc_per_node",
            )

    @property
    def world_size(self) -> int:
        """Ranks in all: nnodes x nproc_per_node."""
        return self.nnodes * self.nproc_per_node

    @property
    def shards(self) -> int:
        """Shards of every step's trajectories (see `batch_shards`)."""
        return self.batch_shards or self.world_size

    @property
    def trajectory_seeding(self) -> bool:
        """Whether rollouts draw from per-trajectory generators (see `per_trajectory_seeds`)."""
        return self.per_trajectory_seeds or self.world_size > 1 or self.batch_shards > 1

    def hf_settings(self) -> dict[str, Any]:
        """The hf_* fields without their prefix (HFVLASettings keyword arguments)."""
        return {f.name[3:]: getattr(self, f.name) for f in dataclasses.fields(self) if f.name.startswith("hf_")}

    @property
    def total_steps(self) -> int:
        return self.steps + (self.grpo_steps if self.pipeline == "opd_then_grpo" else 0)

    # ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Build a config from a plain dict, refusing unknown fields and wrong types by name."""
        if not isinstance(data, dict):
            raise ConfigError("<root>", f"expected a mapping of fields, got {type(data).__name__}")
        hints = get_type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                raise ConfigError(key, "unknown field")
            values[key] = _coerce(key, value, hints[key])
        return cls(**values)

    def replace(self, **changes: Any) -> RunConfig:
        return RunConfig.from_dict({**self.to_dict(), **changes})

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> RunConfig:
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError("<yaml>", f"not valid YAML: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError("<file>", f"config file not found: {path}")
        return cls.from_yaml(path.read_text())

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_yaml())


def field_docs() -> dict[str, str]:
    """Field name -> its docstring, parsed from this module's source (used for CLI and form help)."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(RunConfig))
    body = tree.body[0].body
    docs: dict[str, str] = {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            docs[node.target.id] = str(nxt.value.value)
    return docs


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(name, f"must be one of {', '.join(choices)}; got {value!r}")


def _coerce(name: str, value: Any, hint: Any) -> Any:
    hint_text = str(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(name, f"expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ConfigError(name, f"expected an integer, got {value!r}")
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(name, f"expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if value is None:
            return ""
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(name, f"expected a string, got {value!r}")
        return str(value)
    if hint_text.startswith("list"):
        if value is None:
            return []
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(name, f"expected a list of strings, got {value!r}")
        return list(value)
    return value
