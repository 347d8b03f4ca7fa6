"""One torch thread for the priming tests: the models are tiny, and two threads on a busy 2-core machine
run many times slower than one."""

import pytest


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
