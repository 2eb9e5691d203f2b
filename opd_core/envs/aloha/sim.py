"""One ALOHA task's simulator inside an environment worker (needs the extra: dm_control, mujoco, gym-aloha).

gym-aloha's `AlohaEnv` renders three 640x480 cameras at every step whatever its observation size (about 2.5
steps/s on a busy core), so this drives the same physics and task classes directly, as `AlohaEnv` does through
`dm_control.rl.control.Environment`: the package's MJCF scene, `TransferCubeTask` / `InsertionTask` for the reset
and the contact reward, 10 physics substeps of 2 ms per 50 Hz control step, and renders one camera ("top") at the
policy's image size. Success is gym-aloha's: reward 4 (its `is_success`).

Episodes keep no state here: `reset` and `step` return the episode's slot state (MuJoCo's full integration state
and the step count), and `step` starts by restoring it, so a fresh worker continues any episode exactly and every
episode sharing this simulator is independent.
"""

from __future__ import annotations

import mujoco
import numpy as np
from dm_control import mujoco as dm_mujoco
from gym_aloha.constants import ASSETS_DIR, DT, START_ARM_POSE
from gym_aloha.tasks import sim as aloha_sim
from gym_aloha.utils import sample_box_pose, sample_insertion_pose

from opd_core.envs.aloha.expert import ARMS, FINGER_QPOS, ScriptedExpert, grip_points
from opd_core.envs.aloha.tasks import CATALOG, MAX_EPISODE_STEPS, OBJECTS, normalize_actions, unnormalize_actions

STATE_SPEC = mujoco.mjtState.mjSTATE_INTEGRATION
CAMERA = "top"


class AlohaTaskSim:
    def __init__(self, task: str, image_size: int = 64, cameras: bool = True):
        spec = CATALOG.task(task)
        self.task, self.image_size, self.cameras = task, image_size, cameras
        self.physics = dm_mujoco.Physics.from_xml_path(str(ASSETS_DIR / spec.xml))
        self.task_def = aloha_sim.TransferCubeTask() if task == "transfer_cube" else aloha_sim.InsertionTask()
        self.substeps = int(round(DT / self.physics.model.opt.timestep))
        self.expert = ScriptedExpert(self.physics, task)
        model = self.physics.model.ptr
        self._state = np.zeros(mujoco.mj_stateSize(model, STATE_SPEC))
        # the expert's start poses: every episode starts from gym-aloha's START_ARM_POSE (a fresh worker that
        # continues an episode has them too)
        self.physics.named.data.qpos[:16] = START_ARM_POSE
        self.physics.forward()
        self.expert.capture_start()

    # ------------------------------------------------------------------ episodes
    def reset(self, init_id: int) -> dict:
        """gym-aloha's reset with seed `init_id` (the same object poses as `AlohaEnv.reset(seed=init_id)`)."""
        if self.task == "transfer_cube":
            aloha_sim.BOX_POSE[0] = sample_box_pose(init_id)
        else:
            aloha_sim.BOX_POSE[0] = np.concatenate(sample_insertion_pose(init_id))
        physics = self.physics
        physics.reset()
        self.task_def.initialize_episode(physics)
        physics.forward()
        return self.observation(0)

    def step(self, slot_state: dict, action: np.ndarray) -> dict:
        """Restore the episode, apply one normalized 14-D action (see tasks.unnormalize_actions), observe."""
        physics = self.physics
        mujoco.mj_setState(physics.model.ptr, physics.data.ptr, slot_state["mujoco"], STATE_SPEC)
        physics.forward()
        self.task_def.before_step(unnormalize_actions(np.asarray(action, dtype=np.float64)), physics)
        physics.step(self.substeps)
        self.task_def.after_step(physics)
        return self.observation(int(slot_state["t"]) + 1)

    def observation(self, t: int) -> dict:
        physics = self.physics
        points = grip_points(physics)
        qpos = physics.data.qpos
        proprio = np.concatenate([points["left"], points["right"], *(qpos[FINGER_QPOS[side]] for side in ARMS)]).astype(
            np.float32
        )
        objects = np.zeros(OBJECTS, np.float32)
        poses = qpos[16:].astype(np.float32)
        objects[: len(poses)] = poses
        expert = normalize_actions(self.expert.joint_targets(t)).astype(np.float32)
        state = np.concatenate([expert, [t / MAX_EPISODE_STEPS], objects]).astype(np.float32)
        mujoco.mj_getState(physics.model.ptr, physics.data.ptr, self._state, STATE_SPEC)
        if self.cameras:
            image = physics.render(height=self.image_size, width=self.image_size, camera_id=CAMERA)
        else:
            image = np.zeros((self.image_size, self.image_size, 3), np.uint8)
        return {
            "image": np.ascontiguousarray(image, dtype=np.uint8),
            "proprio": proprio,
            "state": state,
            "success": bool(self.task_def.get_reward(physics) >= self.task_def.max_reward),
            "slot_state": {"mujoco": self._state.copy(), "t": t},
        }

    def close(self) -> None:
        self.physics.free()
