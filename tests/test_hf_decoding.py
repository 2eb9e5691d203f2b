"""Cached autoregressive decoding of transformers VLAs: the same bins, log-probs and logits as the uncached loop,
for one prompt pass plus one incremental step per action token; realistic layouts (reduced depth and width here,
full size in bench/bench_transformers.py) through rollout, labeling and a LoRA update."""

import pytest
import torch

from hf_models import build_openvla_like, build_paligemma, build_tiny_llava
from opd_core.checkpoint import load_policy
from opd_core.envs.tabletop.sim import TabletopVecEnv
from opd_core.sinks import LocalDirSink
from opd_core.train import train
from tinyrun import TASKS, tiny_config

REDUCED = {"vision_hidden": 64, "vision_layers": 2, "hidden": 128, "layers": 2}
"""The realistic families at CI size: same classes, layout and vocabulary conventions, fewer and narrower layers."""

BUILDERS = {
    "tiny_llava": lambda path: build_tiny_llava(path, hidden=32, layers=1),
    "openvla_like": lambda path: build_openvla_like(path, **REDUCED),
    "paligemma": lambda path: build_paligemma(path, **REDUCED),
}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def model_dir(request, tmp_path_factory):
    return BUILDERS[request.param](tmp_path_factory.mktemp(request.param) / "model")


def _obs(n=3):
    return TabletopVecEnv(n).reset((TASKS * n)[:n], list(range(n)))


def _sample(policy, obs, cache, seed, temperature=1.0):
    policy.settings.kv_cache = cache
    return policy.sample(obs, temperature, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("chunk_size", [1, 2])
def test_cached_sampling_equals_the_uncached_loop(model_dir, chunk_size):
    policy = load_policy(model_dir, hf_settings={"chunk_size": chunk_size})
    obs = _obs()
    for seed, temperature in ((0, 1.0), (1, 1.0), (2, 0.0)):
        bins, logp, logits = _sample(policy, obs, "on", seed, temperature)
        ref_bins, ref_logp, ref_logits = _sample(policy, obs, "off", seed, temperature)
        assert bins.shape == (3, 7 * chunk_size) and logits.shape == (3, 7 * chunk_size, 256)
        assert torch.equal(bins, ref_bins)
        assert torch.allclose(logp, ref_logp, atol=1e-5) and torch.allclose(logits, ref_logits, atol=1e-5)
        # the teacher's and the update's scoring pass (one teacher-forced forward) sees what sampling saw
        assert torch.allclose(policy(obs, bins), logits, atol=1e-5)


def _forward_calls(policy):
    """Record (input length, batch, had a cache) of every call of the underlying transformers model."""
    calls = []

    def hook(module, args, kwargs):
        ids = kwargs["input_ids"]
        calls.append((ids.shape[1], ids.shape[0], kwargs.get("past_key_values") is not None))

    return calls, policy.model.register_forward_pre_hook(hook, with_kwargs=True)


def test_the_prompt_is_encoded_once_and_each_token_is_one_step(model_dir):
    policy = load_policy(model_dir)
    obs = _obs()
    prompt_len = policy._inputs(obs)["input_ids"].shape[1]
    calls, handle = _forward_calls(policy)
    try:
        _sample(policy, obs, "on", 0)
        assert calls == [(prompt_len, 3, False)] + [(1, 3, True)] * 6
        calls.clear()
        _sample(policy, obs, "off", 0)
        assert [c[0] for c in calls] == [prompt_len + d for d in range(7)], "uncached: the whole prompt each token"
        calls.clear()
        policy(obs, torch.zeros(3, 7, dtype=torch.long))
        assert calls == [(prompt_len + 6, 3, False)], "scoring stays one teacher-forced forward"
    finally:
        handle.remove()


def test_gradient_checkpointing_in_training_mode_still_samples_with_the_cache(tmp_path):
    path = build_tiny_llava(tmp_path / "tiny", hidden=32, layers=1)
    policy = load_policy(path, hf_settings={"gradient_checkpointing": True})
    policy.train()
    obs = _obs()
    calls, handle = _forward_calls(policy)
    try:
        bins, _, logits = _sample(policy, obs, "auto", 0)
    finally:
        handle.remove()
    assert len(calls) == 7 and calls[-1][0] == 1 and policy.model.training
    assert torch.equal(bins, _sample(policy, obs, "off", 0)[0])


def _run(config):
    sink = LocalDirSink(config.out_dir)
    try:
        return train(config, sink)
    finally:
        sink.close()


def test_realistic_layouts_go_through_rollout_labeling_and_a_lora_update(tmp_path):
    student = build_paligemma(tmp_path / "paligemma", **REDUCED)
    teacher = build_openvla_like(tmp_path / "openvla_like", **REDUCED)
    before = {
        n: p.detach().clone()
        for n, p in load_policy(student, hf_settings={"lora_rank": 2}).named_parameters()
        if "lora_B" in n
    }
    config = tiny_config(
        tmp_path / "run",
        pipeline="opd",
        objective="reverse_kl_exact",
        hf_lora_rank=2,
        student_checkpoint=str(student),
        teacher_checkpoint=str(teacher),
        steps=1,
        lr=1e-2,
        batch_tasks=1,
        group_size=2,
        eval_every=0,
        save_every=1,
        max_episode_steps=2,
    )
    assert _run(config).status == "finished"
    trained = load_policy(tmp_path / "run/checkpoints/step_1")
    after = dict(trained.named_parameters())
    assert before and all(not torch.equal(before[n], after[n].detach()) for n in before), "LoRA B matrices trained"
    assert all("lora_" in n for n, p in trained.named_parameters() if p.requires_grad)
