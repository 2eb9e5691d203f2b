"""Transformers VLA policies: a tiny LLaVA built offline, loaded through the path a real checkpoint takes."""

import json
import os
import subprocess
import sys

import pytest
import torch

from hf_models import build_tiny_llava
from opd_core.checkpoint import load_policy, save_checkpoint
from opd_core.envs.tabletop.sim import TabletopVecEnv
from opd_core.errors import CheckpointError, TokenizerMismatchError
from opd_core.policies import build_policy
from opd_core.sinks import LocalDirSink
from opd_core.tokenizer import ActionTokenizer
from opd_core.train import train
from tinyrun import TASKS, TINY_POLICY, tiny_config


@pytest.fixture(scope="module")
def tiny_vla(tmp_path_factory):
    return build_tiny_llava(tmp_path_factory.mktemp("hf") / "tiny-vla", hidden=32, layers=1)


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("small") / "small"
    arch = {
        "width": TINY_POLICY["policy_width"],
        "hidden": TINY_POLICY["policy_hidden"],
        "input_size": TINY_POLICY["policy_input_size"],
    }
    save_checkpoint(path, build_policy("small_vla", arch, ActionTokenizer.identity()), step=0)
    return path


def _obs(n=2):
    return TabletopVecEnv(n).reset((TASKS * n)[:n], list(range(n)))


def _run(config):
    sink = LocalDirSink(config.out_dir)
    try:
        return train(config, sink)
    finally:
        sink.close()


def test_sampling_and_teacher_forcing_agree(tiny_vla):
    policy = load_policy(tiny_vla)
    obs = _obs()
    bins, logp, logits = policy.sample(obs, 1.0, torch.Generator().manual_seed(0))
    assert bins.shape == (2, 7) and logits.shape == (2, 7, 256)
    assert torch.allclose(policy(obs, bins), logits, atol=1e-5), "scoring must see what sampling saw"
    assert torch.allclose(logp, torch.log_softmax(logits, -1).gather(-1, bins[..., None])[..., 0], atol=1e-5)


def _parameters_in_graph(policy):
    """Names of parameters the action logits depend on (LLaVA reads the vision tower before its final norm)."""
    obs = _obs()
    policy(obs, torch.zeros(2, 7, dtype=torch.long)).sum().backward()
    return {name for name, p in policy.named_parameters() if p.grad is not None}


def test_two_opd_steps_as_student_train_every_parameter(tiny_vla, small_checkpoint, tmp_path):
    initial = load_policy(tiny_vla)
    used = _parameters_in_graph(initial)
    assert {n for n, _ in initial.named_parameters()} - used <= {
        "model.model.vision_tower.post_layernorm.weight",
        "model.model.vision_tower.post_layernorm.bias",
    }
    before = {n: p.detach().clone() for n, p in initial.named_parameters() if n in used}
    config = tiny_config(
        tmp_path / "run",
        pipeline="opd",
        objective="reverse_kl_exact",
        student_checkpoint=str(tiny_vla),
        teacher_checkpoint=str(small_checkpoint),
        steps=2,
        lr=1e-2,
        eval_every=0,
        save_every=0,
        max_episode_steps=3,
    )
    assert _run(config).status == "finished"
    trained = load_policy(tmp_path / "run/checkpoints/step_2")
    after = dict(trained.named_parameters())
    unchanged = [name for name in before if torch.equal(before[name], after[name].detach())]
    assert not unchanged, f"parameters that did not train: {unchanged}"
    obs = _obs()
    bins = torch.zeros(2, 7, dtype=torch.long)
    reloaded = load_policy(tmp_path / "run/checkpoints/step_2")
    assert torch.allclose(reloaded(obs, bins), trained(obs, bins), atol=1e-6)


def test_saved_student_loads_back_in_transformers(tiny_vla, tmp_path):
    from transformers import AutoModelForImageTextToText

    policy = load_policy(tiny_vla)
    save_checkpoint(tmp_path / "ckpt", policy, step=0)
    model = AutoModelForImageTextToText.from_pretrained(tmp_path / "ckpt/hf_model", local_files_only=True)
    reference = policy.model.state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in model.state_dict().items())


@pytest.fixture(scope="module")
def sharp_teacher(tmp_path_factory):
    """A tiny LLaVA whose action distributions are peaked (scaled output head), so that a student moving toward
    it is told apart from one moving toward any other target (a uniform one, its own, a shuffled teacher)."""
    from transformers import AutoModelForImageTextToText

    path = build_tiny_llava(tmp_path_factory.mktemp("sharp") / "sharp", hidden=32, layers=1, seed=3)
    model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True)
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(40.0)
    model.save_pretrained(path)
    return path


def _kl_to_teacher(student, teacher, obs):
    """Mean KL(teacher || student) over the 7 dimensions, teacher-forced on the teacher's own greedy bins."""
    with torch.no_grad():
        bins = torch.zeros(len(obs), 7, dtype=torch.long)
        for d in range(7):  # the teacher's greedy action, dimension by dimension
            bins[:, d] = teacher(obs, bins)[:, d].argmax(-1)
        target = torch.log_softmax(teacher(obs, bins), -1)
        mine = torch.log_softmax(student(obs, bins), -1)
    return float((target.exp() * (target - mine)).sum(-1).mean())


def test_transformers_teacher_distils_into_small_student(sharp_teacher, small_checkpoint, tmp_path):
    teacher, student = load_policy(sharp_teacher), load_policy(small_checkpoint)
    obs = TabletopVecEnv(4).reset((TASKS * 2)[:4], [10, 11, 12, 13])  # fixed states the run never starts from
    before = _kl_to_teacher(student, teacher, obs)
    config = tiny_config(
        tmp_path / "run",
        pipeline="opd",
        objective="forward_kl",
        student_checkpoint=str(small_checkpoint),
        teacher_checkpoint=str(sharp_teacher),
        steps=4,
        lr=3e-2,
        eval_every=0,
        save_every=4,
        max_episode_steps=3,
    )
    assert _run(config).status == "finished"
    after = _kl_to_teacher(load_policy(tmp_path / "run/checkpoints/step_4"), teacher, obs)
    assert after < 0.8 * before, f"the student did not move toward the teacher: KL {before:.3f} -> {after:.3f}"


def test_lora_trains_only_adapters(tiny_vla, small_checkpoint, tmp_path):
    config = tiny_config(
        tmp_path / "run",
        pipeline="opd",
        objective="reverse_kl_exact",
        hf_lora_rank=2,
        student_checkpoint=str(tiny_vla),
        teacher_checkpoint=str(small_checkpoint),
        steps=1,
        lr=1e-2,
        eval_every=0,
        save_every=0,
        max_episode_steps=3,
    )
    assert _run(config).status == "finished"
    policy = load_policy(tmp_path / "run/checkpoints/step_1")
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert any("language_model" in n for n in trainable) and not any("vision" in n for n in trainable)


def test_bad_directories_and_statistics_are_clear_errors(tiny_vla, small_checkpoint, tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_policy(tmp_path / "missing")
    (tmp_path / "notamodel").mkdir()
    with pytest.raises(CheckpointError):
        load_policy(tmp_path / "notamodel")
    other = build_tiny_llava(
        tmp_path / "other", hidden=32, layers=1, tokenizer=ActionTokenizer((-2.0,) * 7, (2.0,) * 7)
    )
    config = tiny_config(
        tmp_path / "run", pipeline="opd", student_checkpoint=str(small_checkpoint), teacher_checkpoint=str(other)
    )
    with pytest.raises(TokenizerMismatchError):
        _run(config)
    stats = json.loads((other / "dataset_statistics.json").read_text())
    (other / "dataset_statistics.json").write_text(json.dumps({"a": stats["tabletop"], "b": stats["tabletop"]}))
    with pytest.raises(CheckpointError, match="unnorm_key"):
        load_policy(other)


def test_importing_the_adapter_leaves_the_environment_alone():
    code = (
        "import os; before = dict(os.environ); import opd_core.policies.hf_vla; "
        "changed = {k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k)}; "
        "assert not changed, changed"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
