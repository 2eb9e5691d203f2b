"""LIBERO's registry entry (`opd_core.registry.ENVS["libero"]`).

Importing this module imports no LIBERO package: building the env or its catalogue checks the extra and raises
`EnvironmentUnavailable` with the install command when it is missing.
"""

from __future__ import annotations

from opd_core.envs.base import EnvSpec
from opd_core.envs.libero import catalog, make_libero_env

ENV = EnvSpec(
    make=make_libero_env,
    catalog=catalog,
    evaluation_protocol="libero",  # the standard LIBERO protocol (opd_core.envs.libero.protocol)
    fresh_student_tokenizer=None,  # a fresh student fits its action statistics on the demos
    release_rollout_envs_before_eval=True,  # the protocol builds its own pool: never hold two (GBs each)
)
