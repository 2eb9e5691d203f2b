"""Training objectives for tokenized-action VLA policies (pure functions on torch tensors).

Actions are tokenized OpenVLA-style: each of D action dimensions is one of K bins, so a policy's output at
N visited states is a logits tensor of shape [N, D, K] and a sampled action is a long tensor [N, D].

Every loss is a weighted mean over (state, dimension) tokens, sum(w * per_token) / sum(w), where w is the
optional keyword `mask` broadcast to [N, D] (None: every token weighs 1). The mask is 1 for valid states and 0 for
padding; any non-negative weights work.
Masks and teacher logits are treated as constants (detached): only the student is trained.

Objectives (paper "VLA-OPD", Sec. 2.3 and 3.4, Algorithm 1):
- `reverse_kl`: the paper's method. Policy gradient on sampled actions with the dense per-token reward
  r = -(log pi_s(a) - log pi_t(a)) (student term stop-gradient), PPO-clipped when a batch is reused.
- `reverse_kl_exact`: the same divergence KL(pi_s || pi_t) computed in closed form over the K bins.
- `forward_kl`: KL(pi_t || pi_s) with soft teacher targets (mode-covering distillation).
- `hard_ce`: cross-entropy against the teacher's argmax bin (DAgger).
- `grpo`: outcome-reward RL with group-normalised advantages (`group_advantages`).
- `sft`: offline behaviour cloning against (optionally Gaussian-smoothed) target bins.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from opd_core import registry

__all__ = [
    "log_probs",
    "token_logprobs",
    "entropy",
    "reverse_kl",
    "reverse_kl_exact",
    "forward_kl",
    "hard_ce",
    "group_advantages",
    "grpo",
    "smoothed_targets",
    "sft",
    "distribution_stats",
    "OBJECTIVES",
    "distillation_loss",
]


# --------------------------------------------------------------------------------------------- basics


def log_probs(logits: Tensor) -> Tensor:
    """Log-probabilities over the K bins of every action dimension: log_softmax over the last axis."""
    return torch.log_softmax(logits, dim=-1)


def token_logprobs(logits: Tensor, actions: Tensor) -> Tensor:
    """log pi(a) for the chosen bin of every (state, dimension): [N, D, K] logits, [N, D] actions -> [N, D]."""
    return log_probs(logits).gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)


def _plogp_sum(logp: Tensor, other_logp: Tensor) -> Tensor:
    """sum_k p_k (log p_k - log q_k) over the last axis, with p = exp(logp).

    Bins with p == 0 contribute 0 (the 0 * log 0 = 0 convention), so -inf logits do not produce NaN values.
    """
    p = logp.exp()
    terms = p * (logp - other_logp)
    return torch.where(p > 0, terms, torch.zeros_like(terms)).sum(-1)


def entropy(logits: Tensor) -> Tensor:
    """Entropy in nats of each dimension's categorical over K bins: [N, D, K] -> [N, D]."""
    logp = log_probs(logits)
    return -_plogp_sum(logp, torch.zeros_like(logp))


def _weights(mask: Tensor | None, like: Tensor) -> Tensor:
    """Broadcast a [N] or [N, D] mask to the [N, D] token grid of `like`, detached, in its dtype.

    Weights are data (validity flags or sampling probabilities), never something to differentiate through.
    """
    if mask is None:
        return torch.ones_like(like)
    w = mask.detach().to(like.dtype)
    if w.dim() == 1:
        w = w.unsqueeze(-1)
    return w.expand_as(like)


def _weighted_mean(per_token: Tensor, mask: Tensor | None) -> Tensor:
    """sum(w * x) / sum(w) over all tokens; 0 (still differentiable) when every weight is 0.

    Padded tokens are zeroed with `where` rather than multiplied by 0 so that garbage values there
    (e.g. NaN/inf from all -inf padding logits) cannot leak into the forward value.
    """
    w = _weights(mask, per_token)
    contrib = torch.where(w != 0, w * per_token, torch.zeros_like(per_token))
    denom = w.sum()
    denom = torch.where(denom > 0, denom, torch.ones_like(denom))  # all-padding batch -> loss 0, not NaN
    return contrib.sum() / denom


def _clipped_surrogate(logp: Tensor, behaviour_logp: Tensor, advantage: Tensor, clip_eps: float) -> Tensor:
    """PPO per-token surrogate min(ratio * A, clip(ratio, 1-eps, 1+eps) * A), ratio = pi(a) / pi_behaviour(a).

    The clip stops a reused batch from pushing a token's ratio further outside [1-eps, 1+eps] in the direction
    its advantage favours; clip_eps <= 0 disables clipping (plain importance-weighted policy gradient).
    """
    ratio = torch.exp(logp - behaviour_logp.detach())
    unclipped = ratio * advantage
    if clip_eps <= 0:
        return unclipped
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantage
    return torch.minimum(unclipped, clipped)


# ------------------------------------------------------------------------------- distillation objectives


def reverse_kl(
    student_logits: Tensor,
    actions: Tensor,
    teacher_logits: Tensor,
    behaviour_logp: Tensor,
    *,
    mask: Tensor | None = None,
    clip_eps: float = 0.2,
) -> Tensor:
    """On-policy reverse-KL distillation (paper eq. 6-7, Algorithm 1): a policy gradient with a dense reward.

    Per token the reward is r = -(log pi_s(a) - log pi_t(a)) with the student term detached (stop-gradient),
    and the raw reward is the advantage (no normalisation). The surrogate is PPO's clipped
    min(ratio * r, clip(ratio) * r) with ratio = exp(log pi_s(a) - behaviour_logp), so a batch can be reused
    for several epochs; loss = -weighted_mean(surrogate). At ratio == 1 (behaviour_logp is the current
    detached log-prob) the gradient is exactly -mean(grad log pi_s(a) * r), whose expectation over
    a ~ pi_s is the gradient of KL(pi_s || pi_t): the score-function identity.
    """
    logp = token_logprobs(student_logits, actions)
    teacher_logp = token_logprobs(teacher_logits.detach(), actions)
    reward = -(logp.detach() - teacher_logp)  # stop-gradient: the reward is a constant, as in eq. 6
    return -_weighted_mean(_clipped_surrogate(logp, behaviour_logp, reward, clip_eps), mask)


def reverse_kl_exact(student_logits: Tensor, teacher_logits: Tensor, *, mask: Tensor | None = None) -> Tensor:
    """Exact reverse KL(pi_s || pi_t) summed over the K bins of each dimension, weighted mean over (state, dim).

    The zero-variance counterpart of `reverse_kl`: same objective, computed in closed form instead of sampled.
    """
    kl = _plogp_sum(log_probs(student_logits), log_probs(teacher_logits.detach()))
    return _weighted_mean(kl, mask)


def forward_kl(student_logits: Tensor, teacher_logits: Tensor, *, mask: Tensor | None = None) -> Tensor:
    """Forward KL(pi_t || pi_s) with the teacher's soft distribution as target (mode-covering distillation).

    Equals soft-target cross-entropy minus the (constant) teacher entropy, so its gradient w.r.t. the student
    logits is softmax(s) - softmax(t) per token.
    """
    kl = _plogp_sum(log_probs(teacher_logits.detach()), log_probs(student_logits))
    return _weighted_mean(kl, mask)


def hard_ce(student_logits: Tensor, teacher_logits: Tensor, *, mask: Tensor | None = None) -> Tensor:
    """Cross-entropy against the teacher's argmax bin (DAgger): discards the teacher's soft probabilities."""
    target = teacher_logits.detach().argmax(dim=-1)
    return _weighted_mean(-token_logprobs(student_logits, target), mask)


# ----------------------------------------------------------------------------------------------- GRPO


def group_advantages(success: Tensor, eps: float = 1e-6) -> Tensor:
    """Group-relative advantages (paper eq. 2): (R - mean_G R) / (std_G R + eps) over the last axis.

    `success` is [B, G] (0/1 outcome rewards of G rollouts per prompt). The std is the population std
    (unbiased=False), the usual GRPO choice; it is also defined for G == 1. A group whose rewards are all equal
    carries no learning signal and gets exactly zero advantage (never NaN).
    """
    r = success.to(torch.get_default_dtype()) if not success.is_floating_point() else success
    mean = r.mean(dim=-1, keepdim=True)
    std = r.std(dim=-1, unbiased=False, keepdim=True)
    adv = (r - mean) / (std + eps)
    constant = (r == r[..., :1]).all(dim=-1, keepdim=True)  # rounding in mean could leave tiny non-zeros
    return torch.where(constant, torch.zeros_like(adv), adv)


def grpo(
    student_logits: Tensor,
    actions: Tensor,
    behaviour_logp: Tensor,
    advantages: Tensor,
    *,
    mask: Tensor | None = None,
    clip_eps: float = 0.2,
) -> Tensor:
    """GRPO / PPO clipped surrogate with a per-state advantage (the trajectory's, broadcast by the caller).

    `advantages` is [N] (or [N, D]); every action dimension of a state shares its advantage.
    loss = -weighted_mean(min(ratio * A, clip(ratio, 1-eps, 1+eps) * A)).
    """
    logp = token_logprobs(student_logits, actions)
    adv = advantages.detach().to(logp.dtype)
    if adv.dim() == 1:
        adv = adv.unsqueeze(-1)
    adv = adv.expand_as(logp)
    return -_weighted_mean(_clipped_surrogate(logp, behaviour_logp, adv, clip_eps), mask)


# ------------------------------------------------------------------------------------------------ SFT


def smoothed_targets(target_bins: Tensor, num_bins: int, sigma: float, dtype: torch.dtype | None = None) -> Tensor:
    """Soft labels over bins: a Gaussian over bin index centred on each target with std `sigma` bins.

    [N, D] long -> [N, D, K] probabilities, normalised over K. Neighbouring bins are nearby actuator values,
    so smoothing rewards near misses; sigma == 0 gives plain one-hot labels.
    """
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    dtype = dtype or torch.get_default_dtype()
    target = target_bins.long()
    if sigma == 0:
        return torch.nn.functional.one_hot(target, num_bins).to(dtype)
    bins = torch.arange(num_bins, device=target.device, dtype=dtype)
    dist = bins - target.unsqueeze(-1).to(dtype)
    return torch.softmax(-0.5 * (dist / sigma) ** 2, dim=-1)  # softmax = exp then normalise, stably


def sft(student_logits: Tensor, target_bins: Tensor, *, mask: Tensor | None = None, label_sigma: float = 0.0) -> Tensor:
    """Offline behaviour cloning: cross-entropy against `smoothed_targets(target_bins, K, label_sigma)`."""
    targets = smoothed_targets(target_bins, student_logits.shape[-1], label_sigma, dtype=student_logits.dtype)
    ce = -(targets * log_probs(student_logits)).sum(-1)
    return _weighted_mean(ce, mask)


# ------------------------------------------------------------------------------------------ diagnostics


ACTION_DIM_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
"""Names of LIBERO's 7 action dimensions (one arm), used in per-dimension metric keys."""


ARM_NAMES = ("left", "right")
"""A bimanual action is one 7-D action per arm, left arm first (the `twin` env, ALOHA-style robots)."""


def action_dim_names(action_dim: int) -> tuple[str, ...]:
    """Metric names of `action_dim` action dimensions: LIBERO's 7 by name, two arms' 14 as `left/dx` ...
    `right/gripper`, any other count as d0, d1, ..."""
    if action_dim == len(ACTION_DIM_NAMES):
        return ACTION_DIM_NAMES
    if action_dim == len(ARM_NAMES) * len(ACTION_DIM_NAMES):
        return tuple(f"{arm}/{name}" for arm in ARM_NAMES for name in ACTION_DIM_NAMES)
    return tuple(f"d{k}" for k in range(action_dim))


def _weighted_mean_per_arm(per_token: Tensor, mask: Tensor | None, action_dim: int) -> Tensor:
    """[N, D] -> [2]: the weighted mean over each arm's tokens (states, chunk steps and that arm's 7 dims)."""
    n = per_token.shape[0]
    w = _weights(mask, per_token)
    arms = len(ARM_NAMES)
    contrib = torch.where(w != 0, w * per_token, torch.zeros_like(per_token)).view(n, -1, arms, action_dim // arms)
    denom = w.reshape(n, -1, arms, action_dim // arms).sum((0, 1, 3))
    return contrib.sum((0, 1, 3)) / torch.where(denom > 0, denom, torch.ones_like(denom))


def _weighted_mean_per_dim(per_token: Tensor, mask: Tensor | None, action_dim: int) -> Tensor:
    """[N, D] -> [action_dim]: the weighted mean of each action dimension over states and chunk steps.

    A chunked policy's D = chunk * action_dim tokens are ordered step by step (dimension fastest)."""
    n, d = per_token.shape
    if d % action_dim:
        raise ValueError(f"{d} tokens per state are not whole chunks of {action_dim} action dimensions")
    w = _weights(mask, per_token)
    contrib = torch.where(w != 0, w * per_token, torch.zeros_like(per_token)).view(n, -1, action_dim).sum((0, 1))
    denom = w.reshape(n, -1, action_dim).sum((0, 1))
    return contrib / torch.where(denom > 0, denom, torch.ones_like(denom))


@torch.no_grad()
def distribution_stats(
    student_logits: Tensor,
    teacher_logits: Tensor | None,
    *,
    mask: Tensor | None = None,
    action_dim: int | None = None,
) -> dict[str, float]:
    """Diagnostics as python floats, each a weighted mean per (state, dim) token (paper Fig. 4 curves).

    Keys: `entropy` (student, nats), and when a teacher is given also `teacher_entropy`, `reverse_kl` and
    `forward_kl` (exact) and `teacher_agreement` (fraction of tokens whose argmax bins agree). Per action dimension
    also `entropy/<dim>`, and with a teacher `reverse_kl/<dim>` and `forward_kl/<dim>` (dims named by
    `action_dim_names`; a chunked policy's steps are averaged); for a 14-D (two-arm) action also the per-arm means
    `entropy/left_arm`, `entropy/right_arm` (and `reverse_kl/...`, `forward_kl/...` with a teacher).
    `action_dim`: dimensions per action (default: every token of a state is one dimension).
    """
    student_entropy = entropy(student_logits)
    stats = {"entropy": _weighted_mean(student_entropy, mask).item()}
    per_dim = {"entropy": student_entropy}
    if teacher_logits is not None:
        agree = (student_logits.argmax(-1) == teacher_logits.argmax(-1)).to(student_logits.dtype)
        student_logp, teacher_logp = log_probs(student_logits), log_probs(teacher_logits.detach())
        per_dim["reverse_kl"] = _plogp_sum(student_logp, teacher_logp)  # what reverse_kl_exact averages
        per_dim["forward_kl"] = _plogp_sum(teacher_logp, student_logp)  # what forward_kl averages
        stats["teacher_entropy"] = _weighted_mean(entropy(teacher_logits), mask).item()
        stats["reverse_kl"] = _weighted_mean(per_dim["reverse_kl"], mask).item()
        stats["forward_kl"] = _weighted_mean(per_dim["forward_kl"], mask).item()
        stats["teacher_agreement"] = _weighted_mean(agree, mask).item()
    if student_logits.shape[0] == 0:
        return stats
    action_dim = action_dim or student_logits.shape[1]
    names = action_dim_names(action_dim)
    for key, per_token in per_dim.items():
        for name, value in zip(names, _weighted_mean_per_dim(per_token, mask, action_dim).tolist()):
            stats[f"{key}/{name}"] = value
        if action_dim == len(ARM_NAMES) * len(ACTION_DIM_NAMES):  # per-arm diagnostics of a bimanual policy
            for arm, value in zip(ARM_NAMES, _weighted_mean_per_arm(per_token, mask, action_dim).tolist(), strict=True):
                stats[f"{key}/{arm}_arm"] = value
    return stats


# ------------------------------------------------------------------------------------------- dispatch
# Every distillation objective in one form, loss(student_logits, teacher_logits, actions, behaviour_logp, *, mask,
# clip_eps): the table `distillation_loss` dispatches through (`opd_core.registry.OBJECTIVES`, the one list of
# objective names, which the config validates against without importing torch). Closed-form objectives need no
# samples and ignore actions, behaviour_logp and clip_eps.


def sampled_reverse_kl(
    student_logits: Tensor,
    teacher_logits: Tensor,
    actions: Tensor,
    behaviour_logp: Tensor,
    *,
    mask: Tensor | None = None,
    clip_eps: float = 0.2,
) -> Tensor:
    """`reverse_kl` in the table's form."""
    return reverse_kl(student_logits, actions, teacher_logits, behaviour_logp, mask=mask, clip_eps=clip_eps)


def _on_logits(loss: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """`loss(student_logits, teacher_logits, mask=)` in the table's form (it uses no sampled actions)."""

    def objective(
        student_logits: Tensor,
        teacher_logits: Tensor,
        actions: Tensor | None = None,
        behaviour_logp: Tensor | None = None,
        *,
        mask: Tensor | None = None,
        clip_eps: float = 0.2,
    ) -> Tensor:
        return loss(student_logits, teacher_logits, mask=mask)

    objective.__doc__ = f"`{loss.__name__}` in the table's form."
    return objective


exact_reverse_kl = _on_logits(reverse_kl_exact)
soft_forward_kl = _on_logits(forward_kl)
argmax_ce = _on_logits(hard_ce)


OBJECTIVES = registry.OBJECTIVES
"""The table of distillation objectives by name (`opd_core.registry.OBJECTIVES`)."""


def distillation_loss(
    name: str,
    student_logits: Tensor,
    actions: Tensor,
    teacher_logits: Tensor,
    behaviour_logp: Tensor,
    *,
    mask: Tensor | None = None,
    clip_eps: float = 0.2,
) -> Tensor:
    """The distillation objective `name` from the table (sampled ones use actions, behaviour_logp and clip_eps)."""
    return OBJECTIVES.get(name)(student_logits, teacher_logits, actions, behaviour_logp, mask=mask, clip_eps=clip_eps)
