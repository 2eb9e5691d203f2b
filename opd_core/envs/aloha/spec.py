"""ALOHA's registry entry (`opd_core.registry.ENVS["aloha"]`).

Importing it imports nothing of the extra: building the env checks the ALOHA venv and raises
`EnvironmentUnavailable` with the install command when it is missing.
"""

from __future__ import annotations

from functools import partial

from opd_core.envs.aloha import catalog, make_aloha_env
from opd_core.envs.aloha.tasks import ACTION_DIM, PROPRIO_DIM
from opd_core.envs.base import EnvSpec
from opd_core.tokenizer import ActionTokenizer

ENV = EnvSpec(
    make=make_aloha_env,
    catalog=catalog,
    evaluation_protocol="fixed_init_states",  # seeds 0..N-1, every episode up to the 300-step limit
    fresh_student_tokenizer=partial(ActionTokenizer.identity, ACTION_DIM),  # actions normalized to [-1, 1]
    proprio_dim=PROPRIO_DIM,
    eval_init_states=50,
    protocol_note="ALOHA fixed seeds: gym-aloha reset seeds 0..n-1 per task, greedy actions unless a temperature is "
    "given, at most 300 steps (gym-aloha's limit), success = reward 4",
    release_rollout_envs_before_eval=True,  # the evaluation starts its own worker processes
)
