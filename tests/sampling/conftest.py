from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # These tensors are tiny: on a shared 2-core box, OpenMP threads waiting on
    # each other cost far more than they save.
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
