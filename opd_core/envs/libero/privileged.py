"""Where the scripted teacher finds the privileged state of an observation it is asked to label.

A teacher policy sees `Observation`s. `LiberoObservation.state` carries the privileged state, but the training
loop rebuilds plain `Observation`s when it stores a rollout (opd_core.rollout._assemble keeps image, proprio and
instructions only). Until `Observation` carries an optional `state` field end to end, the environment records every
observation it emits here, keyed by a digest of its image and proprioception, and the teacher looks states up by
the same digest. The registry is per process (the env and the teacher live in the training process) and bounded.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict

import numpy as np

_CAPACITY = int(os.environ.get("OPD_LIBERO_PRIVILEGED_CAPACITY", "200000"))
_registry: "OrderedDict[bytes, np.ndarray]" = OrderedDict()


def digest(image: np.ndarray, proprio: np.ndarray) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(image).tobytes())
    h.update(np.ascontiguousarray(proprio, dtype=np.float32).tobytes())
    return h.digest()


def record(images: np.ndarray, proprio: np.ndarray, states: np.ndarray) -> None:
    for image, p, state in zip(images, proprio, states):
        key = digest(image, p)
        _registry[key] = np.array(state, dtype=np.float32)
        _registry.move_to_end(key)
    while len(_registry) > _CAPACITY:
        _registry.popitem(last=False)


def lookup(images: np.ndarray, proprio: np.ndarray) -> np.ndarray | None:
    """States [N, S] of observations this process's LIBERO envs emitted, or None if any is unknown."""
    states = []
    for image, p in zip(images, proprio):
        state = _registry.get(digest(image, p))
        if state is None:
            return None
        states.append(state)
    return np.stack(states) if states else None


def clear() -> None:
    _registry.clear()
