"""OpenVLA-style action tokenizer: per-dimension q01/q99 normalisation to [-1, 1], 256 uniform bins.

The statistics travel with every checkpoint. Two policies can only be compared token by token (the KL target of
distillation) when their statistics agree, so `check_compatible` refuses a mismatch loudly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opd_core.errors import TokenizerMismatchError

NUM_BINS = 256
ACTION_DIM = 7
DIM_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")


@dataclass(frozen=True)
class ActionTokenizer:
    q01: tuple[float, ...]
    q99: tuple[float, ...]
    num_bins: int = NUM_BINS
    mask: tuple[bool, ...] | None = None
    """OpenVLA's per-dimension normalisation mask: False leaves that dimension as is (e.g. the gripper)."""

    @classmethod
    def fit(cls, actions: np.ndarray, num_bins: int = NUM_BINS) -> ActionTokenizer:
        """Statistics from a [T, D] array of demonstration actions (1st and 99th percentiles per dimension)."""
        actions = np.asarray(actions, dtype=np.float64).reshape(-1, actions.shape[-1])
        q01 = np.quantile(actions, 0.01, axis=0)
        q99 = np.quantile(actions, 0.99, axis=0)
        return cls(tuple(float(v) for v in q01), tuple(float(v) for v in q99), num_bins)

    @classmethod
    def identity(cls, dim: int = ACTION_DIM, num_bins: int = NUM_BINS) -> ActionTokenizer:
        """Actions already in [-1, 1] (the built-in simulator's native range)."""
        return cls((-1.0,) * dim, (1.0,) * dim, num_bins)

    @property
    def dim(self) -> int:
        return len(self.q01)

    def _range(self) -> tuple[np.ndarray, np.ndarray]:
        low, high = np.array(self.q01), np.array(self.q99)
        # A constant dimension (q01 == q99) would divide by zero; treat it as already normalised.
        keep_raw = (high - low) < 1e-8
        if self.mask is not None:
            keep_raw |= ~np.array(self.mask, dtype=bool)
        return np.where(keep_raw, -1.0, low), np.where(keep_raw, 1.0, high)

    def normalize(self, actions: np.ndarray) -> np.ndarray:
        low, high = self._range()
        return np.clip(2.0 * (np.asarray(actions, dtype=np.float64) - low) / (high - low) - 1.0, -1.0, 1.0)

    def unnormalize(self, normalized: np.ndarray) -> np.ndarray:
        low, high = self._range()
        return (np.asarray(normalized, dtype=np.float64) + 1.0) / 2.0 * (high - low) + low

    def bin_centers(self) -> np.ndarray:
        """Normalised value of each bin's centre, shape [num_bins]."""
        edges = np.linspace(-1.0, 1.0, self.num_bins + 1)
        return (edges[:-1] + edges[1:]) / 2.0

    def encode(self, actions: np.ndarray) -> np.ndarray:
        """Continuous actions [..., D] -> bin indices [..., D] (int64)."""
        normalized = self.normalize(actions)
        bins = np.floor((normalized + 1.0) / 2.0 * self.num_bins).astype(np.int64)
        return np.clip(bins, 0, self.num_bins - 1)

    def decode(self, bins: np.ndarray) -> np.ndarray:
        """Bin indices [..., D] -> continuous actions at the bin centres."""
        return self.unnormalize(self.bin_centers()[np.asarray(bins, dtype=np.int64)])

    def to_dict(self) -> dict:
        data = {"q01": list(self.q01), "q99": list(self.q99), "num_bins": self.num_bins}
        if self.mask is not None:
            data["mask"] = list(self.mask)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ActionTokenizer:
        mask = data.get("mask")
        return cls(
            tuple(data["q01"]),
            tuple(data["q99"]),
            int(data.get("num_bins", NUM_BINS)),
            tuple(bool(m) for m in mask) if mask is not None else None,
        )

    def check_compatible(self, other: ActionTokenizer, what: str = "teacher") -> None:
        """Raise TokenizerMismatchError unless `other` bins actions exactly as this tokenizer does."""
        if self.num_bins != other.num_bins or self.dim != other.dim:
            raise TokenizerMismatchError(
                f"{what} action tokenizer has {other.dim} dims x {other.num_bins} bins, "
                f"the student has {self.dim} x {self.num_bins}"
            )
        if (self.mask or (True,) * self.dim) != (other.mask or (True,) * other.dim):
            raise TokenizerMismatchError(
                f"{what} normalises other action dimensions than the student (mask {other.mask} vs {self.mask})"
            )
        for name, mine, theirs in (("q01", self.q01, other.q01), ("q99", self.q99, other.q99)):
            if not np.allclose(mine, theirs, rtol=1e-6, atol=1e-9):
                raise TokenizerMismatchError(
                    f"{what} action statistics differ from the student's ({name}: student {list(mine)}, "
                    f"{what} {list(theirs)}); distilling across different action bins corrupts the KL target"
                )
