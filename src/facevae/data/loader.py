"""Batches from a uint8 image tensor: resident on the GPU when it fits, else streamed.

Two placements (`place_images`):
  device  the whole uint8 training set sits on the GPU; a batch is an index and a
          cast there, with no host work or copy in the step.
  host    the set stays where it is, in the memory-mapped cache: a background
          thread gathers each batch's rows from it into a reusable pinned buffer
          and the loader copies that to the GPU on a side CUDA stream one batch
          ahead, so gather and copy overlap the step. No process copies the set:
          the DDP ranks of a machine all read the one page cache of the file
          (8 private copies of a 32 GB set would not fit). Only the buffers are
          pinned: pinning 10 GB through torch's caching host allocator would lock
          16 GB (it rounds to a power of two) per process.
On CPU both come down to slicing RAM; `stream=True` forces the host path there
so it can be tested without a GPU.

Batch semantics under DDP: `batch_size` is the global batch. Every rank draws the
same permutation from a generator seeded by (seed, epoch), cuts it into global
batches and takes its own contiguous 1/world_size of each one. Global batch b
therefore holds the same images whatever the world size, and a run resumed with
another number of processes continues the same epoch at the same global step.
Flips are drawn per image from that generator too, so they do not depend on the
world size either.
"""
from __future__ import annotations

import queue
import threading
import warnings
from collections import deque
from typing import Iterator

import numpy as np
import torch

PLACEMENTS = ("auto", "device", "host")
_COPY_ROWS = 4096  # images per host-to-destination copy while placing (bounds the host RAM used)


def place_images(images: np.ndarray, device: torch.device, max_fraction: float = 0.6, *,
                 placement: str = "auto", indices: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(images, rows): the uint8 (N, 3, H, W) rows `indices` of `images` (all when None) for a BatchLoader.

    placement "auto" puts them on a CUDA device when they take less than `max_fraction`
    of its free memory and otherwise leaves them in host memory for streaming;
    "device"/"host" force one or the other. On the device, the rows are copied there a
    chunk at a time (rows is None). In host memory nothing is copied: images is the
    whole (memory-mapped) array, read-only, and rows says which of its rows to use.
    """
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {', '.join(PLACEMENTS)}, not {placement!r}")
    device = torch.device(device)
    n = len(images) if indices is None else len(indices)
    shape = (n, *images.shape[1:])
    if not (device.type == "cuda" and _on_device(placement, shape, device, max_fraction)):
        return host_view(images), None if indices is None else torch.as_tensor(indices, dtype=torch.int64)
    dest = torch.empty(shape, dtype=torch.uint8, device=device)
    for lo in range(0, n, _COPY_ROWS):
        rows = slice(lo, min(lo + _COPY_ROWS, n))
        chunk = images[rows] if indices is None else images[indices[rows]]
        dest[rows].copy_(torch.from_numpy(np.require(chunk, requirements=["C", "W"])))  # W: memmaps are read-only
    return dest, None


def host_view(images: np.ndarray) -> torch.Tensor:
    """A tensor over the array's own memory, never written: a read-only memmap is fine."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(images))


def _on_device(placement: str, shape: tuple[int, ...], device: torch.device, max_fraction: float) -> bool:
    if placement != "auto":
        return placement == "device"
    free, _ = torch.cuda.mem_get_info(device)
    return int(np.prod(shape)) < max_fraction * free


class BatchLoader:
    """Shuffled float batches in [0, 1]; each DDP rank takes its share of every global batch.

    rows (optional): which rows of `images` make the set, as place_images gives them.
    """

    def __init__(
        self,
        images: torch.Tensor,
        batch_size: int,
        device: torch.device,
        *,
        shuffle: bool = True,
        flip: bool = False,
        seed: int = 0,
        drop_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
        stream: bool | None = None,
        prefetch: int = 3,
        rows: torch.Tensor | None = None,
    ):
        if batch_size % world_size:
            raise ValueError(f"the global batch of {batch_size} does not split evenly over {world_size} processes")
        if not drop_last and world_size > 1:
            raise ValueError("drop_last=False would leave some processes an empty last batch")
        self.images, self.batch_size, self.device = images, batch_size, torch.device(device)
        self.shuffle, self.flip, self.seed, self.drop_last = shuffle, flip, seed, drop_last
        self.rank, self.world_size = rank, world_size
        self.local_batch = batch_size // world_size
        # host-resident images for a GPU run are streamed; stream=True forces that path on CPU
        self.stream = images.device.type != self.device.type if stream is None else stream
        self.prefetch = prefetch
        self.rows = rows
        self.n = n = len(images) if rows is None else len(rows)
        self.steps_per_epoch = n // batch_size if drop_last else -(-n // batch_size)
        if self.steps_per_epoch == 0:
            raise ValueError(f"{n} images are fewer than one batch of {batch_size}")

    def __len__(self) -> int:
        return self.steps_per_epoch

    def _order(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The epoch's global permutation and, per position in it, whether that image is flipped."""
        n = self.n
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        flips = (torch.rand(n, generator=g) < 0.5)[order] if self.flip else None
        return order, flips

    def slices(self, start: int = 0) -> list[slice]:
        """This rank's positions in the epoch order for global batches start, start+1, ..."""
        n, lb = self.n, self.local_batch
        out = []
        for b in range(start, self.steps_per_epoch):
            lo = b * self.batch_size + self.rank * lb
            out.append(slice(lo, min(lo + lb, n)))
        return out

    def epoch(self, epoch: int, start: int = 0) -> Iterator[torch.Tensor]:
        """Yield this rank's batches of epoch `epoch`, from global batch `start` on (for resume)."""
        order, flips = self._order(epoch)
        if flips is not None:
            flips = flips.to(self.device)
        slices = self.slices(start)
        if self.rows is not None:  # positions in the set -> rows of the array
            order = self.rows[order]
        if self.stream:
            yield from self._streamed(order, flips, slices)
            return
        order = order.to(self.images.device)
        for sl in slices:
            batch = self.images[order[sl]].to(self.device, non_blocking=True)
            yield to_float(batch, None if flips is None else flips[sl])

    def _streamed(self, order, flips, slices) -> Iterator[torch.Tensor]:
        cuda = self.device.type == "cuda"
        feed = HostFeed(self.images, order, slices, self.local_batch, pin=cuda, depth=self.prefetch)
        try:
            if cuda:
                yield from self._to_cuda(feed, flips, slices)
            else:
                for sl in slices:
                    view, buf = feed.get()
                    x = to_float(view, None if flips is None else flips[sl])  # a new tensor: buf is free again
                    feed.recycle(buf)
                    yield x
        finally:
            feed.close()

    def _to_cuda(self, feed: "HostFeed", flips, slices) -> Iterator[torch.Tensor]:
        """Copy batch i+1 on a side stream while the caller computes on batch i."""
        side = torch.cuda.Stream(self.device)
        compute = torch.cuda.current_stream(self.device)
        in_flight: deque = deque()
        spent: deque = deque()  # (copy event, pinned buffer) waiting to go back to the feed
        launched = 0

        def launch() -> None:
            nonlocal launched
            if launched == len(slices):
                return
            launched += 1
            view, buf = feed.get()
            with torch.cuda.stream(side):
                on_gpu = view.to(self.device, non_blocking=True)
                copied = torch.cuda.Event()
                copied.record(side)
            in_flight.append((on_gpu, copied, buf))

        launch()
        for sl in slices:
            launch()
            on_gpu, copied, buf = in_flight.popleft()
            compute.wait_event(copied)  # a GPU-side wait: the host does not block
            on_gpu.record_stream(compute)  # the allocator must not hand this memory out before compute used it
            yield to_float(on_gpu, None if flips is None else flips[sl])
            # the copy of the previous batch finished long ago; its pinned buffer can be refilled
            while spent:
                done, old = spent.popleft()
                done.synchronize()
                feed.recycle(old)
            spent.append((copied, buf))


class HostFeed:
    """A thread gathering rows of a host tensor into reusable (pinned) buffers, ahead of the consumer.

    The pool of buffers bounds how far ahead it runs; index_select releases the GIL,
    so the gather overlaps the training step.
    """

    def __init__(self, images: torch.Tensor, order: torch.Tensor, slices: list[slice], batch: int, *,
                 pin: bool, depth: int = 3):
        self._free: queue.Queue = queue.Queue()
        for _ in range(max(1, depth) + 3):  # the consumer holds up to 3: two copies in flight, one recycling
            self._free.put(torch.empty((batch, *images.shape[1:]), dtype=images.dtype, pin_memory=pin))
        self._ready: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(images, order, slices), daemon=True,
                                        name="facevae-batch-feed")
        self._thread.start()

    def _run(self, images, order, slices) -> None:
        try:
            for sl in slices:
                buf = self._take()
                if buf is None:
                    return
                idx = order[sl]
                view = buf[: len(idx)]
                torch.index_select(images, 0, idx, out=view)
                self._ready.put((view, buf))
        except BaseException as e:  # handed to the consumer, which raises it in the training thread
            self._ready.put(e)

    def _take(self) -> torch.Tensor | None:
        while not self._stop.is_set():
            try:
                return self._free.get(timeout=0.1)
            except queue.Empty:
                continue
        return None

    def get(self) -> tuple[torch.Tensor, torch.Tensor]:
        item = self._ready.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def recycle(self, buf: torch.Tensor) -> None:
        self._free.put(buf)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def to_float(batch: torch.Tensor, flips: torch.Tensor | None = None) -> torch.Tensor:
    x = batch.float().div_(255.0)
    if flips is not None:  # no .any() check: it would sync the GPU every step
        x = torch.where(flips.view(-1, 1, 1, 1), x.flip(3), x)
    return x


def iterate_fixed(images: torch.Tensor, batch_size: int, device: torch.device, limit: int = 0):
    """In-order batches for evaluation; `limit` caps the number of batches (0 = all)."""
    n_batches = -(-len(images) // batch_size)
    if limit:
        n_batches = min(n_batches, limit)
    for b in range(n_batches):
        yield to_float(images[b * batch_size:(b + 1) * batch_size].to(device, non_blocking=True))
