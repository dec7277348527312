"""The m3serve gRPC client: catalog, count, random access and resumable streams.

Semantics and defaults follow the C++ client (client/dataset_client.h): unary
calls have a deadline and fail over between targets while one is UNAVAILABLE;
streams reconnect on UNAVAILABLE, connection loss or a full replica
(RESOURCE_EXHAUSTED), with backoff, to the next target, continuing from the
resume token of the last batch received, so every instance of the shard is
delivered exactly once.

Processes: gRPC does not survive fork(). A Client used in a forked child of
the process that created it, or created in a child forked while its parent had
channels open, raises M3ServeError(FAILED_PRECONDITION) naming the fixes,
instead of failing later with UNAVAILABLE; with GRPC_ENABLE_FORK_SUPPORT=1 in
the environment (before grpc is imported) a Client reconnects in the child.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
import warnings
from dataclasses import dataclass, field, fields
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import grpc
import numpy as np

from m3serve.v1 import dataset_pb2 as pb
from m3serve.v1 import dataset_pb2_grpc as pb_grpc

_RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED)
_COMMERCIAL = {pb.COMMERCIAL_USE_YES: "yes", pb.COMMERCIAL_USE_NO: "no"}
_FORMATS = {
    pb.Image.FORMAT_JPEG: "jpeg", pb.Image.FORMAT_PNG: "png", pb.Image.FORMAT_GIF: "gif",
    pb.Image.FORMAT_BMP: "bmp", pb.Image.FORMAT_WEBP: "webp", pb.Image.FORMAT_TIFF: "tiff",
    pb.Image.FORMAT_RGB8: "rgb8",
}
_IMAGE_MODES = {"encoded": pb.IMAGE_MODE_ENCODED, "decoded": pb.IMAGE_MODE_DECODED, "none": pb.IMAGE_MODE_NONE}
_RESIZE = {"fit": pb.RESIZE_MODE_FIT, "fill": pb.RESIZE_MODE_FILL, "stretch": pb.RESIZE_MODE_STRETCH}
_MODALITY = {None: pb.MODALITY_UNSPECIFIED, "image": pb.MODALITY_IMAGE, "video": pb.MODALITY_VIDEO}
_HELD_OUT = {None: pb.HELD_OUT_UNSPECIFIED, "exclude": pb.HELD_OUT_EXCLUDE, "only": pb.HELD_OUT_ONLY}
_REPORT_FORMATS = {"text": pb.REPORT_FORMAT_TEXT, "json": pb.REPORT_FORMAT_JSON, "markdown": pb.REPORT_FORMAT_MARKDOWN}


# gRPC's fork support: set by the user in the environment before grpc is
# imported (it cannot be turned on later in the process).
_FORK_SUPPORT = os.environ.get("GRPC_ENABLE_FORK_SUPPORT", "").strip().lower() in ("1", "true", "yes")
# Channels open in this process, and which process that is: a fork inherits
# the record, so a child knows that its parent had gRPC running.
_live = {"pid": os.getpid(), "channels": 0}
_live_lock = threading.RLock()  # re-entrant: a Client.__del__ may run (GC) inside _open


def _fork_error(what: str, parent: int) -> "M3ServeError":
    return M3ServeError(
        grpc.StatusCode.FAILED_PRECONDITION,
        f"m3serve: {what} in process {os.getpid()}, forked from process {parent} while it had gRPC channels "
        "open; gRPC does not survive fork(). Fixes: start worker processes with 'forkserver' or 'spawn' "
        "(multiprocessing.set_start_method, or DataLoader(multiprocessing_context='forkserver'); "
        "m3serve.torch.M3ITDataLoader does this), close the parent's m3serve.Client before forking, or set "
        "GRPC_ENABLE_FORK_SUPPORT=1 in the environment before Python starts (then a Client reconnects in "
        "the child)")


class M3ServeError(Exception):
    """An error from the server (or the transport): ``code`` is a grpc.StatusCode,
    ``details`` the server's message, which names the offending request field."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


@dataclass
class Image:
    """One image. ``array`` is set for decoded images: a read-only numpy uint8
    array (H, W, 3) over the received bytes (no copy). ``data`` holds the
    original encoded bytes otherwise (empty with images="none")."""

    format: str
    width: int
    height: int
    content_hash: str
    data: bytes = b""
    array: Optional[np.ndarray] = None


@dataclass
class Instance:
    id: str
    task: str
    split: str
    language: str
    instruction: str
    inputs: str
    outputs: str
    images: List[Image]
    license: str
    source_dataset: str
    meta: Optional[Dict[str, Any]]
    shard_position: int
    sample_index: int = 0   # index in the epoch's global sequence
    component: str = ""     # mixture component it was drawn for ("" without a mixture)


@dataclass
class Batch:
    instances: List[Instance]
    resume_token: bytes
    shard_size: int
    next_position: int
    removed_by_policy: List[str] = field(default_factory=list)
    plan_fingerprint: str = ""
    epoch_samples: int = 0


@dataclass
class PlanComponent:
    """One component of an epoch's plan (Client.plan())."""
    key: str            # "coco", "coco:en"; "" for a plain selection
    instances: int      # in the component, after selection and policy
    weight: float       # as given, or instances^(1/T)
    share: float        # weight / sum of weights
    samples: int        # samples per epoch
    passes: float       # samples / instances: > 1 repeats, < 1 subsampled


@dataclass
class Plan:
    """What a stream request would serve (Client.plan())."""
    fingerprint: str
    dataset_version: str
    epoch_samples: int
    view_instances: int
    stratum: int
    components: List[PlanComponent]
    removed_by_policy: List[str] = field(default_factory=list)


class _DictAccess:
    """Results used to be dicts (the shape of the CLI's --json). For one release
    they still answer r["key"], r.get(), `in`, keys() and compare equal to that
    dict, with a DeprecationWarning; use the attributes (the proto's fields)."""

    def to_dict(self) -> Dict[str, Any]:
        """The former dict (the shape of `m3serve-client ... --json`)."""
        raise NotImplementedError

    def __getitem__(self, key: str) -> Any:
        warnings.warn(f"{type(self).__name__}[{key!r}]: results are dataclasses now; dict access goes in the "
                      "next release (use the attribute, or to_dict())", DeprecationWarning, stacklevel=2)
        return self.to_dict()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_dict().get(key, default)

    def __contains__(self, key: str) -> bool:
        return key in self.to_dict()

    def keys(self):
        return self.to_dict().keys()

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, dict):
            return self.to_dict() == other
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f.name) == getattr(other, f.name) for f in fields(self))


@dataclass(eq=False)
class GroupCount(_DictAccess):
    """Instances of one (task, split, language) group."""
    task: str
    split: str
    language: str
    instances: int
    eval_excluded: int = 0  # Count with the evaluation guard: instances it left out

    def to_dict(self) -> Dict[str, Any]:
        return {"task": self.task, "split": self.split, "lang": self.language, "instances": self.instances}


@dataclass(eq=False)
class CountResult(_DictAccess):
    """Client.count(): the total and per group, after filters, policy and guard."""
    total: int
    groups: List[GroupCount]
    removed_by_policy: List[str]
    eval_set: str = ""            # the guard's evaluation set ("" without it)
    eval_excluded: int = 0
    eval_excluded_by_task: Dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        out = {"total": self.total, "groups": [g.to_dict() for g in self.groups],
               "removed_by_policy": list(self.removed_by_policy)}
        if self.eval_set:
            out.update(eval_set=self.eval_set, eval_excluded=self.eval_excluded,
                       eval_excluded_by_task=dict(self.eval_excluded_by_task))
        return out


@dataclass(eq=False)
class TaskInfo(_DictAccess):
    """One task of the catalog (an M3IT config)."""
    name: str
    category: str
    source_dataset: str
    license: str            # SPDX id
    commercial_use: str     # "yes" | "no" | "unknown"
    held_out: bool
    modality: str           # "image" | "video"
    instruction_count: int
    default_language: str
    instances: int
    license_text: str

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "category": self.category, "source_dataset": self.source_dataset,
                "license": self.license, "license_text": self.license_text,
                "commercial_use": self.commercial_use, "held_out": self.held_out, "modality": self.modality,
                "instructions": self.instruction_count, "instances": self.instances}


@dataclass(eq=False)
class Catalog(_DictAccess):
    """Client.catalog(): what the server serves to this caller."""
    tasks: List[TaskInfo]
    languages: List[str]
    splits: List[str]
    counts: List[GroupCount]
    dataset_version: str
    removed_tasks: List[str]   # LicensePolicy.removed_tasks: tasks the server's policy removes
    total_instances: int
    unique_images: int

    def to_dict(self) -> Dict[str, Any]:
        return {"dataset_version": self.dataset_version, "total_instances": self.total_instances,
                "unique_images": self.unique_images, "languages": list(self.languages),
                "splits": list(self.splits), "tasks": [t.to_dict() for t in self.tasks],
                "groups": [g.to_dict() for g in self.counts], "policy": {"removed_tasks": list(self.removed_tasks)}}


@dataclass
class SourceAttribution:
    """One source dataset of an attribution report (Client.attribution())."""
    source_dataset: str
    tasks: List[str]
    license: str          # SPDX id, e.g. "CC-BY-4.0", "LicenseRef-Custom"
    license_text: str     # as the M3IT paper words it
    commercial_use: str   # "yes" | "no" | "unknown"
    instances: int        # of the selection
    images: int           # distinct images of those instances
    samples: int          # per epoch (a mixture's; otherwise = instances)


@dataclass
class Attribution:
    """Who to credit and under which terms (Client.attribution()); `report`
    is the rendering in the requested format (text, JSON or Markdown)."""
    dataset_version: str
    sources: List[SourceAttribution]
    instances: int
    images: int
    samples: int
    removed_by_policy: List[str]
    eval_set: str         # the guard's evaluation set, "" without the guard
    report: str


@dataclass
class Schedule:
    """A training job's view of the epoch: global step s takes samples
    [start_sample + s*W*B, start_sample + (s+1)*W*B); rank r takes the r-th B
    of each step; worker k of the rank's K loader workers takes steps k, k+K, ..."""
    world_size: int = 1
    rank: int = 0
    batch_size: int = 1
    num_workers: int = 1
    worker: int = 0
    start_sample: int = 0
    drop_remainder: bool = False


def tls_credentials(ca_file: Optional[str] = None, cert_file: Optional[str] = None,
                    key_file: Optional[str] = None) -> grpc.ChannelCredentials:
    """TLS channel credentials from PEM files: the CA of the server's
    certificate, and for mTLS this client's certificate and key."""
    def read(path):
        with open(path, "rb") as f:
            return f.read()
    return grpc.ssl_channel_credentials(
        root_certificates=read(ca_file) if ca_file else None,
        private_key=read(key_file) if key_file else None,
        certificate_chain=read(cert_file) if cert_file else None)


def _error(e: grpc.RpcError) -> M3ServeError:
    code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
    details = e.details() if hasattr(e, "details") else str(e)
    return M3ServeError(code, details or "")


def _image(img: pb.Image) -> Image:
    out = Image(_FORMATS.get(img.format, "unknown"), img.width, img.height, img.content_hash)
    if img.format == pb.Image.FORMAT_RGB8:
        # np.frombuffer views the bytes object; no per-pixel Python work, no copy.
        out.array = np.frombuffer(img.data, dtype=np.uint8).reshape(img.height, img.width, img.channels or 3)
    else:
        out.data = img.data
    return out


def _group(g: pb.GroupCount) -> GroupCount:
    return GroupCount(g.task, g.split, g.language, g.instances, g.eval_excluded)


def _instance(x: pb.Instance) -> Instance:
    return Instance(
        id=x.id, task=x.task, split=x.split, language=x.language, instruction=x.instruction,
        inputs=x.inputs, outputs=x.outputs, images=[_image(i) for i in x.images],
        license=x.license, source_dataset=x.source_dataset,
        meta=json.loads(x.meta_json) if x.meta_json else None, shard_position=x.shard_position,
        sample_index=x.sample_index, component=x.component)


def selection(tasks: Optional[Sequence[str]] = None, categories: Optional[Sequence[str]] = None,
              splits: Optional[Sequence[str]] = None, languages: Optional[Sequence[str]] = None,
              licenses: Optional[Sequence[str]] = None, commercial_use_only: bool = False,
              exclude_tasks: Optional[Sequence[str]] = None, modality: Optional[str] = None,
              held_out: Optional[str] = None, exclude_eval_images: bool = False,
              eval_splits: Optional[Sequence[str]] = None,
              eval_tasks: Optional[Sequence[str]] = None) -> pb.Selection:
    """Build a Selection message; empty or None fields mean no constraint.

    held_out: "exclude" leaves out the tasks the M3IT paper holds out for
    zero-shot evaluation, "only" selects just those, None selects them like
    any other task.
    exclude_eval_images: the evaluation-leakage guard. Leaves out every
    instance that shares an image (by content hash) with an instance of the
    evaluation set: eval_splits (default ["validation", "test"]) of eval_tasks
    (default: every task), in every language."""
    if modality not in _MODALITY:
        raise ValueError(f"modality must be 'image', 'video' or None, got {modality!r}")
    if held_out not in _HELD_OUT:
        raise ValueError(f"held_out must be 'exclude', 'only' or None, got {held_out!r}")
    return pb.Selection(
        tasks=list(tasks or []), categories=list(categories or []), splits=list(splits or []),
        languages=list(languages or []), licenses=list(licenses or []),
        commercial_use_only=commercial_use_only, exclude_tasks=list(exclude_tasks or []),
        modality=_MODALITY[modality], held_out=_HELD_OUT[held_out],
        exclude_eval_images=exclude_eval_images, eval_splits=list(eval_splits or []),
        eval_tasks=list(eval_tasks or []))


def _image_options(images: str, size: Optional[Tuple[int, int]], resize: str, max_images: int) -> pb.ImageOptions:
    if images not in _IMAGE_MODES:
        raise ValueError(f"images must be one of {sorted(_IMAGE_MODES)}, got {images!r}")
    if resize not in _RESIZE:
        raise ValueError(f"resize must be one of {sorted(_RESIZE)}, got {resize!r}")
    width, height = size if size else (0, 0)
    return pb.ImageOptions(mode=_IMAGE_MODES[images], width=width, height=height,
                           resize=_RESIZE[resize], max_images_per_instance=max_images)


class Stream:
    """An iterator of Batch (Client.stream()). cancel() may be called from
    any thread: it ends the call in progress, and the iterator then raises
    M3ServeError(CANCELLED)."""

    def __init__(self, client: "Client", request: pb.StreamRequest):
        self.cancelled = False
        self._call = None
        self._it = client._stream(request, self)

    def __iter__(self) -> "Stream":
        return self

    def __next__(self) -> Batch:
        return next(self._it)

    def cancel(self) -> None:
        self.cancelled = True
        call = self._call
        if call is not None:
            call.cancel()

    def close(self) -> None:
        """Stop iterating (from the iterating thread): cancel the call and
        close the iterator."""
        self.cancel()
        self._it.close()


def _mixture(weights: Optional[Union[Dict[str, float], Sequence[Tuple[str, float]]]],
             temperature: Optional[float], epoch_size: Optional[int], stratified: bool,
             stratum: int) -> pb.Mixture:
    m = pb.Mixture(stratified=stratified, stratum=stratum)
    items = list(weights.items()) if isinstance(weights, dict) else list(weights or [])
    for key, w in items:
        m.components.add(key=key, weight=float(w))
    if temperature is not None:
        m.temperature = float(temperature)
    if epoch_size is not None:
        m.epoch_size = int(epoch_size)
    return m


class Client:
    """A client of one or more m3serve servers ("host:port" targets).

    credentials: grpc channel credentials (see tls_credentials()), or
    tls_ca / tls_cert / tls_key: PEM file paths (picklable, so usable in
    DataLoader workers); token: a bearer token sent on every call.
    timeout: deadline of unary calls, seconds. max_attempts: a stream gives up
    after this many consecutive failed attempts that delivered nothing.
    initial_backoff / max_backoff: seconds between attempts (doubling).
    """

    def __init__(self, targets: Union[str, Sequence[str]], *, timeout: float = 30.0,
                 max_attempts: int = 30, initial_backoff: float = 0.1, max_backoff: float = 2.0,
                 max_receive_message_bytes: int = 128 << 20,
                 credentials: Optional[grpc.ChannelCredentials] = None, token: Optional[str] = None,
                 tls_ca: Optional[str] = None, tls_cert: Optional[str] = None, tls_key: Optional[str] = None):
        self.targets = [targets] if isinstance(targets, str) else list(targets)
        if credentials is None and (tls_ca or tls_cert):
            credentials = tls_credentials(tls_ca, tls_cert, tls_key)
        if not self.targets:
            raise ValueError("no server target given")
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self._credentials = credentials
        self._options = [
            ("grpc.max_receive_message_length", max_receive_message_bytes),
            ("grpc.keepalive_time_ms", 10000),
            ("grpc.keepalive_timeout_ms", 5000),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 2000),
        ]
        self._metadata = [("authorization", f"Bearer {token}")] if token else None
        self._next = itertools.count()
        self._lock = threading.Lock()
        self._channels: List[grpc.Channel] = []
        self._open("a Client is created")

    def _open(self, what: str) -> None:
        """Open this process's channels (after a fork: new ones)."""
        with _live_lock:
            me = os.getpid()
            if _live["pid"] != me:
                parent, had = _live["pid"], _live["channels"]
                if had and not _FORK_SUPPORT:
                    raise _fork_error(what, parent)
                _live["pid"], _live["channels"] = me, 0
            self._channels = [
                grpc.secure_channel(t, self._credentials, self._options) if self._credentials
                else grpc.insecure_channel(t, self._options)
                for t in self.targets
            ]
            _live["channels"] += len(self._channels)
            self._live_record = _live
            self._pid = me
        self._stubs = [pb_grpc.DatasetServiceStub(c) for c in self._channels]

    def _ensure_process(self) -> None:
        """A Client made in another process (before a fork) reconnects when
        gRPC's fork support is on, and otherwise says what to do."""
        if self._pid == os.getpid():
            return
        if not _FORK_SUPPORT:
            raise _fork_error(f"a Client created in process {self._pid} is used", self._pid)
        self._open("a Client reconnects")

    def close(self) -> None:
        if self._pid != os.getpid():
            return  # the parent's channels: not this process's to close
        with _live_lock:
            for c in self._channels:
                c.close()
            if getattr(self, "_live_record", None) is _live:
                _live["channels"] -= len(self._channels)
            self._channels = []

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _pick(self) -> int:
        with self._lock:
            return next(self._next)

    def _unary(self, method: str, request):
        self._ensure_process()
        first = self._pick()
        last = None
        for i in range(len(self._stubs)):
            stub = self._stubs[(first + i) % len(self._stubs)]
            try:
                return getattr(stub, method)(request, timeout=self.timeout, metadata=self._metadata)
            except grpc.RpcError as e:
                last = e
                if e.code() != grpc.StatusCode.UNAVAILABLE:
                    break
        raise _error(last)

    # -- unary calls ----------------------------------------------------------

    def catalog_message(self) -> pb.Catalog:
        """The catalog as the raw protobuf message."""
        return self._unary("GetCatalog", pb.GetCatalogRequest())

    def catalog(self) -> Catalog:
        """The catalog: tasks (license, commercial use, held-out, instances...),
        languages, splits, per-group counts, dataset version. (Also answers
        dict access in the shape of `m3serve-client catalog --json`, deprecated.)"""
        c = self.catalog_message()
        return Catalog(
            tasks=[TaskInfo(t.name, t.category, t.source_dataset, t.license,
                            _COMMERCIAL.get(t.commercial_use, "unknown"), t.held_out,
                            "video" if t.modality == pb.MODALITY_VIDEO else "image", t.instruction_count,
                            t.default_language, t.instances, t.license_text) for t in c.tasks],
            languages=list(c.languages), splits=list(c.splits),
            counts=[_group(g) for g in c.counts], dataset_version=c.dataset_version,
            removed_tasks=list(c.policy.removed_tasks), total_instances=c.total_instances,
            unique_images=c.unique_images)

    def count(self, **selection_kwargs) -> CountResult:
        """How many instances a selection matches (also answers dict access in
        the shape of `m3serve-client count --json`, deprecated).
        Keyword arguments: tasks, categories, splits, languages, licenses,
        commercial_use_only, exclude_tasks, modality, held_out,
        exclude_eval_images, eval_splits, eval_tasks. With the guard, also
        eval_set, eval_excluded and eval_excluded_by_task (instances each task
        loses)."""
        r = self._unary("Count", pb.CountRequest(selection=selection(**selection_kwargs)))
        return CountResult(r.total, [_group(g) for g in r.groups], list(r.removed_by_policy), r.eval_set,
                           r.eval_excluded, {t.task: t.instances for t in r.eval_excluded_by_task})

    def get(self, ids: Sequence[str], *, images: str = "encoded", size: Optional[Tuple[int, int]] = None,
            resize: str = "fit", max_images: int = 0, resample_instructions: bool = False,
            seed: int = 0, epoch: int = 0, **selection_kwargs) -> List[Instance]:
        """Instances by id ("task/split/lang/ordinal"), in request order. With
        selection keywords (e.g. exclude_eval_images=True), every id must be in
        that selection: one outside it raises M3ServeError (FAILED_PRECONDITION)
        naming the id and why."""
        req = pb.GetInstancesRequest(
            ids=list(ids), images=_image_options(images, size, resize, max_images),
            instructions=pb.INSTRUCTION_MODE_RESAMPLE if resample_instructions else pb.INSTRUCTION_MODE_AS_INGESTED,
            seed=seed, epoch=epoch)
        if selection_kwargs:
            req.selection.CopyFrom(selection(**selection_kwargs))
        return [_instance(x) for x in self._unary("GetInstances", req).instances]

    def attribution(self, *, format: str = "text",
                    weights: Optional[Union[Dict[str, float], Sequence[Tuple[str, float]]]] = None,
                    temperature: Optional[float] = None, epoch_size: Optional[int] = None,
                    **selection_kwargs) -> Attribution:
        """Per source dataset of a selection (or of a mixture's epoch, with
        weights / temperature / epoch_size as in stream()): its tasks, SPDX
        license and published wording, commercial use, instances, distinct
        images and samples per epoch. format: "text" | "json" | "markdown"
        (the rendering in Attribution.report, e.g. for a model card)."""
        if format not in _REPORT_FORMATS:
            raise ValueError(f"format must be one of {sorted(_REPORT_FORMATS)}, got {format!r}")
        req = pb.AttributionRequest(selection=selection(**selection_kwargs),
                                    mixture=_mixture(weights, temperature, epoch_size, False, 0),
                                    format=_REPORT_FORMATS[format])
        r = self._unary("Attribution", req)
        return Attribution(
            r.dataset_version,
            [SourceAttribution(s.source_dataset, list(s.tasks), s.license, s.license_text,
                               _COMMERCIAL.get(s.commercial_use, "unknown"), s.instances, s.images, s.samples)
             for s in r.sources],
            r.instances, r.images, r.samples, list(r.removed_by_policy), r.eval_set, r.report)

    def plan(self, **kwargs) -> Plan:
        """What stream(**kwargs) would serve: the plan fingerprint, the epoch's
        size, each mixture component's instances, weight, share, samples per
        epoch and passes, and the instances of this request's view."""
        r = self._unary("Plan", self.stream_request(**kwargs))
        return Plan(r.fingerprint, r.dataset_version, r.epoch_samples, r.view_instances, r.stratum,
                    [PlanComponent(c.key, c.instances, c.weight, c.share, c.samples, c.passes)
                     for c in r.components], list(r.removed_by_policy))

    # -- streaming ------------------------------------------------------------

    def stream_request(self, *, shard: Tuple[int, int] = (0, 1), drop_remainder: bool = False,
                       seed: int = 0, epoch: int = 0, shuffle: bool = False, images: str = "encoded",
                       size: Optional[Tuple[int, int]] = None, resize: str = "fit", max_images: int = 0,
                       resample_instructions: bool = False, batch_size: int = 32,
                       max_message_bytes: int = 0, resume_token: Optional[bytes] = None,
                       start_position: int = 0, limit: int = 0,
                       weights: Optional[Union[Dict[str, float], Sequence[Tuple[str, float]]]] = None,
                       temperature: Optional[float] = None, epoch_size: Optional[int] = None,
                       stratified: bool = False, stratum: int = 0, schedule: Optional[Schedule] = None,
                       plan_fingerprint: str = "", **selection_kwargs) -> pb.StreamRequest:
        """The StreamRequest that stream() sends (see stream() for the arguments)."""
        index, count = shard
        view: Dict[str, Any] = {}
        if schedule is not None:
            view["schedule"] = pb.Schedule(**schedule.__dict__)
        else:
            view["sharding"] = pb.Sharding(index=index, count=count, drop_remainder=drop_remainder)
        return pb.StreamRequest(
            selection=selection(**selection_kwargs), **view,
            mixture=_mixture(weights, temperature, epoch_size, stratified, stratum),
            plan_fingerprint=plan_fingerprint,
            order=pb.ORDER_SHUFFLED if shuffle else pb.ORDER_SEQUENTIAL,
            seed=seed, epoch=epoch,
            instructions=pb.INSTRUCTION_MODE_RESAMPLE if resample_instructions else pb.INSTRUCTION_MODE_AS_INGESTED,
            images=_image_options(images, size, resize, max_images),
            batch_size=batch_size, max_message_bytes=max_message_bytes,
            resume_token=resume_token or b"", start_position=start_position, limit=limit)

    def stream(self, **kwargs) -> "Stream":
        """Stream one shard of a selection as batches.

        Selection: tasks, categories, splits, languages, licenses,
        commercial_use_only, exclude_tasks, modality ("image" | "video"), held_out
        ("exclude" | "only").
        shard=(index, count), drop_remainder; shuffle, seed, epoch;
        images="encoded" | "decoded" | "none", size=(w, h), resize="fit" |
        "fill" | "stretch", max_images; resample_instructions; batch_size,
        max_message_bytes; resume_token (bytes from Batch.resume_token),
        start_position, limit.
        Mixture: weights={"coco": 0.2, "*": 1} (relative shares per task or
        "task:lang"; "*" = every other task) or temperature=T (weight =
        instances^(1/T)); epoch_size; stratified (every block of `stratum`
        samples holds each component's share to within one).
        schedule=Schedule(...) instead of shard: a training job's geometry.
        plan_fingerprint: refuse unless the request resolves to this plan.

        Reconnects transparently; raises M3ServeError for errors that retrying
        cannot fix (the server's code and message) or after max_attempts.
        """
        request = self.stream_request(**kwargs)
        self._ensure_process()
        return Stream(self, request)

    def _stream(self, request: pb.StreamRequest, handle: "Stream") -> Iterator[Batch]:
        limit = request.limit
        received = 0
        failures = 0
        backoff = self.initial_backoff
        target = self._pick()
        while True:
            if limit and received >= limit:
                return
            if handle.cancelled:
                raise M3ServeError(grpc.StatusCode.CANCELLED, "the stream was cancelled")
            call = self._stubs[target % len(self._stubs)].StreamInstances(request, metadata=self._metadata)
            handle._call = call
            try:
                for msg in call:
                    failures = 0
                    received += len(msg.instances)
                    request.resume_token = msg.resume_token
                    if limit:
                        request.limit = max(limit - received, 0)
                    yield Batch([_instance(x) for x in msg.instances], msg.resume_token,
                                msg.shard_size, msg.next_position, list(msg.removed_by_policy),
                                msg.plan_fingerprint, msg.epoch_samples)
                return
            except grpc.RpcError as e:
                if e.code() not in _RETRYABLE:
                    raise _error(e) from None
                failures += 1
                if failures >= self.max_attempts:
                    err = _error(e)
                    raise M3ServeError(err.code, f"{err.details} (gave up after {failures} attempts)") from None
                time.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                target += 1
            finally:
                call.cancel()
