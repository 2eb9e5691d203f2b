import numpy as np
import pytest
import torch

from opd_core.checkpoint import (
    latest_checkpoint,
    load_policy,
    load_training_state,
    restore_rng,
    rng_state,
    save_checkpoint,
)
from opd_core.envs.tabletop.sim import TabletopVecEnv
from opd_core.errors import CheckpointError
from opd_core.policies import build_policy
from opd_core.tokenizer import ActionTokenizer
from tinyrun import TASKS


def _policy():
    return build_policy(
        "small_vla",
        {"width": 4, "hidden": 32, "input_size": 16},
        ActionTokenizer.fit(np.random.default_rng(0).normal(size=(64, 7))),
    )


def test_round_trip_reproduces_logits_optimizer_and_rng(tmp_path):
    policy = _policy()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    obs = TabletopVecEnv(2).reset(TASKS, [0, 1])
    policy(obs).logsumexp(-1).mean().backward()
    optimizer.step()
    rng = np.random.default_rng(5)
    save_checkpoint(
        tmp_path / "step_3",
        policy,
        step=3,
        run_config={"name": "x"},
        optimizer=optimizer,
        rng=rng_state(rng),
        extra={"env_steps": 12},
    )
    expected_draw = rng.random()

    loaded = load_policy(tmp_path / "step_3")
    assert torch.equal(loaded(obs), policy(obs))
    assert loaded.tokenizer == policy.tokenizer
    fresh = torch.optim.AdamW(loaded.parameters(), lr=1e-3)
    state = load_training_state(tmp_path / "step_3", fresh)
    assert state.step == 3 and state.extra["env_steps"] == 12 and state.run_config == {"name": "x"}
    saved, restored = optimizer.state_dict()["state"], fresh.state_dict()["state"]
    assert saved.keys() == restored.keys()
    for key in saved:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(saved[key][name], restored[key][name])
    other = np.random.default_rng(0)
    restore_rng(state.rng, other)
    assert other.random() == expected_draw
    assert not any(p.suffix in (".pt", ".pkl", ".bin") for p in (tmp_path / "step_3").iterdir()), "no pickles"


def test_missing_and_broken_checkpoints_say_what_is_wrong(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_policy(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not an OPD checkpoint"):
        load_policy(tmp_path / "empty")


def test_latest_checkpoint_ignores_partial_writes(tmp_path):
    policy = _policy()
    for step in (1, 10, 2):
        save_checkpoint(tmp_path / "checkpoints" / f"step_{step}", policy, step=step)
    (tmp_path / "checkpoints" / "step_99.tmp").mkdir()
    (tmp_path / "checkpoints" / "step_50").mkdir()  # killed before meta.json was written
    assert latest_checkpoint(tmp_path).name == "step_10"
