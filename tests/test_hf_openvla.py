"""OpenVLA's own loading path: a checkpoint folder with its modeling code (`auto_map`, `trust_remote_code`),
`norm_stats` / dataset_statistics.json keyed by unnorm_key, loaded offline as a user's OpenVLA folder is."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from opd_core.checkpoint import load_policy
from opd_core.envs.tabletop.sim import TabletopVecEnv
from opd_core.envs.tabletop.tasks import CATALOG
from opd_core.errors import CheckpointError
from opd_core.sinks import LocalDirSink
from opd_core.train import train
from openvla_folder import UNNORM_KEY, build_openvla_folder
from tinyrun import TASKS, tiny_config

USER_SETTINGS = {"trust_remote_code": True, "unnorm_key": UNNORM_KEY, "action_vocab_offset": 64}
"""What the README tells an OpenVLA user to set (hf_trust_remote_code, hf_unnorm_key, hf_action_vocab_offset)."""


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """HF_HUB_OFFLINE=1 and no sockets at all: anything that tried the network would fail the test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise OSError("network access attempted during an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("openvla")
    student = build_openvla_folder(root / "openvla-student", seed=0)
    return student, build_openvla_folder(root / "openvla-teacher", seed=1)


def _obs():
    tasks = [TASKS[0], CATALOG.suite_tasks("goal")[0], TASKS[1]]  # prompts of 11, 7 and 11 words in one batch
    return TabletopVecEnv(3).reset(tasks, [0, 1, 2])


def test_the_folder_loads_through_its_remote_code(folders):
    student, _ = folders
    config = json.loads((student / "config.json").read_text())
    assert config["auto_map"]["AutoModelForVision2Seq"] == "modeling_prismatic.OpenVLAForActionPrediction"
    assert not (student / "opd_vla.json").exists()
    policy = load_policy(student, hf_settings=USER_SETTINGS)
    model = policy.model
    assert type(model).__name__ == "OpenVLAForActionPrediction"
    assert type(model).__module__.startswith("transformers_modules."), "the folder's own code, not a built-in class"
    assert type(policy.processor).__name__ == "PrismaticProcessor"
    # our bin b is token id end-1-b; OpenVLA's own de-tokenization (vocab_size - id - 1) must give b back
    bins = torch.arange(256)
    assert torch.equal(model.vocab_size - policy._action_ids(bins) - 1, bins)
    assert policy.tokenizer.to_dict()["q01"] == model.get_action_stats(UNNORM_KEY)["q01"]
    assert model.get_action_dim(UNNORM_KEY) == 7


def test_a_fresh_offline_process_loads_the_folder(folders, tmp_path):
    """As a user's process would: HF_HUB_OFFLINE=1 set before anything imports huggingface_hub, a module cache
    of its own (the folder's code is copied there by trust_remote_code), nothing else."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
    code = (
        "import sys, json; from opd_core.checkpoint import load_policy; "
        "p = load_policy(sys.argv[1], hf_settings=json.loads(sys.argv[2])); print(type(p.model).__name__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(folders[0]), json.dumps(USER_SETTINGS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "OpenVLAForActionPrediction"
    assert list((tmp_path / "hf_home").rglob("modeling_prismatic.py")), "loaded through the dynamic-module cache"


def test_without_trust_remote_code_or_with_a_wrong_key_the_errors_say_so(folders):
    student, _ = folders
    with pytest.raises(CheckpointError, match="trust_remote_code"):
        load_policy(student, hf_settings={**USER_SETTINGS, "trust_remote_code": False})
    with pytest.raises(CheckpointError, match="unnorm_key"):
        load_policy(student, hf_settings={**USER_SETTINGS, "unnorm_key": ""})  # two datasets in the statistics
    with pytest.raises(CheckpointError, match="bridge_orig"):
        load_policy(student, hf_settings={**USER_SETTINGS, "unnorm_key": "libero_spatial"})


def test_batches_of_mixed_prompt_lengths_score_as_single_queries(folders):
    policy = load_policy(folders[0], hf_settings=USER_SETTINGS)
    obs = _obs()
    bins, logp, logits = policy.sample(obs, 1.0, torch.Generator().manual_seed(0))
    assert bins.shape == (3, 7) and logits.shape == (3, 7, 256)
    batched = policy(obs, bins)
    assert torch.allclose(batched, logits, atol=1e-5), "scoring must see what sampling saw"
    for i in range(3):  # OpenVLA's forward takes no position_ids: the batch must not be left-padded
        alone = policy(obs.take([i]), bins[i : i + 1])
        assert torch.allclose(batched[i : i + 1], alone, atol=1e-5)


def _run(config):
    sink = LocalDirSink(config.out_dir)
    try:
        return train(config, sink)
    finally:
        sink.close()


def test_opd_with_an_openvla_folder_as_student_and_as_teacher(folders, tmp_path):
    student, teacher = folders
    before = {n: p.detach().clone() for n, p in load_policy(student, hf_settings=USER_SETTINGS).named_parameters()}
    config = tiny_config(
        tmp_path / "run",
        pipeline="opd",
        objective="reverse_kl_exact",
        student_checkpoint=str(student),
        teacher_checkpoint=str(teacher),
        steps=2,
        lr=1e-2,
        eval_every=0,
        save_every=2,
        max_episode_steps=3,
        hf_trust_remote_code=True,
        hf_unnorm_key=UNNORM_KEY,
        hf_action_vocab_offset=64,
    )
    assert _run(config).status == "finished"
    trained = load_policy(tmp_path / "run/checkpoints/step_2")
    assert type(trained.model).__name__ == "OpenVLAForActionPrediction"
    after = dict(trained.named_parameters())
    assert any(not torch.equal(before[n], after[n].detach()) for n in before), "the student trained"
    obs = _obs()
    bins = torch.zeros(3, 7, dtype=torch.long)
    assert torch.allclose(load_policy(tmp_path / "run/checkpoints/step_2")(obs, bins), trained(obs, bins), atol=1e-6)
