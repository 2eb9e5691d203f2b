"""The transformers adapter with bimanual (14-D) action statistics: 14 action tokens per step, on the twin env."""

from __future__ import annotations

import pytest
import torch

from hf_models import build_tiny_llava
from opd_core.checkpoint import load_policy
from opd_core.registry import make_env
from opd_core.tokenizer import ActionTokenizer

TASKS = ["twin/handover_block", "twin/lift_pot"]


@pytest.fixture(scope="module")
def bimanual_vla(tmp_path_factory):
    tokenizer = ActionTokenizer((-1.0,) * 14, (1.0,) * 14)
    return build_tiny_llava(tmp_path_factory.mktemp("hf") / "bimanual", hidden=32, layers=1, tokenizer=tokenizer)


@pytest.mark.parametrize("decoding", ["autoregressive", "parallel"])
def test_a_fourteen_dim_transformers_vla_scores_and_samples_fourteen_action_tokens(bimanual_vla, decoding):
    policy = load_policy(bimanual_vla, hf_settings={"decoding": decoding})
    assert policy.tokenizer.dim == 14
    obs = make_env("twin", 2).reset(TASKS, [0, 1])
    bins, logp, logits = policy.sample(obs, 1.0, torch.Generator().manual_seed(0))
    assert bins.shape == (2, 14) and logp.shape == (2, 14) and logits.shape == (2, 14, 256)
    if decoding == "autoregressive":  # teacher forcing scores what sampling saw, token by token
        assert torch.allclose(policy(obs, bins), logits, atol=1e-5)
    else:
        assert policy(obs).shape == (2, 14, 256)
