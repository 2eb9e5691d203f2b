"""Helpers the built-in numpy simulators share (tabletop, twin): deterministic execution noise and pixel scatter.

Importing this module has no side effects; it imports nothing else of the project.
"""

from __future__ import annotations

import numpy as np


def hash_normal(seed: np.ndarray, t: int, dims: int) -> np.ndarray:
    """Deterministic standard-normal-ish noise [N, dims] from (episode seed, time step): splitmix64 hashing."""
    with np.errstate(over="ignore"):
        x = (
            seed.astype(np.uint64)[:, None] * np.uint64(0x9E3779B97F4A7C15)
            + np.uint64(t * 7919 + 1) * np.uint64(0xBF58476D1CE4E5B9)
            + np.arange(dims, dtype=np.uint64)[None, :] * np.uint64(0x94D049BB133111EB)
        )
        x ^= x >> np.uint64(31)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(29)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(32)
    uniform = (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    # Irwin-Hall with 2 uniforms, rescaled to unit variance: cheap, bounded, symmetric.
    u2 = ((x & np.uint64(0x7FF)).astype(np.float64) + 0.5) / 2048.0
    return (uniform + u2 - 1.0) * np.sqrt(6.0)


def scatter(image: np.ndarray, env: np.ndarray, row: np.ndarray, col: np.ndarray, colors: np.ndarray) -> None:
    """Paint pixels (env, row, col) of a batch of frames [N, H, W, 3] with `colors`, dropping those off the frame."""
    height, width = image.shape[1:3]
    inside = (row >= 0) & (row < height) & (col >= 0) & (col < width)
    image[env[inside], row[inside], col[inside]] = colors[inside]


def square_offsets(half: int) -> np.ndarray:
    """Pixel offsets [(2*half+1)^2, 2] (row, col) of a filled square around a centre pixel."""
    grid = np.arange(-half, half + 1)
    return np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
