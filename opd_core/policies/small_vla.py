"""The built-in small VLA: a FiLM-conditioned conv encoder with spatial-softmax keypoints, a GRU instruction
encoder, proprioception, and a linear head giving 256 logits per action dimension. About 0.7M parameters at the
default sizes; trains on a laptop CPU in minutes.

Why these parts: spatial softmax turns feature maps into image coordinates (what pick-and-place needs); FiLM
lets the instruction choose which object the keypoints track; the instruction encoding is computed once per
distinct instruction in a batch because batches repeat a few instructions many times.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from opd_core.envs.base import Observation
from opd_core.policies.base import Policy
from opd_core.tokenizer import ActionTokenizer


@dataclass
class SmallVLAConfig:
    width: int = 16
    """Channels of the first conv layer (the second and third have twice as many)."""
    hidden: int = 256
    """Width of the fused trunk."""
    input_size: int = 32
    """Side the image is resized to before the encoder."""
    vocab_size: int = 1024
    """Hashed word vocabulary (any instruction works, no vocabulary file needed)."""
    text_dim: int = 64
    """Word embedding and instruction encoding width."""
    max_words: int = 24
    """Longer instructions are truncated."""
    proprio_dim: int = 5
    action_dim: int = 7
    num_bins: int = 256


def hash_words(text: str, vocab_size: int, max_words: int) -> list[int]:
    """Stable word ids from crc32 (0 is padding), so no vocabulary needs to be stored or shared."""
    words = re.findall(r"[a-z0-9]+", text.lower())[:max_words]
    return [1 + zlib.crc32(word.encode()) % (vocab_size - 1) for word in words] or [1]


class SpatialSoftmax(nn.Module):
    """Expected (x, y) image coordinate of each channel's softmax over pixels."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = features.shape
        weights = F.softmax(features.flatten(2), dim=-1).view(batch, channels, height, width)
        ys = torch.linspace(-1, 1, height, device=features.device)
        xs = torch.linspace(-1, 1, width, device=features.device)
        expected_y = (weights.sum(3) * ys).sum(2)
        expected_x = (weights.sum(2) * xs).sum(2)
        return torch.cat([expected_x, expected_y], dim=1)


class SmallVLA(Policy):
    kind = "small_vla"

    def __init__(self, config: SmallVLAConfig, tokenizer: ActionTokenizer):
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        w, c = config.width, config.width * 2
        self.conv1 = nn.Conv2d(5, w, 4, stride=2, padding=1)  # strided first: the CPU cost lives at full resolution
        self.conv2 = nn.Conv2d(w, c, 3, padding=1)
        self.conv3 = nn.Conv2d(c, c, 3, padding=1)
        self.word_embedding = nn.Embedding(config.vocab_size, config.text_dim, padding_idx=0)
        self.text_rnn = nn.GRU(config.text_dim, config.text_dim, batch_first=True)
        self.film = nn.Linear(config.text_dim, 4 * c)
        self.keypoints = SpatialSoftmax()
        self.proprio = nn.Sequential(nn.Linear(config.proprio_dim, 64), nn.ReLU())
        fused = 2 * c + c + 64 + config.text_dim
        self.trunk = nn.Sequential(
            nn.Linear(fused, config.hidden), nn.ReLU(), nn.Linear(config.hidden, config.hidden), nn.ReLU()
        )
        self.head = nn.Linear(config.hidden, config.action_dim * config.num_bins)
        size = config.input_size
        grid = torch.linspace(-1, 1, size)
        self.register_buffer("coords", torch.stack(torch.meshgrid(grid, grid, indexing="ij"))[None], persistent=False)

    @classmethod
    def build(cls, arch: dict[str, Any], tokenizer: ActionTokenizer) -> SmallVLA:
        return cls(SmallVLAConfig(**arch), tokenizer)

    def arch_config(self) -> dict[str, Any]:
        return asdict(self.config)

    # -- encoders ---------------------------------------------------------------------------
    def encode_instructions(self, instructions: list[str]) -> torch.Tensor:
        unique = sorted(set(instructions))
        ids = [hash_words(text, self.config.vocab_size, self.config.max_words) for text in unique]
        lengths = torch.tensor([len(i) for i in ids])
        padded = torch.zeros(len(ids), int(lengths.max()), dtype=torch.long)
        for row, word_ids in enumerate(ids):
            padded[row, : len(word_ids)] = torch.tensor(word_ids)
        embedded = self.word_embedding(padded.to(self.device))
        packed = nn.utils.rnn.pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        _, final = self.text_rnn(packed)
        index = torch.tensor([unique.index(text) for text in instructions], device=self.device)
        return final[0][index]

    def image_tensor(self, images: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        size = self.config.input_size
        if x.shape[-1] != size:
            x = (
                F.interpolate(x, size=(size, size), mode="area")
                if x.shape[-1] % size == 0
                else F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
            )
        return torch.cat([x - 0.5, self.coords.expand(x.shape[0], -1, -1, -1)], dim=1)

    def forward(self, obs: Observation, actions: torch.Tensor | None = None) -> torch.Tensor:
        # A factorised head: every dimension is predicted from the observation alone, so `actions` is unused.
        text = self.encode_instructions(obs.instructions)
        gamma1, beta1, gamma2, beta2 = self.film(text)[:, :, None, None].chunk(4, dim=1)
        x = F.relu(self.conv1(self.image_tensor(obs.image)))
        x = F.relu(self.conv2(x) * (1 + gamma1) + beta1)
        x = F.relu(self.conv3(x) * (1 + gamma2) + beta2)
        features = torch.cat([self.keypoints(x), x.mean(dim=(2, 3))], dim=1)
        proprio = self.proprio(torch.from_numpy(np.ascontiguousarray(obs.proprio)).to(self.device).float())
        hidden = self.trunk(torch.cat([features, proprio, text], dim=1))
        return self.head(hidden).view(-1, self.config.action_dim, self.config.num_bins)
