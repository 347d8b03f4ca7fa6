"""torch_threads sets the thread count for its block and restores the previous one, also on errors."""

from __future__ import annotations

import os

import pytest
import torch

from paperlab.core.threads import torch_threads


def test_sets_and_restores():
    before = torch.get_num_threads()
    with torch_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_clamps_to_the_machine_and_restores_after_an_error():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), torch_threads(10_000) as n:
        assert n == (os.cpu_count() or 1) == torch.get_num_threads()
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with torch_threads(0) as n:
        assert n == 1
