"""PyTorch integration: datasets over an m3serve server.

    from m3serve.torch import M3ITDataset, M3ITDataLoader, collate

    ds = M3ITDataset("127.0.0.1:50051", splits=["train"], shuffle=True, seed=17,
                     size=(224, 224), temperature=2.0)        # a task mixture
    loader = M3ITDataLoader(ds, batch_size=32, num_workers=0, collate_fn=collate)
    for epoch in range(ds.epoch, 3):
        ds.set_epoch(epoch)
        for batch in loader:            # batch["images"]: uint8 tensor (N, 3, 224, 224)
            ...
            state = ds.state_dict()     # save with the model checkpoint

The schedule. The order of an epoch is one global sequence of samples, a pure
function of (selection or mixture, seed, epoch, dataset version) that the
server computes. With world size W and DataLoader batch size B, global step s
consumes samples [G + s*W*B, G + (s+1)*W*B) from the start position G; rank r
takes the r-th B of each step, and DataLoader worker k of K takes whole steps
k, k+K, ... The data position of the job is one number, the samples consumed,
the same on every rank: state_dict()["samples"]. load_state_dict() continues
exactly there with any world size, batch size and number of workers, any
number of times per epoch (a checkpoint at the epoch's last batch resumes to
an empty rest of that epoch). A state from another selection, mixture, seed or
dataset version is refused with a ValueError naming what differs.

Mixtures: weights={"coco": 0.2, "*": 1.0} (relative shares per task or
"task:lang"; "*" is every other task) or temperature=T (weight =
instances^(1/T)), epoch_size=N, stratified=True (every global batch holds each
component's share to within one). Client.plan() previews them.

Workers. Decoding and resizing happen on the server, and the dataset reads
messages ahead on a background thread, so num_workers=0 is a fast default (no
worker start-up). Workers help when a transform or collate_fn does heavy
Python work per sample; they start with "forkserver" (gRPC is not fork-safe).
"""

from __future__ import annotations

import atexit
import base64
import collections
import os
import queue
import threading
import weakref
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.utils.data as tud

from m3serve.client import Client, Instance, Plan, Schedule

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_STATE_VERSION = 2
_SELECTION_KEYS = ("tasks", "categories", "splits", "languages", "licenses", "commercial_use_only",
                   "exclude_tasks", "modality", "held_out", "exclude_eval_images", "eval_splits", "eval_tasks")


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
        "sample_index": x.sample_index, "component": x.component,
    }


class _Position:
    """Where the next iteration starts, readable by DataLoader workers (also
    persistent ones, which keep their copy of the dataset): epoch, start
    sample, rank, world size, batch size, workers, stratum and the plan
    fingerprint, in shared memory when the loader has workers."""

    _FIELDS = ("epoch", "start", "rank", "world", "batch", "workers", "stratum")

    def __init__(self, ctx=None):
        if ctx is None:
            self._ints: Any = [0] * len(self._FIELDS)
            self._fp: Any = bytearray(32)
        else:
            self._ints = ctx.Array("q", len(self._FIELDS), lock=False)
            self._fp = ctx.Array("c", 32, lock=False)

    def set(self, fingerprint: str, **values: int) -> None:
        for k, v in values.items():
            self._ints[self._FIELDS.index(k)] = int(v)
        self._fp[:] = fingerprint.encode().ljust(32)[:32]

    def get(self) -> Tuple[str, Dict[str, int]]:
        fp = bytes(self._fp[:]).decode().strip()
        return fp, {k: int(self._ints[i]) for i, k in enumerate(self._FIELDS)}


class M3ITDataset(tud.IterableDataset):
    """Instances of an m3serve selection or mixture, scheduled over ranks and
    DataLoader workers as one global sequence per epoch (see the module doc).

    targets: "host:port" or a list (replicas; streams fail over).
    Selection keywords: tasks, categories, splits, languages, licenses,
    commercial_use_only, exclude_tasks, modality, held_out ("exclude" | "only"),
    exclude_eval_images (the evaluation-leakage guard), eval_splits, eval_tasks.
    Mixture: weights (dict key -> share; keys "task", "task:lang", "*"),
    temperature, epoch_size, stratified.
    shuffle / seed: server-side seeded shuffle (the epoch comes from set_epoch).
    images: "decoded" (numpy uint8 HWC arrays) | "encoded" (bytes) | "none";
    size=(w, h), resize="fit" | "fill" | "stretch", max_images per instance.
    resample_instructions: draw instructions from the task pools per epoch
    (otherwise instructions are as ingested: the same in every epoch).
    message_batch_size: instances per server work unit and message (not the
    DataLoader's batch size; small units spread the first batch over the
    server's cores: default 8).
    drop_remainder: drop the epoch's last, partial global step so every rank
    takes the same number of steps (default True, as DDP needs).
    prefetch: messages read ahead on a background thread.
    rank / world_size: override the distributed detection.
    transform: applied to every sample dict before it is yielded.
    client_options: passed to m3serve.Client (timeout, token, tls_*, ...).
    """

    def __init__(self, targets, *, shuffle: bool = True, seed: int = 0, images: str = "decoded",
                 size: Optional[Tuple[int, int]] = (224, 224), resize: str = "fill", max_images: int = 0,
                 resample_instructions: bool = False, message_batch_size: int = 8,
                 drop_remainder: bool = True, weights: Optional[Dict[str, float]] = None,
                 temperature: Optional[float] = None, epoch_size: Optional[int] = None,
                 stratified: bool = False, prefetch: int = 4,
                 rank: Optional[int] = None, world_size: Optional[int] = None,
                 transform: Optional[Callable[[Dict[str, Any]], Any]] = None,
                 client_options: Optional[Dict[str, Any]] = None, **selection):
        super().__init__()
        if "batch_size" in selection:
            raise TypeError("M3ITDataset takes no batch_size: the DataLoader's batch_size is the schedule's "
                            "(M3ITDataLoader passes it on); message_batch_size sets the server's work units")
        unknown = set(selection) - set(_SELECTION_KEYS)
        if unknown:
            raise TypeError(f"unknown keyword argument(s): {', '.join(sorted(unknown))}")
        self.targets = targets
        self.selection = dict(selection)
        self.mixture = {"weights": dict(weights) if weights else None, "temperature": temperature,
                        "epoch_size": epoch_size, "stratified": stratified}
        self.shuffle, self.seed, self.drop_remainder = shuffle, seed, drop_remainder
        self.stream_options = dict(images=images, size=size if images == "decoded" else None, resize=resize,
                                   max_images=max_images, resample_instructions=resample_instructions,
                                   batch_size=message_batch_size)
        self.prefetch = max(1, prefetch)
        self.rank, self.world_size = rank, world_size
        self.transform = transform
        self.client_options = client_options or {}
        self.epoch = 0
        # The position: samples of self.epoch consumed before this iteration
        # (_start), steps consumed in it (_steps), and the geometry they count in.
        self._start = 0
        self._steps = 0
        self._geometry = (1, 1)  # (world size, batch size) of the current iteration
        self._stratum = 0
        self._plan: Optional[Plan] = None
        self._loader_batch: Optional[int] = None
        self._loader_workers = 0
        self._position = _Position()
        self._armed = False
        self._restored = False   # a loaded position waits for its iteration
        self._completed = False  # the last iteration ran to the epoch's end

    # -- the plan -----------------------------------------------------------------

    def _request(self, **view) -> Dict[str, Any]:
        return dict(shuffle=self.shuffle, seed=self.seed, epoch=self.epoch, weights=self.mixture["weights"],
                    temperature=self.mixture["temperature"], epoch_size=self.mixture["epoch_size"],
                    stratified=self.mixture["stratified"], stratum=self._stratum,
                    **self.stream_options, **self.selection, **view)

    def _fetch_plan(self, world: int, rank: int, batch: int, start: int) -> Plan:
        with Client(self.targets, **self.client_options) as c:
            return c.plan(schedule=Schedule(world, rank, batch, 1, 0, start, self.drop_remainder),
                          **self._request())

    def plan(self) -> Plan:
        """The plan of the current epoch as the server computes it (mixture
        components, shares, repeats, samples per epoch, fingerprint)."""
        rank, world = _dist_info(self.rank, self.world_size)
        return self._fetch_plan(world, rank, self._loader_batch or 1, 0)

    # -- epochs and state -------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Start `epoch` from its beginning (its shuffle order, mixture draws and
        instruction re-sampling), unless a position restored with
        load_state_dict() for this very epoch is waiting to be resumed.
        Without set_epoch, an iteration that follows a completed one moves on
        to the next epoch by itself."""
        if self._restored and epoch == self.epoch:
            return
        self.epoch = epoch
        self._start = self._steps = 0
        self._plan = None
        self._restored = self._completed = False

    def _samples(self) -> int:
        world, batch = self._geometry
        samples = self._start + self._steps * world * batch
        if self._plan is not None:
            samples = min(samples, self._plan.epoch_samples)
        return samples

    def state_dict(self) -> Dict[str, Any]:
        """The job's data position: the epoch and the samples of it consumed
        (the same on every rank), with what identifies the plan they count in.
        Counted by M3ITDataLoader; with a plain DataLoader call configure()."""
        return {"version": _STATE_VERSION, "epoch": self.epoch, "samples": self._samples(),
                "fingerprint": self._plan.fingerprint if self._plan else None,
                "dataset_version": self._plan.dataset_version if self._plan else None,
                "seed": self.seed, "shuffle": self.shuffle, "selection": dict(self.selection),
                "mixture": dict(self.mixture), "stratum": self._stratum,
                "world_size": self._geometry[0], "batch_size": self._geometry[1]}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Continue from a state_dict(), with any world size, DataLoader batch
        size and number of workers. Raises ValueError when the state belongs to
        another selection, mixture, seed, order or dataset version."""
        if state.get("version") != _STATE_VERSION:
            raise ValueError("state_dict is not an m3serve dataset state of this version "
                             f"(version {state.get('version')!r}, expected {_STATE_VERSION})")
        differs = []
        for name, mine in (("selection", self.selection), ("mixture", self.mixture), ("seed", self.seed),
                           ("shuffle", self.shuffle)):
            if state[name] != mine:
                differs.append(f"{name}: saved {state[name]!r}, now {mine!r}")
        if differs:
            raise ValueError("state_dict belongs to another plan; " + "; ".join(differs))
        self.epoch = state["epoch"]
        self._stratum = state.get("stratum") or 0
        if state.get("fingerprint"):
            rank, world = _dist_info(self.rank, self.world_size)
            plan = self._fetch_plan(world, rank, 1, 0)
            if plan.fingerprint != state["fingerprint"]:
                if plan.dataset_version != state.get("dataset_version"):
                    raise ValueError(f"state_dict was saved under dataset version {state.get('dataset_version')}; "
                                     f"the server serves {plan.dataset_version}")
                raise ValueError(f"state_dict was saved under plan {state['fingerprint']}; the same request "
                                 f"now resolves to plan {plan.fingerprint} (the store's content differs)")
            self._plan = plan
        else:
            self._plan = None
        self._start = state["samples"]
        self._steps = 0
        self._geometry = (state.get("world_size") or 1, state.get("batch_size") or 1)
        self._restored, self._completed = True, False

    # -- the loader's geometry ---------------------------------------------------------

    def configure(self, batch_size: int, num_workers: int = 0, multiprocessing_context=None) -> None:
        """Tell the dataset the DataLoader's batch size and workers (done by
        M3ITDataLoader). With a plain DataLoader call it yourself and count
        consumed batches with consumed()."""
        if batch_size is None or batch_size < 1:
            raise ValueError("M3ITDataset needs a DataLoader batch_size >= 1 (its batches are schedule steps)")
        self._loader_batch, self._loader_workers = batch_size, num_workers
        if num_workers > 0:
            import multiprocessing
            ctx = multiprocessing_context or multiprocessing.get_context()
            if isinstance(ctx, str):
                ctx = multiprocessing.get_context(ctx)
            self._position = _Position(ctx)
        else:
            self._position = _Position()

    def begin_iteration(self) -> None:
        """Fix where this iteration starts and publish it to the workers: the
        restored or current position of this epoch, in the loader's geometry
        (after a completed iteration: the next epoch). Called by
        M3ITDataLoader before its workers (re)start."""
        if self._completed and not self._restored:
            self.set_epoch(self.epoch + 1)
        rank, world = _dist_info(self.rank, self.world_size)
        batch = self._loader_batch or 1
        start = self._samples()
        if self.mixture["stratified"] and not self._stratum:
            self._stratum = world * batch  # the job's global batch, kept across elastic resumes
        self._plan = self._fetch_plan(world, rank, batch, start)
        self._start, self._steps, self._geometry = start, 0, (world, batch)
        self._restored = self._completed = False
        self._position.set(self._plan.fingerprint, epoch=self.epoch, start=start, rank=rank, world=world,
                           batch=batch, workers=max(1, self._loader_workers), stratum=self._stratum)
        self._armed = self._loader_workers == 0

    def consumed(self, batches: int = 1) -> None:
        """Count batches the training loop has taken (M3ITDataLoader does)."""
        self._steps += batches

    def end_iteration(self) -> None:
        """The iteration ran to the epoch's end (M3ITDataLoader calls this)."""
        if self._plan is not None:
            self._start, self._steps = self._plan.epoch_samples, 0
        self._completed = True

    def _share(self) -> Tuple[int, int]:
        """(samples, steps) this rank takes in the rest of the epoch."""
        rank, world = _dist_info(self.rank, self.world_size)
        batch = self._loader_batch or 1
        start = self._samples()
        total = self._fetch_plan(world, rank, batch, start).epoch_samples
        rest = max(0, total - start)
        full, tail = divmod(rest, world * batch)
        part = 0 if self.drop_remainder else min(batch, max(0, tail - rank * batch))
        return full * batch + part, full + (1 if part else 0)

    def __len__(self) -> int:
        """Samples this rank iterates in the rest of the epoch (all its workers)."""
        return self._share()[0]

    def steps(self) -> int:
        """Batches this rank's DataLoader yields in the rest of the epoch."""
        return self._share()[1]

    # -- iteration ---------------------------------------------------------------

    def __iter__(self):
        info = tud.get_worker_info()
        if info is None and not self._armed:
            self.begin_iteration()  # iterated directly, without M3ITDataLoader
        self._armed = False
        fingerprint, p = self._position.get()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if workers != p["workers"]:
            raise RuntimeError(f"M3ITDataset configured for {p['workers']} workers, running with {workers}: "
                               "use M3ITDataLoader, or call configure() with the DataLoader's num_workers")
        schedule = Schedule(p["world"], p["rank"], p["batch"], workers, worker, p["start"], self.drop_remainder)
        request = self._request(schedule=schedule, plan_fingerprint=fingerprint)
        request.update(epoch=p["epoch"], stratum=p["stratum"])
        return self._generate(request)

    def _generate(self, request: Dict[str, Any]):
        reader = _Prefetcher(Client(self.targets, **self.client_options), request, self.prefetch)
        try:
            for item in reader:
                for x in item.instances:
                    sample = _sample(x)
                    yield self.transform(sample) if self.transform else sample
        finally:
            reader.shutdown()


class _Prefetcher:
    """Reads a stream's messages ahead on a background thread into a bounded
    queue. The thread owns the call; shutdown() cancels it and joins the
    thread. Prefetchers still running when the interpreter exits are shut down
    by an atexit hook, before daemon threads freeze (a frozen reader would hold
    gRPC's locks forever)."""

    _active: "weakref.WeakSet[_Prefetcher]" = weakref.WeakSet()
    _END = object()

    def __init__(self, client: Client, request: Dict[str, Any], depth: int):
        self.client = client
        self.stream = client.stream(**request)
        self.queue: "queue.Queue[Any]" = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._read, name="m3serve-prefetch", daemon=True)
        _Prefetcher._active.add(self)
        self.thread.start()

    def _read(self) -> None:
        try:
            for batch in self.stream:
                while not self.stop.is_set():
                    try:
                        self.queue.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self.stop.is_set():
                    return
            self.queue.put(self._END)
        except BaseException as e:  # handed to the consumer
            if not self.stop.is_set():
                self.queue.put(e)

    def __iter__(self):
        while True:
            item = self.queue.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def shutdown(self) -> None:
        if self.stop.is_set():
            return
        self.stop.set()
        self.stream.cancel()
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.client.close()
        _Prefetcher._active.discard(self)


@atexit.register
def _shutdown_prefetchers() -> None:
    for p in list(_Prefetcher._active):
        p.shutdown()


class M3ITDataLoader(tud.DataLoader):
    """A torch DataLoader that keeps its M3ITDataset's data position exact: it
    publishes where each iteration starts (also to persistent workers) and
    counts the batches the training loop consumes, so dataset.state_dict() can
    be saved anywhere. len() is the exact number of batches.

    Workers start with the "forkserver" method unless multiprocessing_context
    is given: gRPC is not fork-safe, and a worker forked from a process that
    has used gRPC breaks the parent's connections too."""

    def __init__(self, dataset: M3ITDataset, **kwargs):
        if kwargs.get("num_workers", 0) > 0 and kwargs.get("multiprocessing_context") is None:
            kwargs["multiprocessing_context"] = "forkserver"
        if kwargs.get("drop_last"):
            raise ValueError("drop_last is the dataset's drop_remainder (whole schedule steps)")
        batch_size = kwargs.get("batch_size", 1)
        dataset.configure(batch_size, kwargs.get("num_workers", 0) or 0, kwargs.get("multiprocessing_context"))
        super().__init__(dataset, **kwargs)

    def __iter__(self):
        ds: M3ITDataset = self.dataset  # type: ignore[assignment]
        ds.begin_iteration()
        it = super().__iter__()
        for batch in it:
            ds.consumed()
            yield batch
        ds.end_iteration()

    def __len__(self) -> int:
        ds: M3ITDataset = self.dataset  # type: ignore[assignment]
        return ds.steps()


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


class M3ITMapDataset(tud.Dataset):
    """Map-style access to a selection in key order (task, split, language,
    ordinal): len() and dataset[i], fetched with batched GetInstances calls and
    read ahead for sequential access. With hf_rows=True items are shaped like
    the Hugging Face M3IT rows (instruction, inputs, outputs,
    image_base64_str), so code written against load_dataset("MMInstruction/
    M3IT", name) switches by changing its loader line.

    images / size / resize / max_images as M3ITDataset (hf_rows needs
    images="encoded", the default then). readahead: ids fetched per call.
    cache: instances kept (per process). Safe in DataLoader workers: each
    process opens its own connection.
    """

    def __init__(self, targets, *, hf_rows: bool = False, images: Optional[str] = None,
                 size: Optional[Tuple[int, int]] = None, resize: str = "fit", max_images: int = 0,
                 readahead: int = 64, cache: int = 1024, transform: Optional[Callable[[Any], Any]] = None,
                 client_options: Optional[Dict[str, Any]] = None, **selection):
        unknown = set(selection) - set(_SELECTION_KEYS)
        if unknown:
            raise TypeError(f"unknown keyword argument(s): {', '.join(sorted(unknown))}")
        images = images or ("encoded" if hf_rows else "decoded")
        if hf_rows and images != "encoded":
            raise ValueError("hf_rows=True gives image_base64_str: it needs images='encoded'")
        if images == "decoded" and size is None:
            size = (224, 224)
        self.targets, self.hf_rows, self.transform = targets, hf_rows, transform
        self.image_options = dict(images=images, size=size if images == "decoded" else None, resize=resize,
                                  max_images=max_images)
        self.readahead = max(1, min(readahead, 1024))
        self.cache_size = max(cache, self.readahead)
        self.client_options = client_options or {}
        self._selection = dict(selection)
        # Under the evaluation guard a group's kept instances are not ordinals
        # 0..n-1: items are then fetched by position in the selection (a
        # sequential stream from that position), which the server maps.
        self._by_position = bool(selection.get("exclude_eval_images"))
        with Client(targets, **self.client_options) as c:
            groups = [g.to_dict() for g in c.count(**selection).groups]
        self._groups = [(f"{g['task']}/{g['split']}/{g['lang']}", g["instances"]) for g in groups]
        self._prefix = [0]
        for _, n in self._groups:
            self._prefix.append(self._prefix[-1] + n)
        self._client: Optional[Client] = None
        self._pid = None
        self._cache: "collections.OrderedDict[int, Any]" = collections.OrderedDict()

    def __len__(self) -> int:
        return self._prefix[-1]

    def id(self, index: int) -> str:
        """The instance id ("task/split/lang/ordinal") at `index`."""
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} instances")
        if self._by_position:
            return self._fetch(index, index + 1)[0].id
        import bisect
        g = bisect.bisect_right(self._prefix, index) - 1
        return f"{self._groups[g][0]}/{index - self._prefix[g]}"

    def _fetch(self, begin: int, end: int) -> List[Instance]:
        """Instances at positions [begin, end) of the selection."""
        if not self._by_position:
            return self._conn().get([self.id(i) for i in range(begin, end)], **self.image_options)
        out: List[Instance] = []
        for batch in self._conn().stream(start_position=begin, limit=end - begin, batch_size=end - begin,
                                         **self.image_options, **self._selection):
            out.extend(batch.instances)
        if len(out) != end - begin:
            raise RuntimeError(f"positions {begin}..{end}: the server sent {len(out)} instances; the store "
                               "changed under this dataset")
        return out

    def _conn(self) -> Client:
        if self._client is None or self._pid != os.getpid():
            self._client = Client(self.targets, **self.client_options)  # one per process (fork safety)
            self._pid = os.getpid()
        return self._client

    def __getitem__(self, index: int):
        if index < 0:
            index += len(self)
        if index in self._cache:
            self._cache.move_to_end(index)
            item = self._cache[index]
        else:
            end = min(len(self), index + self.readahead)
            fetched = self._fetch(index, end)
            for i, x in zip(range(index, end), fetched):
                self._cache[i] = self._row(x)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
            item = self._cache[index]
        return self.transform(item) if self.transform else item

    def _row(self, x: Instance) -> Any:
        if not self.hf_rows:
            return _sample(x)
        return {"instruction": x.instruction, "inputs": x.inputs, "outputs": x.outputs,
                "image_base64_str": [base64.b64encode(i.data).decode("ascii") for i in x.images],
                "id": x.id, "meta": x.meta}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_client"], state["_pid"] = None, None
        state["_cache"] = collections.OrderedDict()
        return state
