"""Push a ModelKit (or a ModelPack: the same manifest, config and blobs) from kit's local storage to a registry: the
blobs it lacks, then the manifest.

For each blob (config and layers): ``HEAD`` — present ones are skipped; a missing one is mounted from another
repository of the same registry when local storage shows the ModelKit there, else uploaded in chunks streamed
from its file. Up to ``jobs`` blobs move at once. The manifest goes last, so the tag never names a ModelKit
whose blobs are not all there; a failure leaves the local ModelKit as it was, and a re-run sends only what
the registry still lacks. A cancel (Ctrl-C, the wizard's quit) closes the connections in flight at once and
says how many blobs the registry holds.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from kitmlflow_tui.core.errors import InterruptedByUser, PushError
from kitmlflow_tui.core.events import ProgressCallback, ProgressEvent
from kitmlflow_tui.core.modelkit_reference import ModelKitRef
from kitmlflow_tui.core.next_commands import RegistryAccess
from kitmlflow_tui.core.packing.storage import Descriptor
from kitmlflow_tui.core.registry.client import RegistryClient, RegistryOptions, _Stopped
from kitmlflow_tui.core.registry.credentials import CredentialStore
from kitmlflow_tui.core.registry.local import LocalModelKit, read_local_modelkit, repositories_holding

# A layer's kind in a progress label: a ModelKit's (model, code, ...) or a ModelPack's (weight, weight.config, ...).
_KIND_RE = re.compile(r"application/vnd\.(?:kitops\.modelkit|cncf\.model)\.([a-z.]+)\.v1")


@dataclass(frozen=True)
class PushResult:
    reference: str  # "registry/repository:tag"
    digest: str  # of the manifest, the same as in local storage
    blobs: int
    uploaded_blobs: int
    uploaded_bytes: int
    mounted_blobs: int
    existing_blobs: int
    access: RegistryAccess = RegistryAccess()  # how the registry was reached (for the kit commands printed next)


def push_modelkit(
    source: ModelKitRef,
    destination: ModelKitRef | None = None,
    options: RegistryOptions | None = None,
    *,
    storage_root: Path | None = None,
    credentials: CredentialStore | None = None,
    on_progress: ProgressCallback | None = None,
    on_note: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
    before_upload: Callable[[RegistryClient], None] | None = None,
) -> PushResult:
    """Push the local ModelKit ``source`` to ``destination`` (default: ``source`` itself, which then names a registry).

    ``on_progress`` gets the download's events: ``plan`` (bytes and blobs to send), then per blob
    ``file_start`` / ``bytes`` / ``file_done`` (``path`` is a label such as ``model sha256:0123abcd``),
    ``file_skipped`` for blobs the registry has. ``cancel`` ends the requests in flight at once; the error then
    says how many blobs the registry holds (a re-run sends only the others). ``before_upload`` is called with the
    connected client before anything is sent (to refuse a tag that must not be replaced).
    """
    options = (options or RegistryOptions()).validate()
    local = read_local_modelkit(source, storage_root=storage_root)
    target = source if destination is None else destination
    progress = on_progress or (lambda event: None)
    cancel = cancel or threading.Event()
    there: list[Descriptor] = []  # blobs the registry holds: found, mounted or uploaded
    try:
        with RegistryClient.connect(
            target.registry, options, credentials=credentials, on_note=on_note, cancel=cancel
        ) as client:
            if before_upload is not None:
                before_upload(client)
            missing: list[Descriptor] = []
            for blob in local.blobs:
                _check_cancel(cancel)
                if client.blob_exists(target.repository, blob.digest, blob.size, push=True):
                    there.append(blob)
                    progress(ProgressEvent("file_skipped", _label(blob), blob.size))
                else:
                    missing.append(blob)
            progress(
                ProgressEvent(
                    "plan",
                    size=sum(b.size for b in missing),
                    total=sum(b.size for b in local.blobs),
                    files=len(missing),
                )
            )
            sources = repositories_holding(local.storage, target.registry, {b.digest for b in missing})
            outcomes = _send_blobs(client, local, target, missing, sources, options.jobs, progress, cancel, there)
            _check_cancel(cancel)
            digest = client.put_manifest(target.repository, target.tag, local.manifest_bytes, local.manifest.media_type)
    except (InterruptedByUser, KeyboardInterrupt):
        cancel.set()
        raise _cancelled(local, target, there) from None
    if digest != local.manifest.digest:  # pragma: no cover - put_manifest hashes the very bytes it sent
        raise PushError(f"The pushed manifest {digest} is not the local {local.manifest.digest}.")
    uploaded = [blob for blob, how in outcomes if how == "uploaded"]
    return PushResult(
        reference=str(target),
        digest=digest,
        blobs=len(local.blobs),
        uploaded_blobs=len(uploaded),
        uploaded_bytes=sum(blob.size for blob in uploaded),
        mounted_blobs=sum(1 for _, how in outcomes if how == "mounted"),
        existing_blobs=len(local.blobs) - len(missing),
        access=client.access,
    )


def _send_blobs(
    client: RegistryClient,
    local: LocalModelKit,
    target: ModelKitRef,
    missing: list[Descriptor],
    sources: dict[str, list[str]],
    jobs: int,
    progress: ProgressCallback,
    cancel: threading.Event,
    there: list[Descriptor],
) -> list[tuple[Descriptor, str]]:
    """Upload (or mount) the missing blobs, ``jobs`` at a time, each added to ``there`` once the registry holds
    it; the first failure stops the others."""
    if not missing:
        return []
    stop = threading.Event()

    def should_stop() -> None:
        if cancel.is_set():
            raise InterruptedByUser("Push cancelled.")
        if stop.is_set():
            raise _Stopped()

    def send(blob: Descriptor) -> tuple[Descriptor, str]:
        label = _label(blob)
        should_stop()
        progress(ProgressEvent("file_start", label, blob.size))
        sent = 0

        def on_bytes(count: int) -> None:
            nonlocal sent
            sent += count
            progress(ProgressEvent("bytes", label, count))

        try:
            how = client.upload_blob(
                target.repository,
                blob.digest,
                blob.size,
                local.blob_file(blob),
                mount_from=tuple(r for r in sources.get(blob.digest, ()) if r != target.repository),
                on_bytes=on_bytes,
                should_stop=should_stop,
            )
        except BaseException:
            stop.set()
            if sent:
                progress(ProgressEvent("bytes", label, -sent))  # a failed upload's bytes do not count
            raise
        there.append(blob)
        if how == "mounted":
            progress(ProgressEvent("bytes", label, blob.size))
        progress(ProgressEvent("file_done", label, blob.size))
        return blob, how

    # Big blobs first: the longest upload starts at once and the small ones fill the other slots.
    ordered = sorted(missing, key=lambda blob: blob.size, reverse=True)
    with ThreadPoolExecutor(max_workers=min(jobs, len(ordered)), thread_name_prefix="kitmlflow-push") as pool:
        futures = [pool.submit(send, blob) for blob in ordered]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)  # a failing upload sets `stop` itself
        except BaseException:  # Ctrl-C in the main thread: stop the uploads, then re-raise
            cancel.set()
            raise
    errors = [error for f in futures if (error := f.exception()) is not None]
    real = [e for e in errors if not isinstance(e, _Stopped)]
    if real:
        raise real[0]
    return [f.result() for f in futures]


def _check_cancel(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise InterruptedByUser("Push cancelled.")


def _cancelled(local: LocalModelKit, target: ModelKitRef, there: list[Descriptor]) -> InterruptedByUser:
    """What a cancelled push leaves: how many of the ModelKit's blobs the registry holds; the tag is not moved."""
    from kitmlflow_tui.core.selection.plan import format_size

    held = {blob.digest for blob in there}
    count = sum(1 for blob in local.blobs if blob.digest in held)
    size = sum(blob.size for blob in local.blobs if blob.digest in held)
    total = sum(blob.size for blob in local.blobs)
    return InterruptedByUser(
        f"Push cancelled: {count} of {len(local.blobs)} blobs ({format_size(size)} of {format_size(total)}) are in "
        f"the registry; {target} was not written."
    )


def _label(blob: Descriptor) -> str:
    match = _KIND_RE.match(blob.media_type)
    kind = match.group(1) if match else "blob"
    return f"{kind} {blob.digest[7:19]}"
