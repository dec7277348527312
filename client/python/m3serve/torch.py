"""PyTorch integration: an IterableDataset over an m3serve stream.

    from m3serve.torch import M3ITDataset, M3ITDataLoader, collate

    ds = M3ITDataset("127.0.0.1:50051", tasks=["vqa-v2"], splits=["train"],
                     shuffle=True, seed=17, size=(224, 224))
    loader = M3ITDataLoader(ds, batch_size=32, num_workers=2, collate_fn=collate)
    for epoch in range(3):
        ds.set_epoch(epoch)
        for batch in loader:            # batch["images"]: uint8 tensor (N, 3, 224, 224)
            ...
            state = ds.state_dict()     # save with the model checkpoint

Sharding: every (rank, DataLoader worker) pair is one shard of the server's
deterministic sharding: shard = rank * num_workers + worker, count = world_size
* num_workers. The rank and world size come from torch.distributed when it is
initialised, else the RANK / WORLD_SIZE environment variables, else 0 / 1.
Every instance of the epoch is seen once across all ranks and workers
(drop_remainder=True by default, so every rank takes the same number of steps).

Checkpointing: the stream order is a pure function of (selection, seed,
epoch, shard), and a DataLoader takes batches from its workers round-robin, so
the number of batches a rank has consumed fixes every worker's position.
M3ITDataLoader counts them; M3ITDataset.state_dict() returns {epoch, batches,
...} and a dataset restored with load_state_dict() continues each worker's
stream at the next unconsumed position (StreamRequest.start_position): no
duplicate, no gap. With a plain DataLoader pass the count yourself:
state_dict(batches_consumed=n).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.utils.data as tud

from m3serve.client import Client, Instance

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _dist_info(rank: Optional[int], world_size: Optional[int]) -> Tuple[int, int]:
    if rank is not None and world_size is not None:
        return rank, world_size
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _sample(x: Instance) -> Dict[str, Any]:
    return {
        "id": x.id, "task": x.task, "split": x.split, "language": x.language,
        "instruction": x.instruction, "inputs": x.inputs, "outputs": x.outputs,
        "images": [i.array if i.array is not None else i.data for i in x.images],
        "license": x.license, "source_dataset": x.source_dataset, "meta": x.meta,
    }


class M3ITDataset(tud.IterableDataset):
    """Instances of an m3serve selection, sharded over ranks and workers.

    targets: "host:port" or a list (replicas; streams fail over).
    Selection keywords: tasks, categories, splits, languages, licenses,
    commercial_use_only, exclude_tasks, modality.
    shuffle / seed: server-side seeded shuffle (the epoch comes from set_epoch).
    images: "decoded" (numpy uint8 HWC arrays) | "encoded" (bytes) | "none";
    size=(w, h), resize="fit" | "fill" | "stretch", max_images per instance.
    resample_instructions: draw instructions from the task pools per epoch.
    batch_size: instances per server message (not the DataLoader batch size).
    drop_remainder: equal shard sizes across ranks and workers (default True).
    rank / world_size: override the distributed detection.
    transform: applied to every sample dict before it is yielded.
    client_options: passed to m3serve.Client (timeout, max_attempts, ...).
    """

    def __init__(self, targets, *, shuffle: bool = True, seed: int = 0, images: str = "decoded",
                 size: Optional[Tuple[int, int]] = (224, 224), resize: str = "fill", max_images: int = 0,
                 resample_instructions: bool = False, batch_size: int = 32, drop_remainder: bool = True,
                 rank: Optional[int] = None, world_size: Optional[int] = None,
                 transform: Optional[Callable[[Dict[str, Any]], Any]] = None,
                 client_options: Optional[Dict[str, Any]] = None, **selection):
        super().__init__()
        self.targets = targets
        self.selection = selection
        self.stream_options = dict(shuffle=shuffle, seed=seed, images=images,
                                   size=size if images == "decoded" else None, resize=resize,
                                   max_images=max_images, resample_instructions=resample_instructions,
                                   batch_size=batch_size, drop_remainder=drop_remainder)
        self.rank, self.world_size = rank, world_size
        self.transform = transform
        self.client_options = client_options or {}
        self.epoch = 0
        # _resume: the saved position the next iteration starts from.
        # _base + _batches_consumed: batches of this epoch consumed so far.
        self._resume: Optional[Dict[str, Any]] = None
        self._base = 0
        self._batches_consumed = 0
        self._loader_batch_size: Optional[int] = None
        self._loader_workers: Optional[int] = None

    # -- epochs and state -------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (shuffle order and instruction sampling). A restored
        position applies only to the epoch it was saved in."""
        if epoch != self.epoch:
            self._base = self._batches_consumed = 0
            if self._resume is not None and self._resume["epoch"] != epoch:
                self._resume = None
        self.epoch = epoch

    def state_dict(self, batches_consumed: Optional[int] = None) -> Dict[str, Any]:
        """The data position of this rank: the epoch, the batches of it consumed
        (counted by M3ITDataLoader, or given: batches consumed in this epoch,
        including any before a restore), and the loader geometry (batch size,
        workers) that maps batches to stream positions."""
        batches = self._base + self._batches_consumed if batches_consumed is None else batches_consumed
        return {"epoch": self.epoch, "batches": batches, "batch_size": self._loader_batch_size,
                "num_workers": self._loader_workers, "seed": self.stream_options["seed"]}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Continue from a state_dict(): the next iteration of this epoch starts
        each worker right after what the saved run had consumed."""
        if state.get("seed", self.stream_options["seed"]) != self.stream_options["seed"]:
            raise ValueError("state_dict was saved with another seed")
        self.epoch = state["epoch"]
        self._resume = dict(state)
        self._base = self._batches_consumed = 0

    def _attach(self, batch_size: int, num_workers: int) -> None:
        self._loader_batch_size, self._loader_workers = batch_size, num_workers

    def _begin_iteration(self) -> None:
        """Called once the loader's workers hold their copy of the dataset."""
        if self._resume is not None:
            r = self._resume
            if r.get("batch_size") not in (None, self._loader_batch_size):
                raise ValueError("resume with the DataLoader batch_size of the saved run")
            if r.get("num_workers") not in (None, self._loader_workers):
                raise ValueError("resume with the DataLoader num_workers of the saved run")
            self._base = r["batches"] if r["epoch"] == self.epoch else 0
            self._resume = None
        else:
            self._base = 0
        self._batches_consumed = 0

    def _consumed(self, n: int = 1) -> None:
        self._batches_consumed += n

    # -- iteration ---------------------------------------------------------------

    def _start_position(self, worker: int, num_workers: int) -> int:
        r = self._resume
        if r is None or r["epoch"] != self.epoch or not r["batches"]:
            return 0
        batch_size = r.get("batch_size") or 1
        workers = max(1, r.get("num_workers") or num_workers or 1)
        # Batch k of a rank came from worker k mod workers.
        batches_from_worker = len(range(worker, r["batches"], workers))
        return batches_from_worker * batch_size

    def shard(self) -> Tuple[int, int, int, int]:
        """(shard index, shard count, worker, workers) of the calling process."""
        rank, world = _dist_info(self.rank, self.world_size)
        info = tud.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return rank * workers + worker, world * workers, worker, workers

    def __iter__(self):
        index, count, worker, workers = self.shard()
        # The start is fixed now (not when the generator first runs), so the
        # loader may clear the restored position right after creating workers.
        start = self._start_position(worker, workers)
        return self._generate(index, count, start)

    def _generate(self, index: int, count: int, start: int):
        client = Client(self.targets, **self.client_options)
        try:
            for batch in client.stream(shard=(index, count), epoch=self.epoch, start_position=start,
                                       **self.stream_options, **self.selection):
                for x in batch.instances:
                    sample = _sample(x)
                    yield self.transform(sample) if self.transform else sample
        finally:
            client.close()

    def __len__(self) -> int:
        """Instances this rank iterates per epoch (all its workers)."""
        rank, world = _dist_info(self.rank, self.world_size)
        with Client(self.targets, **self.client_options) as c:
            total = c.count(**self.selection)["total"]
        if self.stream_options["drop_remainder"]:
            return total // world
        return len(range(rank, total, world))


class M3ITDataLoader(tud.DataLoader):
    """A torch DataLoader that tells its M3ITDataset how many batches the
    training loop has consumed, so that dataset.state_dict() is exact.

    Workers start with the "forkserver" method unless multiprocessing_context
    is given: gRPC is not fork-safe, and a worker forked from a process that
    has used gRPC (a client, a count, an earlier loader) breaks the parent's
    connections too. With a plain DataLoader pass
    multiprocessing_context="forkserver" (or "spawn") yourself."""

    def __init__(self, dataset: M3ITDataset, **kwargs):
        if kwargs.get("num_workers", 0) > 0 and kwargs.get("multiprocessing_context") is None:
            kwargs["multiprocessing_context"] = "forkserver"
        super().__init__(dataset, **kwargs)
        dataset._attach(kwargs.get("batch_size", 1) or 1, kwargs.get("num_workers", 0) or 1)

    def __iter__(self):
        ds: M3ITDataset = self.dataset  # type: ignore[assignment]
        it = super().__iter__()
        ds._begin_iteration()
        for batch in it:
            ds._consumed()
            yield batch


def collate(samples: List[Dict[str, Any]], *, dtype: torch.dtype = torch.uint8,
            normalize: Optional[Tuple[Sequence[float], Sequence[float]]] = None) -> Dict[str, Any]:
    """Stack decoded images into a tensor and gather the texts.

    images: (N, 3, H, W) when every instance has one image, (N, K, 3, H, W)
    when all have K, else a list of (K_i, 3, H, W) tensors. uint8 by default;
    dtype=torch.float32 scales to [0, 1], then normalize=(mean, std) applies
    (e.g. (IMAGENET_MEAN, IMAGENET_STD)).
    """
    def to_tensor(arrays: List[np.ndarray]) -> torch.Tensor:
        t = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)  # K, 3, H, W
        if dtype == torch.uint8:
            return t.contiguous()
        t = t.to(dtype).div_(255.0)
        if normalize is not None:
            mean = torch.tensor(normalize[0], dtype=dtype).view(1, 3, 1, 1)
            std = torch.tensor(normalize[1], dtype=dtype).view(1, 3, 1, 1)
            t = (t - mean) / std
        return t

    out: Dict[str, Any] = {k: [s[k] for s in samples] for k in samples[0] if k != "images"}
    per_instance = []
    for s in samples:
        arrays = [a for a in s["images"] if isinstance(a, np.ndarray)]
        if len(arrays) != len(s["images"]):
            raise ValueError("collate needs decoded images (images='decoded')")
        per_instance.append(to_tensor(arrays) if arrays else torch.empty(0, 3, 0, 0, dtype=dtype))
    counts = {t.shape[0] for t in per_instance}
    shapes = {tuple(t.shape[1:]) for t in per_instance}
    if len(counts) == 1 and len(shapes) == 1:
        stacked = torch.stack(per_instance)
        out["images"] = stacked[:, 0] if counts == {1} else stacked
    else:
        out["images"] = per_instance
    return out
