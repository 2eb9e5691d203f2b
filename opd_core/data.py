"""Demonstrations in LIBERO's HDF5 layout: one file per task, `data/demo_<i>/{actions, obs/...}`.

The same reader loads the files `opd demos` writes and LIBERO's original demo files from a local folder:
`data.attrs["problem_info"]` (JSON) carries the language instruction, `obs/agentview_rgb` the camera,
`obs/ee_pos` and `obs/gripper_states` the proprioception. LIBERO's original files store the camera as rendered,
upside down (the environment adapter flips its observations as the standard scripts do), so their images are
flipped on loading to match what the policy sees in the simulator; our files (which name their `task` in
problem_info) are stored upright.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from opd_core.envs.base import Observation
from opd_core.errors import DataError

DEMO_SUFFIX = "_demo.hdf5"


@dataclass
class Episode:
    images: np.ndarray  # uint8 [T, H, W, 3]
    proprio: np.ndarray  # float32 [T, 5]
    actions: np.ndarray  # float [T, 7]


@dataclass
class DemoSet:
    """All transitions of the loaded demos, flattened."""

    images: np.ndarray
    proprio: np.ndarray
    actions: np.ndarray
    instruction_index: np.ndarray
    instructions: list[str]
    tasks: list[str]
    episodes_per_task: dict[str, int]

    def __len__(self) -> int:
        return len(self.actions)

    def observations(self, index: np.ndarray) -> Observation:
        return Observation(
            self.images[index], self.proprio[index], [self.instructions[i] for i in self.instruction_index[index]]
        )


def task_file_name(task: str) -> str:
    return task.replace("/", "__") + DEMO_SUFFIX


def write_task_demos(path: Path, task: str, instruction: str, episodes: list[Episode], env_name: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        data = handle.create_group("data")
        data.attrs["problem_info"] = json.dumps({"language_instruction": instruction, "task": task})
        data.attrs["env_args"] = json.dumps({"env_name": env_name})
        data.attrs["total"] = int(sum(len(e.actions) for e in episodes))
        for i, episode in enumerate(episodes):
            demo = data.create_group(f"demo_{i}")
            demo.attrs["num_samples"] = len(episode.actions)
            demo.create_dataset("actions", data=episode.actions.astype(np.float64))
            steps = len(episode.actions)
            dones = np.zeros(steps, dtype=np.uint8)
            dones[-1] = 1
            demo.create_dataset("dones", data=dones)
            demo.create_dataset("rewards", data=dones.copy())
            obs = demo.create_group("obs")
            obs.create_dataset("agentview_rgb", data=episode.images, compression="lzf", chunks=True)
            obs.create_dataset("ee_pos", data=episode.proprio[:, :3].astype(np.float64))
            obs.create_dataset("gripper_states", data=episode.proprio[:, 3:5].astype(np.float64))


def _demo_sort_key(name: str) -> int:
    return int(name.split("_")[-1]) if name.split("_")[-1].isdigit() else 0


def read_task_demos(path: Path, num_demos: int) -> tuple[str, str, list[Episode]]:
    """(task, instruction, first `num_demos` episodes) of one LIBERO-layout file."""
    try:
        with h5py.File(path, "r") as handle:
            data = handle["data"]
            info = json.loads(data.attrs.get("problem_info", "{}"))
            upright = "task" in info  # written by opd_core; LIBERO's originals have no task key
            task = info.get("task") or path.name.removesuffix(DEMO_SUFFIX)
            instruction = info.get("language_instruction") or task.replace("_", " ")
            names = sorted((n for n in data.keys() if n.startswith("demo_")), key=_demo_sort_key)[:num_demos]
            episodes = [_read_episode(data[name], flip=not upright) for name in names]
    except (OSError, KeyError) as exc:
        raise DataError(f"cannot read demonstrations from {path}: {exc}") from exc
    if not episodes:
        raise DataError(f"{path} holds no data/demo_<i> groups")
    return task, instruction, episodes


def _read_episode(demo: h5py.Group, flip: bool) -> Episode:
    obs = demo["obs"]
    images = np.asarray(obs["agentview_rgb"], dtype=np.uint8)
    if flip:  # rotate 180 degrees, as LIBERO's evaluation scripts do with the rendered frames
        images = np.ascontiguousarray(images[:, ::-1, ::-1])
    ee_pos = np.asarray(obs["ee_pos"], dtype=np.float32)
    gripper = np.asarray(obs["gripper_states"], dtype=np.float32)
    proprio = np.concatenate([ee_pos, gripper[:, :2]], axis=1)
    return Episode(images, proprio, np.asarray(demo["actions"], dtype=np.float64))


def load_demos(folder: str | Path, num_demos: int, tasks: list[str] | None = None) -> DemoSet:
    """Load up to `num_demos` episodes per task from every `*_demo.hdf5` file in `folder`.

    `tasks` restricts loading to those task names (matched against the file's task); a task asked for but
    absent is an error, so a typo never silently trains on nothing.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"demonstration folder not found: {folder}")
    files = sorted(folder.glob(f"*{DEMO_SUFFIX}"))
    if not files:
        raise DataError(f"no *{DEMO_SUFFIX} files in {folder}")
    wanted = set(tasks or [])
    parts: list[tuple[str, str, list[Episode]]] = []
    for path in files:
        if (
            wanted
            and path.name not in {task_file_name(t) for t in wanted}
            and path.name.removesuffix(DEMO_SUFFIX) not in wanted
        ):
            continue
        parts.append(read_task_demos(path, num_demos))
    missing = wanted - {task for task, _, _ in parts}
    if missing:
        raise DataError(f"no demonstrations for tasks {sorted(missing)} in {folder}")
    return _flatten(parts)


def _flatten(parts: list[tuple[str, str, list[Episode]]]) -> DemoSet:
    instructions = [instruction for _, instruction, _ in parts]
    images, proprio, actions, index = [], [], [], []
    for i, (_, _, episodes) in enumerate(parts):
        for episode in episodes:
            images.append(episode.images)
            proprio.append(episode.proprio)
            actions.append(episode.actions)
            index.append(np.full(len(episode.actions), i))
    return DemoSet(
        np.concatenate(images),
        np.concatenate(proprio).astype(np.float32),
        np.concatenate(actions),
        np.concatenate(index),
        instructions,
        [task for task, _, _ in parts],
        {task: len(episodes) for task, _, episodes in parts},
    )
