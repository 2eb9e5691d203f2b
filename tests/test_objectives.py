"""Tests for opd_core.objectives: values AND gradients against analytic / exact-enumeration references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from opd_core import objectives as obj
from opd_core.config import ConfigError, RunConfig

DT = torch.float64
K = 5  # bins
D = 2  # action dimensions


def _logits(n: int, d: int = D, k: int = K, seed: int = 0, scale: float = 1.5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(n, d, k, generator=g, dtype=DT)).requires_grad_(True)


def _actions(n: int, d: int = D, k: int = K, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, k, (n, d), generator=g)


def _grad(loss: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    (g,) = torch.autograd.grad(loss, x)
    return g


def _enumerate(s_leaf: torch.Tensor, t: torch.Tensor):
    """Every bin of every (state, dim) as its own row: S states -> S*K rows, each dim enumerated independently.

    Row (s, a) has action a in every dimension, logits of state s, weight pi_s(a) (detached) per dimension,
    so the weighted mean over rows equals the exact expectation under the student, averaged over (state, dim).
    """
    s_states, d, k = s_leaf.shape
    logits = s_leaf.unsqueeze(1).expand(s_states, k, d, k).reshape(s_states * k, d, k)
    teacher = t.unsqueeze(1).expand(s_states, k, d, k).reshape(s_states * k, d, k)
    actions = torch.arange(k).repeat(s_states).unsqueeze(-1).expand(s_states * k, d)
    logp = obj.token_logprobs(logits, actions).detach()
    return logits, teacher, actions, logp, logp.exp()


# ------------------------------------------------------------------------------------------- basics


def test_log_probs_and_token_logprobs():
    s = _logits(3)
    lp = obj.log_probs(s)
    torch.testing.assert_close(lp.exp().sum(-1), torch.ones(3, D, dtype=DT))
    a = _actions(3)
    tok = obj.token_logprobs(s, a)
    assert tok.shape == (3, D)
    for n in range(3):
        for d in range(D):
            assert tok[n, d].item() == pytest.approx(lp[n, d, a[n, d]].item())


def test_entropy_known_values():
    uniform = torch.zeros(2, D, K, dtype=DT)
    torch.testing.assert_close(obj.entropy(uniform), torch.full((2, D), math.log(K), dtype=DT))
    peaked = torch.full((1, 1, K), -torch.inf, dtype=DT)
    peaked[0, 0, 2] = 0.0  # a point mass: entropy 0, and no NaN from 0 * log 0
    assert obj.entropy(peaked).item() == 0.0
    s = _logits(4)
    p = torch.softmax(s, -1)
    torch.testing.assert_close(obj.entropy(s), -(p * p.log()).sum(-1))


# --------------------------------------------------------------------------------------- reverse_kl


def test_reverse_kl_enumeration_equals_exact_kl_gradient():
    """Policy-gradient identity: E_{a~pi_s}[-r(a) grad log pi_s(a)] == grad KL(pi_s || pi_t)."""
    s = _logits(3, seed=10)
    t = _logits(3, seed=11).detach()
    logits, teacher, actions, logp, probs = _enumerate(s, t)
    g_pg = _grad(obj.reverse_kl(logits, actions, teacher, logp, mask=probs), s)
    g_exact = _grad(obj.reverse_kl_exact(s, t, mask=torch.ones(3, dtype=DT)), s)
    torch.testing.assert_close(g_pg, g_exact, rtol=1e-10, atol=1e-12)


def test_reverse_kl_enumeration_value_is_minus_expected_reward():
    s = _logits(2, seed=12)
    t = _logits(2, seed=13).detach()
    logits, teacher, actions, logp, probs = _enumerate(s, t)
    # at ratio 1 the loss is -E[r] = KL(pi_s || pi_t): same value as the exact objective
    loss = obj.reverse_kl(logits, actions, teacher, logp, mask=probs)
    torch.testing.assert_close(loss, obj.reverse_kl_exact(s, t))


def test_reverse_kl_gradient_does_not_flow_through_reward():
    s = _logits(4, seed=14)
    t = _logits(4, seed=15).detach()
    a = _actions(4, seed=16)
    mask = torch.tensor([1.0, 0.5, 2.0, 1.0], dtype=DT)
    lp = obj.token_logprobs(s, a).detach()
    behaviour = lp - 0.05  # ratio = e^0.05 ~ 1.051, inside the clip range
    g = _grad(obj.reverse_kl(s, a, t, behaviour, mask=mask), s)
    # manual: d/ds [-w ratio r] = -w * ratio * r * (onehot(a) - softmax(s)), reward held constant
    r = -(lp - obj.token_logprobs(t, a))
    ratio = torch.exp(lp - behaviour)
    w = mask[:, None].expand(4, D)
    score = F.one_hot(a, K).to(DT) - torch.softmax(s, -1).detach()
    expected = -(w * ratio * r)[..., None] * score / w.sum()
    torch.testing.assert_close(g, expected)


def test_reverse_kl_manual_policy_gradient_formula():
    """Gradient equals -sum_a pi(a) r_a grad log pi(a) (autograd on a surrogate with constant pi and r)."""
    s = _logits(1, seed=17)
    t = _logits(1, seed=18).detach()
    logits, teacher, actions, logp, probs = _enumerate(s, t)
    g = _grad(obj.reverse_kl(logits, actions, teacher, logp, mask=probs), s)
    logp_live = obj.token_logprobs(logits, actions)
    r = -(logp - obj.token_logprobs(teacher, actions))
    manual = -(probs * r * logp_live).sum() / probs.sum()
    torch.testing.assert_close(g, _grad(manual, s))


def test_reverse_kl_monte_carlo_matches_exact_gradient():
    s = _logits(1, seed=19, scale=1.0)
    t = _logits(1, seed=20, scale=1.0).detach()
    m = 200_000
    g_gen = torch.Generator().manual_seed(21)
    p = torch.softmax(s.detach()[0], -1)  # [D, K]
    actions = torch.stack([torch.multinomial(p[d], m, replacement=True, generator=g_gen) for d in range(D)], -1)
    logits = s.expand(m, D, K)
    behaviour = obj.token_logprobs(logits, actions).detach()
    g_mc = _grad(obj.reverse_kl(logits, actions, t.expand(m, D, K), behaviour, mask=torch.ones(m, dtype=DT)), s)
    g_exact = _grad(obj.reverse_kl_exact(s, t), s)
    # per-sample gradient entries are O(1); the MC std error at 200k samples is ~3e-3
    torch.testing.assert_close(g_mc, g_exact, rtol=0, atol=2e-2)
    assert g_exact.abs().max() > 0.05  # the check is not trivially passing on a zero gradient


def test_reverse_kl_clipping_zeroes_outward_gradient():
    s = _logits(1, d=1, seed=22)
    # teacher strongly prefers bin 0 -> positive reward for action 0 pushes its ratio up
    t = torch.tensor([[[5.0, -5.0, -5.0, -5.0, -5.0]]], dtype=DT)
    a = torch.zeros(1, 1, dtype=torch.long)
    lp = obj.token_logprobs(s, a).detach()
    r = -(lp - obj.token_logprobs(t, a))
    assert r.item() > 0
    behaviour = lp - 0.5  # ratio = e^0.5 > 1.2, advantage > 0 pushes further out: clipped
    assert torch.all(_grad(obj.reverse_kl(s, a, t, behaviour, clip_eps=0.2), s) == 0)
    # clip_eps = 0 disables clipping: gradient flows again
    assert _grad(obj.reverse_kl(s, a, t, behaviour, clip_eps=0.0), s).abs().sum() > 0
    # ratio below 1-eps with positive advantage moves inward: not clipped
    assert _grad(obj.reverse_kl(s, a, t, lp + 0.5, clip_eps=0.2), s).abs().sum() > 0


# --------------------------------------------------------------------------------- reverse_kl_exact


def test_reverse_kl_exact_value_and_gradient():
    s = _logits(3, seed=30)
    t = _logits(3, seed=31).detach()
    p, q = torch.softmax(s, -1).detach(), torch.softmax(t, -1)
    kl = (p * (p.log() - q.log())).sum(-1)  # [N, D]
    loss = obj.reverse_kl_exact(s, t, mask=torch.ones(3, dtype=DT))
    torch.testing.assert_close(loss.detach(), kl.mean())
    # closed form: d KL / d s_j = p_j (log p_j - log q_j - KL)
    expected = p * (p.log() - q.log() - kl[..., None]) / (3 * D)
    torch.testing.assert_close(_grad(loss, s), expected)


def test_reverse_kl_exact_zero_when_equal():
    s = _logits(2, seed=32)
    loss = obj.reverse_kl_exact(s, s.detach().clone())
    assert abs(loss.item()) < 1e-12
    assert _grad(loss, s).abs().max() < 1e-12


def test_teacher_receives_no_gradient():
    s, t = _logits(2, seed=33), _logits(2, seed=34)
    a = _actions(2)
    lp = obj.token_logprobs(s, a).detach()
    for name in obj.OBJECTIVES:
        loss = obj.distillation_loss(name, s, a, t, lp, clip_eps=0.2)
        g_s, g_t = torch.autograd.grad(loss, (s, t), allow_unused=True)
        assert g_t is None or torch.all(g_t == 0), name
        assert g_s.abs().sum() > 0, name


# --------------------------------------------------------------------------------- forward_kl, hard_ce


def test_forward_kl_value_and_gradient():
    s = _logits(3, seed=40)
    t = _logits(3, seed=41).detach()
    p, q = torch.softmax(s, -1).detach(), torch.softmax(t, -1)
    loss = obj.forward_kl(s, t, mask=torch.ones(3, dtype=DT))
    torch.testing.assert_close(loss.detach(), (q * (q.log() - p.log())).sum(-1).mean())
    torch.testing.assert_close(_grad(loss, s), (p - q) / (3 * D))


def test_hard_ce_gradient():
    s = _logits(3, seed=42)
    t = _logits(3, seed=43).detach()
    p = torch.softmax(s, -1).detach()
    onehot = F.one_hot(t.argmax(-1), K).to(DT)
    loss = obj.hard_ce(s, t, mask=torch.ones(3, dtype=DT))
    torch.testing.assert_close(loss.detach(), -(onehot * p.log()).sum(-1).mean())
    torch.testing.assert_close(_grad(loss, s), (p - onehot) / (3 * D))


# ---------------------------------------------------------------------------------------------- SFT


def test_smoothed_targets_properties():
    bins = torch.tensor([[0, 2], [4, 3]])
    for sigma in (0.5, 1.0, 3.0):
        tg = obj.smoothed_targets(bins, K, sigma, dtype=DT)
        assert tg.shape == (2, 2, K)
        torch.testing.assert_close(tg.sum(-1), torch.ones(2, 2, dtype=DT))
        assert torch.equal(tg.argmax(-1), bins)
        assert torch.all(tg > 0)
    centred = obj.smoothed_targets(torch.tensor([[2]]), K, 1.0, dtype=DT)[0, 0]
    torch.testing.assert_close(centred, centred.flip(0))  # symmetric about the target
    raw = torch.exp(-0.5 * (torch.arange(K, dtype=DT) - 2.0) ** 2)
    torch.testing.assert_close(centred, raw / raw.sum())
    assert torch.equal(obj.smoothed_targets(bins, K, 0.0, dtype=DT), F.one_hot(bins, K).to(DT))
    with pytest.raises(ValueError):
        obj.smoothed_targets(bins, K, -1.0)


@pytest.mark.parametrize("sigma", [0.0, 0.7, 2.0])
def test_sft_gradient(sigma: float):
    s = _logits(3, seed=50)
    bins = _actions(3, seed=51)
    p = torch.softmax(s, -1).detach()
    target = F.one_hot(bins, K).to(DT) if sigma == 0 else obj.smoothed_targets(bins, K, sigma, dtype=DT)
    loss = obj.sft(s, bins, mask=torch.ones(3, dtype=DT), label_sigma=sigma)
    torch.testing.assert_close(loss.detach(), -(target * p.log()).sum(-1).mean())
    torch.testing.assert_close(_grad(loss, s), (p - target) / (3 * D))


# --------------------------------------------------------------------------------------------- GRPO


def test_group_advantages_known_values():
    success = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    adv = obj.group_advantages(success, eps=1e-6)
    torch.testing.assert_close(adv[0], torch.tensor([1.0, -1.0, -1.0, 1.0]) * 0.5 / (0.5 + 1e-6))
    std = math.sqrt(0.25 * 0.75)  # population std of one success in four
    expected = torch.tensor([0.75, -0.25, -0.25, -0.25]) / (std + 1e-6)
    torch.testing.assert_close(adv[1], expected)
    assert torch.equal(adv[2], torch.zeros(4)) and torch.equal(adv[3], torch.zeros(4))
    assert not torch.isnan(adv).any()
    assert not torch.isnan(obj.group_advantages(torch.ones(2, 1))).any()  # G == 1 also safe


def test_group_advantages_constant_non_binary_group_is_exactly_zero():
    adv = obj.group_advantages(torch.full((1, 3), 0.1, dtype=DT))
    assert torch.equal(adv, torch.zeros(1, 3, dtype=DT))


def test_grpo_gradient_at_ratio_one():
    s = _logits(4, seed=60)
    a = _actions(4, seed=61)
    adv = torch.tensor([1.5, -0.5, 0.0, -2.0], dtype=DT)
    lp = obj.token_logprobs(s, a).detach()
    g = _grad(obj.grpo(s, a, lp, adv, mask=torch.ones(4, dtype=DT)), s)
    manual = -(adv[:, None] * obj.token_logprobs(s, a)).mean()
    torch.testing.assert_close(g, _grad(manual, s))
    score = F.one_hot(a, K).to(DT) - torch.softmax(s, -1).detach()
    torch.testing.assert_close(g, -adv[:, None, None] * score / (4 * D))


def test_grpo_clipping_per_token():
    s = _logits(4, seed=62)
    a = _actions(4, seed=63)
    lp = obj.token_logprobs(s, a).detach()
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=DT)
    # rows 0,1: ratio pushed outward by the advantage (clipped); rows 2,3: advantage pulls back inward
    shift = torch.tensor([-0.5, 0.5, 0.5, -0.5], dtype=DT)[:, None]  # ratio = exp(-shift)
    g = _grad(obj.grpo(s, a, lp + shift, adv, clip_eps=0.2), s)
    assert torch.all(g[:2] == 0)
    assert torch.all(g[2:].abs().sum(-1) > 0)
    ratio = torch.exp(-shift)
    score = F.one_hot(a, K).to(DT) - torch.softmax(s, -1).detach()
    torch.testing.assert_close(g[2:], (-(adv[:, None] * ratio)[..., None] * score / (4 * D))[2:])


# --------------------------------------------------------------------------------------------- masks


def _all_losses(s, a, t, lp, mask):
    yield "reverse_kl", obj.reverse_kl(s, a, t, lp, mask=mask)
    yield "reverse_kl_exact", obj.reverse_kl_exact(s, t, mask=mask)
    yield "forward_kl", obj.forward_kl(s, t, mask=mask)
    yield "hard_ce", obj.hard_ce(s, t, mask=mask)
    yield "grpo", obj.grpo(s, a, lp, torch.linspace(-1, 1, s.shape[0], dtype=DT), mask=mask)
    yield "sft", obj.sft(s, a, mask=mask, label_sigma=1.0)


@pytest.mark.parametrize("mask_dims", [1, 2])
def test_padding_contributes_nothing(mask_dims: int):
    n_valid, n_pad = 3, 2
    s_valid = _logits(n_valid, seed=70)
    t = _logits(n_valid + n_pad, seed=71).detach()
    a = _actions(n_valid + n_pad, seed=72)
    pad = torch.full((n_pad, D, K), 40.0, dtype=DT).requires_grad_(True)  # garbage logits in padded rows
    s = torch.cat([s_valid, pad])
    lp = obj.token_logprobs(s, a).detach()
    mask = torch.cat([torch.ones(n_valid, dtype=DT), torch.zeros(n_pad, dtype=DT)])
    if mask_dims == 2:
        mask = mask[:, None].expand(-1, D)
    padded = dict(_all_losses(s, a, t, lp, mask))
    clean = dict(_all_losses(s_valid, a[:n_valid], t[:n_valid], lp[:n_valid], None))
    for name, loss in padded.items():
        g_valid, g_pad = torch.autograd.grad(loss, (s_valid, pad))
        if name == "grpo":  # advantages are laid out over all rows, compare gradients only through zero padding
            assert torch.all(g_pad == 0), name
            continue
        torch.testing.assert_close(loss, clean[name], msg=name)
        torch.testing.assert_close(g_valid, _grad(clean[name], s_valid), msg=name)
        assert torch.all(g_pad == 0), name


def test_per_dimension_mask_and_all_zero_mask():
    s = _logits(2, seed=73)
    t = _logits(2, seed=74).detach()
    mask = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=DT)
    p, q = torch.softmax(s, -1).detach(), torch.softmax(t, -1)
    per_tok = (p * (p.log() - q.log())).sum(-1)
    torch.testing.assert_close(obj.reverse_kl_exact(s, t, mask=mask).detach(), (per_tok * mask).sum() / 3)
    zero = obj.forward_kl(s, t, mask=torch.zeros(2, dtype=DT))
    assert zero.item() == 0.0
    assert torch.all(_grad(zero, s) == 0)


# ------------------------------------------------------------------------------------ stats, dispatch


def test_distribution_stats_known_distributions():
    n = 3
    student = torch.zeros(n, D, K, dtype=DT, requires_grad=True)  # uniform
    stats = obj.distribution_stats(student, None, mask=torch.ones(n, dtype=DT))
    assert {key for key in stats if "/" not in key} == {"entropy"}  # and one entropy/<dim> per dimension
    assert stats["entropy"] == pytest.approx(math.log(K))
    assert isinstance(stats["entropy"], float)

    teacher = torch.zeros(n, D, K, dtype=DT)
    teacher[..., 0] = 3.0
    student2 = torch.zeros(n, D, K, dtype=DT)
    student2[0, :, 0] = 1.0  # state 0: argmax bin 0, agrees with the teacher
    student2[1:, :, 1] = 1.0  # states 1, 2: argmax bin 1, disagree
    stats = obj.distribution_stats(student2, teacher)
    assert {key for key in stats if "/" not in key} == {
        "entropy",
        "teacher_entropy",
        "reverse_kl",
        "forward_kl",
        "teacher_agreement",
    }
    assert all(isinstance(v, float) for v in stats.values())
    assert stats["teacher_agreement"] == pytest.approx(1 / 3)
    assert stats["teacher_entropy"] == pytest.approx(obj.entropy(teacher).mean().item())
    assert stats["reverse_kl"] == pytest.approx(obj.reverse_kl_exact(student2, teacher).item())
    assert stats["forward_kl"] == pytest.approx(obj.forward_kl(student2, teacher).item())
    # mask weighting: only state 0 counted -> full agreement
    only0 = obj.distribution_stats(student2, teacher, mask=torch.tensor([1.0, 0.0, 0.0], dtype=DT))
    assert only0["teacher_agreement"] == pytest.approx(1.0)
    same = obj.distribution_stats(teacher, teacher)
    assert same["reverse_kl"] == pytest.approx(0.0, abs=1e-12) and same["teacher_agreement"] == 1.0


def test_distillation_loss_dispatch():
    s = _logits(3, seed=80)
    t = _logits(3, seed=81).detach()
    a = _actions(3, seed=82)
    lp = obj.token_logprobs(s, a).detach() - 0.1
    mask = torch.tensor([1.0, 1.0, 0.0], dtype=DT)
    assert set(obj.OBJECTIVES) == {"reverse_kl", "reverse_kl_exact", "forward_kl", "hard_ce"}
    config = RunConfig(teacher_checkpoint="teacher")  # the config validates against the same list
    assert config.replace(objective="hard_ce").validate().objective == "hard_ce"
    with pytest.raises(ConfigError, match="objective"):
        config.replace(objective="bogus").validate()
    torch.testing.assert_close(
        obj.distillation_loss("reverse_kl", s, a, t, lp, mask=mask, clip_eps=0.3),
        obj.reverse_kl(s, a, t, lp, mask=mask, clip_eps=0.3),
    )
    closed_form = {"reverse_kl_exact": obj.reverse_kl_exact, "forward_kl": obj.forward_kl, "hard_ce": obj.hard_ce}
    for name, loss in closed_form.items():
        torch.testing.assert_close(obj.distillation_loss(name, s, a, t, lp, mask=mask), loss(s, t, mask=mask))
    with pytest.raises(ValueError, match="unknown objective 'bogus'"):
        obj.distillation_loss("bogus", s, a, t, lp, mask=mask)


def test_distribution_stats_per_action_dimension():
    n, chunk = 5, 2
    student = torch.randn(n, chunk * 7, 8, dtype=DT, generator=torch.Generator().manual_seed(92))
    teacher = torch.randn(n, chunk * 7, 8, dtype=DT, generator=torch.Generator().manual_seed(93))
    stats = obj.distribution_stats(student, teacher, action_dim=7)
    names = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
    ent = obj.entropy(student).view(n, chunk, 7)
    rkl = obj._plogp_sum(obj.log_probs(student), obj.log_probs(teacher)).view(n, chunk, 7)
    fkl = obj._plogp_sum(obj.log_probs(teacher), obj.log_probs(student)).view(n, chunk, 7)
    for k, name in enumerate(names):  # averaged over states and the chunk's steps
        assert stats[f"entropy/{name}"] == pytest.approx(ent[:, :, k].mean().item())
        assert stats[f"reverse_kl/{name}"] == pytest.approx(rkl[:, :, k].mean().item())
        assert stats[f"forward_kl/{name}"] == pytest.approx(fkl[:, :, k].mean().item())
    assert stats["reverse_kl"] == pytest.approx(sum(stats[f"reverse_kl/{d}"] for d in names) / 7)
    assert stats["forward_kl/gripper"] > 0 and stats["entropy/dx"] > 0
    # a mask weighs states in every dimension; other action sizes get generic names
    mask = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0], dtype=DT)
    only0 = obj.distribution_stats(student[:, :3], None, mask=mask, action_dim=3)
    assert set(only0) == {"entropy", "entropy/d0", "entropy/d1", "entropy/d2"}
    assert only0["entropy/d1"] == pytest.approx(obj.entropy(student[:1, 1:2]).item())
    with pytest.raises(ValueError, match="whole chunks"):
        obj.distribution_stats(student[:, :10], None, action_dim=7)
