"""Policies behind one interface: an observation batch in, per-dimension action logits [B, 7, 256] out."""

from opd_core.policies.base import Policy
from opd_core.registry import build_policy, register_policy

__all__ = ["Policy", "build_policy", "register_policy"]
