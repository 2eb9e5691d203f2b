"""The registries: lazy built-ins, optional extras stay unimported, the Policy ABC, evaluation through a registered
env (and the policy's mode restored when it fails)."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from opd_core import registry
from opd_core.envs.base import EnvSpec, Observation
from opd_core.evaluate import evaluate, evaluate_fixed_init_states
from opd_core.policies.base import Policy
from opd_core.tokenizer import ActionTokenizer

TINY = {"width": 4, "hidden": 32, "input_size": 16}


def test_listing_and_looking_up_libero_imports_no_libero_package():
    code = (
        "import sys\n"
        "import opd_core.train, opd_core.evaluate, opd_core.checkpoint, opd_core.config\n"
        "from opd_core import registry\n"
        "assert 'libero' in registry.ENVS.names() and 'libero_expert' in registry.TEACHERS.names()\n"
        "spec = registry.env_spec('libero')\n"
        "assert spec.release_rollout_envs_before_eval and spec.evaluation_protocol == 'libero'\n"
        "registry.evaluation_protocol('libero'); registry.policy_class('libero_expert')\n"
        "extras = ('libero', 'robosuite', 'mujoco', 'transformers')\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in extras)\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_builtin_entries_carry_what_the_loop_used_to_branch_on():
    tabletop = registry.env_spec("tabletop")
    assert tabletop.fresh_student_tokenizer is not None and not tabletop.release_rollout_envs_before_eval
    assert registry.evaluation_protocol("tabletop") is evaluate_fixed_init_states
    assert registry.env_spec("libero").fresh_student_tokenizer is None
    assert registry.policy_class("small_vla").kind == "small_vla"
    assert registry.policy_class("libero_expert").kind == "libero_expert"
    assert list(registry.CHECKPOINT_LOADERS) == ["opd", "transformers"]


def test_unknown_names_are_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="unknown env 'nope'; known: tabletop, libero"):
        registry.make_env("nope", 1)
    with pytest.raises(ValueError, match="unknown policy kind 'nope'; known: small_vla, transformers, libero_expert"):
        registry.build_policy("nope", {}, ActionTokenizer.identity())


def test_policy_is_abstract():
    class NoForward(Policy):
        def arch_config(self):
            return {}

    class NoArch(Policy):
        def forward(self, obs, actions=None):
            return torch.zeros(len(obs), 7, 256)

    for cls in (NoForward, NoArch):
        with pytest.raises(TypeError, match="abstract"):
            cls()

    class Complete(NoArch):
        def arch_config(self):
            return {}

    assert isinstance(Complete(), torch.nn.Module)


class _BrokenEnv:
    num_envs, max_episode_steps = 1, 5
    failed = np.zeros(1, dtype=bool)

    def __init__(self, num_envs, image_size=64, max_episode_steps=0):
        self.closed = False

    def reset(self, tasks, init_ids):
        return Observation(
            np.zeros((len(tasks), 8, 8, 3), np.uint8), np.zeros((len(tasks), 5), np.float32), list(tasks)
        )

    def step(self, actions):
        raise RuntimeError("simulator crashed")

    def close(self):
        pass


@pytest.fixture
def broken_env():
    catalog = type(
        "Catalog",
        (),
        {
            "suite_tasks": lambda self, s: ["t"],
            "instruction": lambda self, t: t,
            "max_episode_steps": lambda self, s: 5,
        },
    )()
    registry.ENVS.register("broken", EnvSpec(make=_BrokenEnv, catalog=lambda: catalog))
    yield "broken"
    registry.ENVS.unregister("broken")


def test_a_failed_evaluation_restores_the_policy_mode(broken_env):
    policy = registry.build_policy("small_vla", TINY, ActionTokenizer.identity())
    policy.train()
    with pytest.raises(RuntimeError, match="simulator crashed"):
        evaluate(policy, broken_env, ["t"], [], init_states=1)
    assert policy.training
