"""LeRobot's bimanual ALOHA simulation (gym-aloha, MuJoCo) behind `opd_core.envs.base.VectorEnv`: an optional extra.

gym-aloha pins mujoco<3.9 and dm-control<1.1, which conflicts with the LIBERO extra's mujoco, so it lives in its own
venv (`bash scripts/setup_aloha.sh` makes `.venv-aloha` from requirements-aloha.txt: numpy + gym-aloha, no torch).
The training process never imports it: the environment worker processes (`worker.py`) run under that venv's
interpreter, started by the LIBERO pool's machinery (`pool.py`: a crashed or hung worker is replaced and its
episode replayed), and only numpy arrays cross the pipe. This package imports nothing of the extra.

- `make_aloha_env(num_envs, ...)`: an `AlohaVecEnv`; `catalog()`: the tasks (tasks.py);
- `sim.py`: one task's physics, driven directly with one small camera; `expert.py`: the privileged scripted expert
  (runs in the workers; its action at every state is part of the privileged state); `policy.py`: the expert as the
  teacher kind `aloha_expert`; `demos.py`: expert demonstrations in the project's HDF5 layout.
The interpreter: $OPD_ALOHA_PYTHON, else `.venv-aloha/bin/python` of the checkout.
"""

from __future__ import annotations

import os
import subprocess
from functools import lru_cache
from pathlib import Path

from opd_core.errors import EnvironmentUnavailable

REPO_ROOT = Path(__file__).resolve().parents[3]
INSTALL_HINT = (
    "the ALOHA simulator is not installed: it is an optional extra in its own venv. Install it with "
    "`bash scripts/setup_aloha.sh` (from the repository root: makes .venv-aloha from requirements-aloha.txt), or "
    "point OPD_ALOHA_PYTHON at an interpreter that has gym-aloha==0.1.5; on a machine without a GPU keep "
    "MUJOCO_GL=egl (the default for its workers)."
)


def aloha_python() -> str:
    """The interpreter the ALOHA workers run under."""
    return os.environ.get("OPD_ALOHA_PYTHON") or str(REPO_ROOT / ".venv-aloha" / "bin" / "python")


@lru_cache(maxsize=4)
def _importable(python: str) -> str | None:
    """None when `python` imports gym-aloha's simulator, else why not."""
    if not Path(python).is_file():
        return f"{python} does not exist"
    try:
        done = subprocess.run(
            [python, "-c", "import dm_control.mujoco, gym_aloha.tasks.sim"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{python} cannot run: {exc}"
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or ["import failed"])[-1]
    return None


def aloha_available() -> bool:
    """True when the ALOHA venv exists and imports gym-aloha (checked once per interpreter)."""
    return _importable(aloha_python()) is None


def require_aloha() -> None:
    problem = _importable(aloha_python())
    if problem is not None:
        raise EnvironmentUnavailable(f"{INSTALL_HINT} ({problem})")


def make_aloha_env(num_envs: int, image_size: int = 64, max_episode_steps: int = 0, **options):
    """An `AlohaVecEnv` of `num_envs` episodes (worker processes start lazily, at the first reset)."""
    require_aloha()
    from opd_core.envs.aloha.pool import AlohaVecEnv

    return AlohaVecEnv(num_envs, image_size=image_size, max_episode_steps=max_episode_steps, **options)


def catalog():
    """The ALOHA task catalogue (plain data: available without the extra, so configs validate anywhere)."""
    from opd_core.envs.aloha.tasks import CATALOG

    return CATALOG


__all__ = ["INSTALL_HINT", "aloha_available", "aloha_python", "catalog", "make_aloha_env", "require_aloha"]
