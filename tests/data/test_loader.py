"""BatchLoader: global-batch sharding over ranks, resume positions, and the streamed (host) path."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from facevae.data.loader import BatchLoader, place_images


def id_images(n: int) -> torch.Tensor:
    """uint8 (n, 3, 2, 2): channels 0/1 spell the index, channel 2 is dark left and bright right (shows a flip)."""
    img = torch.zeros(n, 3, 2, 2, dtype=torch.uint8)
    idx = torch.arange(n)
    img[:, 0] = (idx // 256).view(-1, 1, 1).to(torch.uint8)
    img[:, 1] = (idx % 256).view(-1, 1, 1).to(torch.uint8)
    img[:, 2, :, 1] = 255
    return img


def decode(x: torch.Tensor) -> tuple[list[int], list[bool]]:
    """(image indices, flipped?) of a float batch made from id_images."""
    v = (x * 255).round().long()
    ids = (v[:, 0, 0, 0] * 256 + v[:, 1, 0, 0]).tolist()
    return ids, (v[:, 2, 0, 0] == 255).tolist()


def batches(images, world, rank, epoch=3, start=0, **kw):
    loader = BatchLoader(images, 12, torch.device("cpu"), flip=True, seed=7, rank=rank, world_size=world, **kw)
    return [decode(x) for x in loader.epoch(epoch, start)]


@pytest.mark.parametrize("world", [2, 3, 4])
def test_ranks_split_every_global_batch_of_the_single_process_order(world):
    images = id_images(100)
    single = batches(images, 1, 0)
    per_rank = [batches(images, world, r) for r in range(world)]
    assert len(single) == 100 // 12 and all(len(p) == len(single) for p in per_rank)
    for b, (ids, flips) in enumerate(single):
        shards = [per_rank[r][b] for r in range(world)]
        assert all(len(s[0]) == 12 // world for s in shards)
        # the ranks' shards, in rank order, are exactly global batch b: same images, same flips
        assert sum((s[0] for s in shards), []) == ids
        assert sum((s[1] for s in shards), []) == flips
    seen = [i for p in per_rank for ids, _ in p for i in ids]
    assert len(seen) == len(set(seen))  # disjoint within the epoch
    assert any(flips for _, flips in single) and not all(all(f) for _, f in single)


def test_epochs_differ_and_resume_start_is_the_tail():
    images = id_images(60)
    full = batches(images, 2, 1, epoch=5)
    assert batches(images, 2, 1, epoch=5, start=3) == full[3:]
    assert batches(images, 2, 1, epoch=6) != full


def test_streamed_path_yields_the_same_batches_and_stops_its_thread():
    images = id_images(100)
    for world, rank in ((1, 0), (3, 2)):
        assert batches(images, world, rank, stream=True, prefetch=2) == batches(images, world, rank)
    before = threading.active_count()
    loader = BatchLoader(images, 12, torch.device("cpu"), stream=True)
    for i, _ in enumerate(loader.epoch(0)):
        if i == 1:
            break  # the trainer stops mid-epoch at max_steps
    assert threading.active_count() == before


def test_streamed_path_raises_errors_of_its_thread():
    loader = BatchLoader(id_images(40), 8, torch.device("cpu"), stream=True)
    loader._order = lambda epoch: (torch.arange(40) + 40, None)  # out of range: the gather fails in the thread
    with pytest.raises(IndexError):
        list(loader.epoch(0))


def test_global_batch_must_split_evenly():
    with pytest.raises(ValueError, match="does not split evenly over 5"):
        BatchLoader(id_images(40), 12, torch.device("cpu"), rank=0, world_size=5)
    with pytest.raises(ValueError, match="fewer than one batch"):
        BatchLoader(id_images(10), 12, torch.device("cpu"))


def test_host_placement_reads_the_memmap_itself_never_a_copy(tmp_path):
    """DDP ranks streaming from host memory share the cache file's pages: nothing is copied per process."""
    arr = np.lib.format.open_memmap(tmp_path / "a.npy", mode="w+", dtype=np.uint8, shape=(50, 3, 2, 2))
    arr[:] = id_images(50).numpy()
    arr.flush()
    ro = np.load(tmp_path / "a.npy", mmap_mode="r")
    idx = np.array([3, 4, 10, 49, 0, 7, 8, 9])
    placed, rows = place_images(ro, torch.device("cpu"), indices=idx)
    assert placed.data_ptr() == ro.ctypes.data and placed.shape == ro.shape  # the mapping itself
    assert rows.tolist() == idx.tolist()
    for stream in (False, True):
        loader = BatchLoader(placed, 4, torch.device("cpu"), rows=rows, shuffle=False, stream=stream)
        assert loader.steps_per_epoch == 2
        assert [decode(x)[0] for x in loader.epoch(0)] == [idx[:4].tolist(), idx[4:].tolist()]
    whole, no_rows = place_images(ro, torch.device("cpu"))
    assert whole.data_ptr() == ro.ctypes.data and no_rows is None
    with pytest.raises(ValueError, match="placement"):
        place_images(ro, torch.device("cpu"), placement="gpu")


def mapped_file(address: int) -> str | None:
    """The file mapped at `address` in this process (Linux), or None."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        span, *rest = line.split()
        lo, hi = (int(a, 16) for a in span.split("-"))
        if lo <= address < hi:
            return rest[4] if len(rest) > 4 else None
    return None


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="needs Linux /proc")
def test_training_streams_from_the_shared_cache_file(fake_celeba, tmp_path, monkeypatch):
    """run.train(placement="host"), as every DDP rank of a streamed run does: batches come from the cache's mapping."""
    from facevae.training import run

    from tests.conftest import tiny_config

    loaders = []
    real = run.BatchLoader

    def keep(*args, **kwargs):
        loaders.append(real(*args, **kwargs))
        return loaders[-1]

    monkeypatch.setattr(run, "BatchLoader", keep)
    run.train(fake_celeba, tmp_path / "run", tiny_config("train.batch_size=8", "train.max_steps=1"), device="cpu",
              progress=False, placement="host")
    (loader,) = loaders
    assert loader.stream and loader.rows is not None and len(loader.rows) < len(loader.images)
    assert mapped_file(loader.images.data_ptr()).endswith(".npy")  # the image cache, not private memory


@pytest.mark.slow
def test_training_on_streamed_batches_equals_resident(fake_celeba, tmp_path, monkeypatch):
    """run.train(placement="host") wires the streamed path in; the weights come out the same."""
    from facevae.modelfiles import checkpoint as ckpt
    from facevae.training.run import train

    from tests.conftest import tiny_config

    streamed = []
    real = BatchLoader._streamed

    def spy(self, *args):
        streamed.append(1)
        yield from real(self, *args)

    monkeypatch.setattr(BatchLoader, "_streamed", spy)
    cfg = tiny_config("train.batch_size=8", "train.max_steps=2")
    weights = []
    for placement in ("auto", "host"):
        train(fake_celeba, tmp_path / placement, cfg, device="cpu", progress=False, placement=placement)
        weights.append(ckpt.load_checkpoint(tmp_path / placement)[1])
        assert bool(streamed) == (placement == "host")
    for k in weights[0]:
        assert torch.equal(weights[0][k], weights[1][k]), k
