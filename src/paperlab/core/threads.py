"""CPU threads for torch work: one context manager instead of "set, run, restore" in every driver."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def torch_threads(n: int) -> Iterator[int]:
    """Run the block with ``torch.set_num_threads(n)`` (clamped to 1..cpu_count) and restore the previous
    count afterwards, also when the block raises. Yields the count in force."""
    import torch

    previous = torch.get_num_threads()
    count = max(1, min(int(n), os.cpu_count() or 1))
    torch.set_num_threads(count)
    try:
        yield count
    finally:
        torch.set_num_threads(previous)
