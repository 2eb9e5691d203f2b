"""Registries: environments, policy kinds, teacher kinds, checkpoint loaders, evaluation protocols and distillation
objectives, each a small table from a name to its entry. `train`, `evaluate` and `checkpoint` look entries up here
and never name one.

How registration works (one rule, no import-time side effects elsewhere): every built-in entry is listed once,
below, as `name -> "module:attr"`, a lazy spec that is imported on the first lookup of that name. Registering or
listing a name imports nothing, so an optional extra (LIBERO, ALOHA) costs nothing until it is used, and using it
without the extra installed raises its own `EnvironmentUnavailable` with the install command. Code outside the project
adds entries with `register(name, entry_or_spec)` on the table (e.g. `ENVS.register("sim", "pkg.sim:ENV")`).

Entries:
- `ENVS`: an `opd_core.envs.base.EnvSpec` (make, catalog, evaluation protocol, a fresh student's tokenizer, ...).
- `POLICIES`: a `Policy` subclass a student can be (`RunConfig.policy`); `TEACHERS`: teacher-only kinds (scripted
  experts with no trainable weights). A checkpoint's `meta.json` names its kind; both tables are searched.
- `CHECKPOINT_LOADERS`: objects with `accepts(directory) -> bool` and `load(directory, device, hf_settings)`,
  tried in order: the OPD checkpoint folder first, then a raw transformers model directory.
- `EVAL_PROTOCOLS`: `protocol(policy, env_name, seen, unseen, *, init_states, temperature, image_size,
  max_episode_steps, video_tasks, video_dir, run_dir, seed) -> EvalResult`.
- `LAUNCHERS`: how a run of several processes starts, `launch(config, sink, *, stop_requested, resume) ->
  TrainResult`; `local`: ranks spawned on this machine (`opd_core.distributed`; several machines use torchrun).
- `OBJECTIVES`: distillation objectives `loss(student_logits, teacher_logits, actions, behaviour_logp, *, mask,
  clip_eps)`: the one list of objective names (the config validates against it without importing torch).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from opd_core.envs.base import EnvSpec, TaskSuiteProvider, VectorEnv
    from opd_core.policies.base import Policy
    from opd_core.tokenizer import ActionTokenizer

T = TypeVar("T")


class Registry(Generic[T]):
    """Names -> entries; an entry may be given as a lazy `"module:attr"` spec, imported on first lookup."""

    def __init__(self, what: str, builtins: dict[str, str]):
        self.what = what
        self._entries: dict[str, T | str] = dict(builtins)

    def register(self, name: str, entry: T | str) -> None:
        """Add (or replace) `name`; `entry` is the object itself or a `"module:attr"` spec."""
        self._entries[name] = entry

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise ValueError(f"unknown {self.what} {name!r}; known: {', '.join(self._entries)}")
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            entry = getattr(importlib.import_module(module), attr)
            self._entries[name] = entry
        return entry


ENVS: Registry[EnvSpec] = Registry(
    "env",
    {
        "tabletop": "opd_core.envs.tabletop.spec:ENV",
        "libero": "opd_core.envs.libero.spec:ENV",
        "twin": "opd_core.envs.twin.spec:ENV",
        "aloha": "opd_core.envs.aloha.spec:ENV",
    },
)
POLICIES: Registry[type[Policy]] = Registry(
    "policy kind",
    {
        "small_vla": "opd_core.policies.small_vla:SmallVLA",
        "transformers": "opd_core.policies.hf_vla:TransformersVLA",
    },
)
TEACHERS: Registry[type[Policy]] = Registry(
    "teacher kind",
    {
        "libero_expert": "opd_core.envs.libero.policy:LiberoExpertPolicy",
        "aloha_expert": "opd_core.envs.aloha.policy:AlohaExpertPolicy",
    },
)
CHECKPOINT_LOADERS: Registry[Any] = Registry(
    "checkpoint loader",
    {
        "opd": "opd_core.checkpoint:OpdCheckpointLoader",
        "transformers": "opd_core.policies.hf_vla:ModelDirLoader",
    },
)
EVAL_PROTOCOLS: Registry[Any] = Registry(
    "evaluation protocol",
    {
        "fixed_init_states": "opd_core.evaluate:evaluate_fixed_init_states",
        "libero": "opd_core.envs.libero.protocol:evaluate_env_run",
    },
)
LAUNCHERS: Registry[Any] = Registry("launcher", {"local": "opd_core.distributed:launch"})
OBJECTIVES: Registry[Any] = Registry(
    "objective",
    {
        "reverse_kl": "opd_core.objectives:sampled_reverse_kl",
        "reverse_kl_exact": "opd_core.objectives:exact_reverse_kl",
        "forward_kl": "opd_core.objectives:soft_forward_kl",
        "hard_ce": "opd_core.objectives:argmax_ce",
    },
)


# ------------------------------------------------------------------------------------------------ lookups
def env_spec(env_name: str) -> EnvSpec:
    return ENVS.get(env_name)


def make_env(env_name: str, num_envs: int, image_size: int = 64, max_episode_steps: int = 0) -> VectorEnv:
    """Build a vectorized simulator by name."""
    return env_spec(env_name).make(num_envs, image_size=image_size, max_episode_steps=max_episode_steps)


def task_catalog(env_name: str) -> TaskSuiteProvider:
    return env_spec(env_name).catalog()


def policy_class(kind: str) -> type[Policy]:
    """The `Policy` subclass of a kind: a student architecture or a teacher-only kind."""
    if kind not in POLICIES and kind in TEACHERS:
        return TEACHERS.get(kind)
    if kind not in POLICIES:
        known = ", ".join([*POLICIES, *TEACHERS])
        raise ValueError(f"unknown policy kind {kind!r}; known: {known}")
    return POLICIES.get(kind)


def build_policy(kind: str, arch: dict[str, Any], tokenizer: ActionTokenizer) -> Policy:
    """A fresh policy of `kind` from its architecture config."""
    return policy_class(kind).build(arch, tokenizer)


def register_policy(kind: str, policy: type[Policy] | str) -> None:
    POLICIES.register(kind, policy)


def checkpoint_loader(directory: Path) -> Any | None:
    """The first registered loader that accepts `directory`, or None."""
    for name in CHECKPOINT_LOADERS:
        loader = CHECKPOINT_LOADERS.get(name)
        if loader.accepts(directory):
            return loader
    return None


def evaluation_protocol(env_name: str):
    """The evaluation protocol the env registered (`EnvSpec.evaluation_protocol`)."""
    return EVAL_PROTOCOLS.get(env_spec(env_name).evaluation_protocol)
