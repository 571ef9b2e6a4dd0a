"""The deterministic train/test split shared by the dataset adapters.

The recorded sources have no split of their own, so a task's split comes from a hash of its
id: SHA-256 of the id, its first 8 bytes read as a number in [0, 1), below
:data:`TRAIN_FRACTION` (30%) is ``train``, the rest ``test``. The rule needs no state and no
seed, gives the same split on every machine and every run, and puts a question in the same
split in every dataset that names it with the same id (``gsm8k-17`` is in the same split in
``mot-gsm8k``, ``gsm8k-joined`` and ``routellm-gsm8k``), so a router tuned on one dataset's
train split never sees the test questions of another.
"""

from __future__ import annotations

import hashlib
from typing import Final

from routers.eval._dataset import Split

__all__ = ["TRAIN_FRACTION", "split_of", "unit_hash"]


TRAIN_FRACTION: Final = 0.3


def unit_hash(key: str, salt: str = "") -> float:
    """A number in [0, 1) fixed by ``salt + key`` (SHA-256, first 8 bytes)."""
    digest = hashlib.sha256((salt + key).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(
    task_id: str,
    train_fraction: float = TRAIN_FRACTION,
    *,
    val_fraction: float = 0.0,
    salt: str = "",
) -> Split:
    """``train`` for about ``train_fraction`` of task ids, ``val`` for the next
    ``val_fraction``, ``test`` for the rest. Adding or dropping tasks never moves another
    task to a different split."""
    if train_fraction < 0.0 or val_fraction < 0.0 or train_fraction + val_fraction > 1.0:
        raise ValueError(
            f"split shares must be >= 0 and add up to at most 1 (train={train_fraction}, "
            f"val={val_fraction}); fix: pass e.g. train_fraction=0.3"
        )
    x = unit_hash(task_id, salt)
    if x < train_fraction:
        return "train"
    if x < train_fraction + val_fraction:
        return "val"
    return "test"
