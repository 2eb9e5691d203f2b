"""The study's sizes as explicit presets: which methods, how many steps, what batch, how often to evaluate.

Recipes (learning rate, updates per step, minibatch, label smoothing, ...) are NOT here: they come from the
YAML files in `configs/` so that the study and `opd train` use the same recipes. A preset only sizes the study.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

METHODS = ("reverse_kl", "reverse_kl_exact", "forward_kl", "hard_ce", "grpo", "sft", "opd_then_grpo")
"""Every post-training method of the study, all started from the same 1-demo student."""

METHOD_LABELS = {
    "reverse_kl": "VLA-OPD reverse KL (sampled, eq. 6)",
    "reverse_kl_exact": "reverse KL (exact)",
    "forward_kl": "forward KL",
    "hard_ce": "hard CE (argmax)",
    "grpo": "GRPO (sparse reward)",
    "sft": "offline SFT (50 demos)",
    "opd_then_grpo": "distill then GRPO",
}

OBJECTIVES = ("reverse_kl", "reverse_kl_exact", "forward_kl", "hard_ce")
"""The distillation objectives (the objective ablation); the other methods are pipelines."""

TRADEOFF_METHODS = ("sft", "grpo", "reverse_kl")
"""The methods of the seen-unseen trade-off plot (paper Fig. 3)."""


@dataclass(frozen=True)
class StudyPreset:
    """How big a study is. Every on-policy method gets the same student, teacher and batch (B x G)."""

    name: str
    """Preset name, recorded in summary.json and the report."""
    seeds: int
    """Seeds per method (the summary gives mean and spread over them)."""
    steps: int
    """On-policy steps per method (one step = B x G trajectories and their updates)."""
    batch_tasks: int
    """B: instructions per step, shared by every on-policy method."""
    group_size: int
    """G: trajectories per instruction, shared by every on-policy method."""
    eval_every: int
    """Evaluate seen, held-out and pre-training tasks every K steps (and at the start and the end)."""
    eval_init_states: int
    """Fixed initial states per task at every evaluation (the same for the teacher, base and student rows)."""
    distill_steps_before_grpo: int
    """opd_then_grpo: the latest step at which GRPO takes over from distillation (when reverse KL has not
    plateaued earlier, see `plateau_evals`); an evaluated step. GRPO then runs to `steps` in all."""
    sft_steps: int
    """Offline-SFT baseline: gradient steps on the 50-demo set, from the student (recipe of the teacher YAML)."""
    sft_eval_every: int
    """Offline-SFT baseline: evaluate every K gradient steps (its points of the trade-off plot)."""
    plateau_evals: int = 3
    """opd_then_grpo: distillation has plateaued at the first evaluated step where its best seen success has not
    improved by more than `plateau_gain` over the last `plateau_evals` evaluations; GRPO starts from the reverse-KL
    run's checkpoint there (same seed), or at `distill_steps_before_grpo` if that comes first."""
    plateau_gain: float = 0.02
    """opd_then_grpo: the improvement (seen success, absolute) below which distillation counts as plateaued."""
    objective_lrs: tuple[float, ...] = ()
    """The objective ablation again at these learning rates (the main runs use the recipe's lr): method keys
    <method>_lr<lr>, e.g. forward_kl_lr0.001."""
    objective_lr_methods: tuple[str, ...] = ("forward_kl",)
    """The objectives run again at each of `objective_lrs`."""
    ablation_trajectories: int = 32
    """Group-size ablation: trajectories per step held fixed (paper: 32), B = this / G."""
    ablation_group_sizes: tuple[int, ...] = (2, 4, 8)
    """Group-size ablation: the G values (reverse KL). A G whose batch equals the main batch reuses its runs."""
    held_out_tasks: int = 4
    """How many of the `unseen` suite's held-out compositions to evaluate (4 exist)."""
    retention_tasks: int = 4
    """Pre-training tasks evaluated at every checkpoint to measure retention of the base's skills."""
    videos_per_eval: int = 0
    """Rollout videos per evaluation in method runs (0: none; they cost time and disk)."""
    methods: tuple[str, ...] = METHODS
    """Methods to run (a subset of METHODS)."""
    default_assets: str = ""
    """Folder (relative to opd_core.resources, i.e. the repository root in a checkout) of shipped base/teacher/student
    checkpoints used when no --assets is given and it exists; empty: none (the study builds its assets, which takes
    far longer than the preset)."""
    seen_tasks: int = 0
    """Seen tasks per suite: the first N of the suite (0: all of them). Miniatures only."""
    pretrain_tasks: int = 0
    """Tasks the base is pre-trained on when the study builds it: the first N of `pretrain` (0: all 90)."""
    max_episode_steps: int = 0
    """Episode step limit of method runs and evaluations (0: the suite's default)."""
    common_overrides: dict[str, Any] = field(default_factory=dict)
    """RunConfig fields applied to every run the study makes, assets included (miniatures: tiny policy sizes)."""
    asset_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    """RunConfig fields per asset role (base, teacher, student) applied over its YAML recipe when built."""
    method_overrides: dict[str, Any] = field(default_factory=dict)
    """RunConfig fields applied to every method run over the OPD YAML recipe."""
    reach_fractions: tuple[float, ...] = (0.8, 0.9)
    """Fractions of the teacher's greedy seen success whose first step is reported (Figure 2's "steps to")."""
    extend_methods: tuple[str, ...] = ()
    """Methods run past `steps` until they reach the highest of `reach_fractions` or the cap (their Table 2 row
    stays the checkpoint at `steps`); empty: every run stops at `steps`."""
    extend_factor: float = 3.0
    """Extension cap: this many times the steps distillation (reverse KL, slowest seed) needed to reach the highest
    fraction (`steps` when a seed never did), rounded up to the evaluation cadence, never below `steps`."""
    extend_chunk: int = 0
    """Steps added per extension round (each round ends with an evaluation; 0: eval_every)."""
    env: str = "tabletop"
    """The built-in simulator whose suites the study runs (its catalogue, demos and recipes): tabletop or twin."""
    objective_task: str = ""
    """Objective ablation (paper Fig. 4): the one task its runs train on; empty: no such runs (the main reverse-KL,
    forward-KL and hard-CE runs stand in for it)."""
    objective_methods: tuple[str, ...] = ("reverse_kl", "forward_kl", "hard_ce")
    """Objective ablation: the objectives compared."""
    objective_group_size: int = 8
    """Objective ablation: G; B = ablation_trajectories / G (the paper's batch of 32)."""
    objective_steps: int = 0
    """Objective ablation: on-policy steps per run (0: `steps`)."""

    def __post_init__(self):
        unknown = set(self.methods) - set(METHODS)
        if unknown:
            raise ValueError(f"unknown methods {sorted(unknown)}; known: {', '.join(METHODS)}")
        for name in ("seeds", "steps", "batch_tasks", "group_size", "sft_steps", "ablation_trajectories"):
            if getattr(self, name) < 1:
                raise ValueError(f"preset field {name} must be at least 1")
        if "opd_then_grpo" in self.methods:
            if not 0 < self.distill_steps_before_grpo < self.steps or self.distill_steps_before_grpo % self.eval_every:
                raise ValueError(
                    "distill_steps_before_grpo must be an evaluated step (a multiple of eval_every) that leaves at "
                    "least one GRPO step"
                )
            if "reverse_kl" not in self.methods or "opd_then_grpo" in self.extend_methods:
                raise ValueError(
                    "opd_then_grpo continues the reverse_kl runs: it needs reverse_kl, and is not extended"
                )
            if self.plateau_evals < 1 or self.plateau_gain < 0:
                raise ValueError("plateau_evals must be at least 1 and plateau_gain at least 0")
        unknown = set(self.objective_lr_methods) - (set(OBJECTIVES) & set(self.methods))
        if self.objective_lrs and unknown:
            raise ValueError(f"objective_lr_methods {sorted(unknown)} are not objectives among the preset's methods")
        if any(lr <= 0 for lr in self.objective_lrs):
            raise ValueError(f"objective_lrs must be positive, got {self.objective_lrs}")
        unknown = set(self.extend_methods) - set(self.methods)
        if unknown:
            raise ValueError(f"extend_methods {sorted(unknown)} are not among the preset's methods")
        if self.extend_methods and ("reverse_kl" not in self.methods or self.extend_factor < 1):
            raise ValueError(
                "extending runs needs reverse_kl among the methods (its steps set the cap) and extend_factor >= 1"
            )
        if not self.reach_fractions or not all(0 < f <= 1 for f in self.reach_fractions):
            raise ValueError(f"reach_fractions must be in (0, 1], got {self.reach_fractions}")
        unknown = set(self.objective_methods) - {"reverse_kl", "reverse_kl_exact", "forward_kl", "hard_ce"}
        if unknown:
            raise ValueError(f"objective ablation compares distillation objectives, not {sorted(unknown)}")
        if self.objective_task and self.ablation_trajectories % self.objective_group_size:
            raise ValueError(
                f"objective ablation G={self.objective_group_size} must divide "
                f"{self.ablation_trajectories} trajectories"
            )
        for g in self.ablation_group_sizes:
            if g < 2 or self.ablation_trajectories % g:
                raise ValueError(f"ablation group size {g} must be >= 2 and divide {self.ablation_trajectories}")

    def with_changes(self, **changes: Any) -> StudyPreset:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


QUICK = StudyPreset(
    name="quick",
    seeds=1,
    steps=20,
    batch_tasks=4,
    group_size=8,
    eval_every=5,
    eval_init_states=5,
    distill_steps_before_grpo=15,
    plateau_evals=2,
    sft_steps=150,
    sft_eval_every=30,
    default_assets="assets/tabletop",
    objective_lrs=(1e-3,),
    objective_lr_methods=("forward_kl",),
)
"""About 9 minutes on a 2-core CPU from the shipped assets (15 steps took 6.5 min measured with another job
running; 20 leaves the methods more room inside the 15-minute budget): 10 runs at B=4, G=8 (32 trajectories, the
paper's ablation batch, so the G=8 ablation point is the main reverse-KL run), evaluating 18 tasks x 5 initial
states every 5 steps: the four objectives, GRPO and the G=2 / G=4 ablation points (20 steps each), forward KL again
at lr 1e-3 (20 steps), distill then GRPO (GRPO from the reverse-KL checkpoint at step 10 or 15, 5-10 steps: the
distillation part is the reverse-KL run's own), and an offline-SFT baseline of 150 gradient steps (about one
on-policy run's wall time). Budget used to choose it: an OPD step at B=8, G=8 takes 4-6 s on this machine, so about
2-3 s at 32 trajectories; an evaluation of 18 tasks x 5 states takes a few seconds; an SFT step about 0.45 s."""

FULL = StudyPreset(
    name="full",
    seeds=5,
    steps=50,
    batch_tasks=8,
    group_size=8,
    eval_every=5,
    eval_init_states=10,
    distill_steps_before_grpo=35,
    sft_steps=1500,
    sft_eval_every=150,
    videos_per_eval=1,
    default_assets="assets/tabletop",
    extend_methods=("grpo",),
    objective_lrs=(1e-3,),
    objective_lr_methods=("reverse_kl", "forward_kl", "hard_ce"),
)
"""The study as the issue states it: 5 seeds (speed claims rest on at least 5), GRPO extended until it reaches 90%
of the teacher or three times the steps reverse KL needed, B=8 x G=8 (64 trajectories per step), 50 steps per
method, the G ablation at 32 trajectories per step (three extra runs per seed), reverse KL, forward KL and hard CE
again at lr 1e-3 (three more), distill then GRPO from the reverse-KL checkpoint where distillation plateaued (step
15 to 35), the SFT baseline with the teacher's 1500-step recipe. Measured on a 2-core CPU from the shipped assets
at 3 seeds, without the extension and the lr-1e-3 runs: 1 h 24 min with `--jobs 2` (30 runs; 6,700 CPU-seconds, so
about 2 h with one job) for the object suite; 5 seeds and four suites (260 runs) are about 4 x 5/3 x 13/10 times
that, plus the GRPO extensions: days on this machine, hours spread over a few `opd worker` machines (`--queue`)."""

TWIN_QUICK = StudyPreset(
    name="twin-quick",
    env="twin",
    seeds=1,
    steps=15,
    batch_tasks=4,
    group_size=8,
    eval_every=5,
    eval_init_states=5,
    distill_steps_before_grpo=5,
    sft_steps=150,
    sft_eval_every=30,
    methods=tuple(m for m in METHODS if m != "reverse_kl_exact"),
    ablation_group_sizes=(),
    objective_task="twin/beat_block_hammer",
    objective_steps=15,
    default_assets="assets/twin",
)
"""The RoboTwin protocol on the dual-arm twin suite, sized to finish on a shared 2-core CPU: six methods (all but
exact reverse KL) at B=4 x G=8 for 15 steps (10 seen + 4 held-out + 4 pre-training tasks x 5 initial states every
5 steps), and the objective ablation of Figure 4 (reverse KL, forward KL, hard CE on beat_block_hammer alone at 32
trajectories per step, 15 steps): 9 runs, 135 on-policy steps. No group-size ablation (the paper runs it on LIBERO
only). Measured from the shipped twin checkpoints with --jobs 2: about 19 minutes in all (the 4 reverse-KL and
Figure 4 runs took 947 s with the load at 8-16 on 2 cores, 20-46 s per OPD step; the other 5 runs 207 s on a quiet
machine, 2-5 s per step)."""

TWIN_FULL = TWIN_QUICK.with_changes(
    name="twin-full",
    methods=METHODS,
    seeds=5,
    steps=50,
    batch_tasks=8,
    eval_init_states=10,
    distill_steps_before_grpo=15,
    sft_steps=1500,
    sft_eval_every=150,
    objective_steps=50,
    videos_per_eval=1,
)
"""The twin study at the full preset's size: 5 seeds, B=8 x G=8, 50 steps, 10 initial states per task."""

PRESETS = {"quick": QUICK, "full": FULL, "twin-quick": TWIN_QUICK, "twin-full": TWIN_FULL}


def preset_for(env: str, quick: bool) -> StudyPreset:
    """The quick or full preset of a simulator's study."""
    if env == "twin":
        return TWIN_QUICK if quick else TWIN_FULL
    return QUICK if quick else FULL
