"""The shared core: reference → catalogue → plan → download → Kitfile → pack.

The CLI and the wizard both call these functions; they only build the inputs and render the
observer's events. Nothing here prints or imports Textual.

Why one module of this size (about 650 lines): it is the data flow's one entry point, and each function is a
few lines of sequencing over the step modules (the steps' own work lives in them; the attestation's in ``attest/``). What is here beyond the
sequence is what only the core as a whole knows: the run cache and its lock (shared by the folder path, the
direct import and the wizard's "delete what was kept"), and the check that every selected file is in a layer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kitmlflow_tui import __version__
from kitmlflow_tui.core import locking, settings
from kitmlflow_tui.core.catalogue import Catalogue
from kitmlflow_tui.core.catalogue.records import ArtifactTree, RegisteredModelInfo, ResolvedRun, RunInfo
from kitmlflow_tui.core.download.downloader import Destinations, Downloader, DownloadResult
from kitmlflow_tui.core.errors import (
    BadInputError,
    DownloadError,
    InterruptedByUser,
    KitmlflowError,
    PackError,
    PushError,
)
from kitmlflow_tui.core.events import Observer, Step
from kitmlflow_tui.core.file_tree import FileTree, FolderTree, ListedFile, ListedTree
from kitmlflow_tui.core.modelkit_reference import ModelKitRef
from kitmlflow_tui.core.reference import Reference, require_importable, resolve_tracking_uri
from kitmlflow_tui.core.selection.plan import FilterSpec, LeftOut, Plan, make_plan, require_selection

if TYPE_CHECKING:
    from kitmlflow_tui.core.attest.keys import SigningKey
    from kitmlflow_tui.core.attest.produce import Attestation
    from kitmlflow_tui.core.kitfile import Kitfile, KitfileOverrides
    from kitmlflow_tui.core.packing.file_digests import FileDigest
    from kitmlflow_tui.core.packing.native import ArtifactWriter
    from kitmlflow_tui.core.packing.result import PackResult
    from kitmlflow_tui.core.provenance import MlflowProvenance
    from kitmlflow_tui.core.registry import PushResult, RegistryClient, RegistryOptions


@dataclass
class Session:
    """A connected catalogue plus the run and plan it resolved to. ``layers_settled``: the plan no longer
    selects a file the ModelKit would not hold (see :func:`settle_layers`)."""

    catalogue: Catalogue
    resolved: ResolvedRun
    plan: Plan
    cancel: threading.Event = field(default_factory=threading.Event)
    layers_settled: bool = False


def connect(reference: Reference, tracking_uri_flag: str | None, *, jobs: int, observer: Observer) -> Catalogue:
    tracking_uri = resolve_tracking_uri(reference.tracking_uri, tracking_uri_flag)
    catalogue_jobs = max(jobs, 8)
    observer.step(Step.CONNECT, f"Connecting to {_display(tracking_uri)}")
    return Catalogue(tracking_uri, jobs=catalogue_jobs)


def _display(uri: str) -> str:
    from kitmlflow_tui.core.reference import redact_uri

    return redact_uri(uri)


def session_from_listing(
    catalogue: Catalogue,
    run: RunInfo,
    tree: ArtifactTree,
    spec: FilterSpec,
    registered: RegisteredModelInfo | None = None,
    cancel: threading.Event | None = None,
) -> Session:
    """A session for a run whose tree was listed already (by the wizard), without listing it again. A run's
    registered version (``registered`` None) is looked up as ``Catalogue.resolve`` does for a headless import, so
    both write the same Kitfile."""
    if registered is None:
        registered = catalogue.registered_version_of_run(run, tree.logged_models)
    return Session(catalogue, ResolvedRun(run, tree, registered), make_plan(tree, spec), cancel or threading.Event())


def plan(
    reference: Reference,
    spec: FilterSpec,
    *,
    tracking_uri_flag: str | None = None,
    jobs: int = 8,
    observer: Observer | None = None,
    cancel: threading.Event | None = None,
    command: str = "import",
    any_status: bool = False,
) -> Session:
    """Resolve the reference, list its whole tree and apply the filter: no byte is downloaded. A run that is not
    FINISHED is refused (exit 5) unless ``any_status``; ``command`` (``import``, ``download``) words that refusal."""
    observer = observer or Observer()
    require_importable(reference)  # bad input fails before the network is touched
    spec.validate()
    catalogue = connect(reference, tracking_uri_flag, jobs=jobs, observer=observer)
    return plan_with(
        catalogue, reference, spec, observer=observer, cancel=cancel, command=command, any_status=any_status
    )


def plan_with(
    catalogue: Catalogue,
    reference: Reference,
    spec: FilterSpec,
    *,
    observer: Observer | None = None,
    cancel: threading.Event | None = None,
    command: str = "import",
    any_status: bool = False,
) -> Session:
    """``plan`` on a catalogue that is connected already (a sync plans many versions on one server)."""
    observer = observer or Observer()
    cancel = cancel or threading.Event()
    observer.step(Step.LIST, "Reading the run and listing its artifacts")
    resolved = catalogue.resolve(
        reference, require_finished=not any_status, command=command, on_listed=observer.listed, cancel=cancel
    )
    the_plan = make_plan(resolved.tree, spec)
    observer.step(Step.PLAN, f"{len(the_plan.selected)} of {len(resolved.tree.files)} files selected")
    require_selection(the_plan)
    return Session(catalogue, resolved, the_plan, cancel)


def download(session: Session, dest: Path, *, jobs: int = 8, observer: Observer | None = None) -> DownloadResult:
    observer = observer or Observer()
    observer.step(Step.DOWNLOAD, f"Downloading into {dest}")
    downloader = Downloader(
        session.catalogue.repository,
        jobs=jobs,
        on_progress=observer.progress,
        cancel=session.cancel,
        tracking_uri=session.catalogue.tracking_uri,
    )
    return downloader.download(session.plan, dest)


def cache_root() -> Path:
    """Where imports keep their downloads: ``$KITMLFLOW_CACHE_DIR``, else the user cache dir."""
    configured = settings.CACHE_DIR.raw()
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("kitmlflow", appauthor=False)) / "downloads"


def run_cache_dir(session: Session) -> Path:
    """One folder per (server, run), so a re-run of the same import resumes where it stopped."""
    return run_cache_path(session.catalogue.tracking_uri, session.resolved.run.run_id)


def run_cache_path(tracking_uri: str, run_id: str) -> Path:
    server = hashlib.sha256(tracking_uri.encode()).hexdigest()[:12]
    return cache_root() / server / run_id


def direct_resume_path(tracking_uri: str, run_id: str, storage_root: Path | None = None) -> Path:
    """Where the direct import of the run keeps its partial layer blobs (inside kit's storage) for a resume."""
    from kitmlflow_tui.core.packing.direct import RESUME_DIR_NAME
    from kitmlflow_tui.core.packing.storage import KitStorage, resolve_kit_home

    return KitStorage(resolve_kit_home(storage_root)).root / RESUME_DIR_NAME / _direct_run_key(tracking_uri, run_id)


def _direct_run_key(tracking_uri: str, run_id: str) -> str:
    return run_cache_path(tracking_uri, run_id).parent.name + "-" + run_id


def kept_for_resume(tracking_uri: str, run_id: str) -> tuple[Path, int]:
    """The folder where an interrupted import of the run kept bytes for its resume (the download cache, or
    the direct import's partial layer blobs), and the bytes kept there and in the other one."""
    folders = (run_cache_path(tracking_uri, run_id), direct_resume_path(tracking_uri, run_id))
    sizes = [disk_bytes(folder) for folder in folders]
    return folders[sizes.index(max(sizes))], sum(sizes)


def disk_bytes(folder: Path) -> int:
    """Bytes the files under ``folder`` take on disk (0 when it does not exist)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def discard_run_cache(tracking_uri: str, run_id: str) -> int:
    """Delete what an interrupted import of the run kept for its resume; returns the bytes freed.
    Refuses (DownloadError) while an import of that run holds the cache."""
    cache = run_cache_path(tracking_uri, run_id)
    busy = threading.Event()
    busy.set()  # do not wait: an import holding the lock is using the cache
    try:
        with _run_cache_lock(cache, Observer(), busy):  # the direct import holds it too
            freed = 0
            for folder in (cache, direct_resume_path(tracking_uri, run_id)):
                freed += disk_bytes(folder)
                shutil.rmtree(folder, ignore_errors=True)
            return freed
    except InterruptedByUser:
        raise DownloadError(
            f"An import of run {run_id} is using its cache {cache}; try again when it is over."
        ) from None


# -- Kitfile and pack ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportOptions:
    tag: ModelKitRef  # the name it is packed under in local storage
    packer: str = "auto"  # auto | kit | native
    compression: str = "none"  # none | gzip
    kitfile_path: Path | None = None  # use this Kitfile as is
    keep_download: bool = False
    overrides: KitfileOverrides | None = None
    jobs: int = 8
    storage_root: Path | None = None  # kit's home; None finds it like kit does
    push_to: ModelKitRef | None = None  # after packing, push the ModelKit there (names a registry)
    registry: RegistryOptions | None = None
    format: str = "modelkit"  # modelkit | modelpack (a CNCF ModelPack: packing.modelpack)
    force: bool = False  # push onto a tag that holds other content (another model, version or run)
    sign_key: Path | None = None  # sign the ModelKit's provenance attestation (attached to it on --push)
    attestation_output: Path | None = None  # write the signed envelope (unsigned: the statement) here

    @property
    def attests(self) -> bool:
        """Whether the import makes an attestation (and so hashes every file as it packs)."""
        return self.sign_key is not None or self.attestation_output is not None


@dataclass(frozen=True)
class ImportResult:
    reference: str  # "name:tag", "org/name:tag", "registry/org/name:tag": the name kit list shows
    digest: str  # "sha256:..." of the manifest
    packer: str
    size: int
    kitfile: Kitfile
    storage_root: Path
    download: DownloadResult
    provenance_location: str
    pushed: PushResult | None = None
    plan: Plan | None = None  # what was imported: the selected files, and why each other file is left out
    provenance: MlflowProvenance | None = None  # what the Kitfile records of the run
    kitfile_sha256: str | None = None  # a --kitfile's text (None: kitmlflow wrote the Kitfile)
    attestation: Attestation | None = None  # with --sign-key or --attestation-output
    files: tuple[FileDigest, ...] = ()  # every file of the layers with its sha256, when the import attests


def read_kitfile(path: Path) -> str:
    """A --kitfile's text, read with the bounded reader's size cap (exit 2 when it cannot be read)."""
    from kitmlflow_tui.core import safe_yaml

    try:
        return safe_yaml.read_text(path)
    except safe_yaml.YamlRefused as exc:
        raise BadInputError(f"Cannot read the Kitfile {path}: {exc.problem}.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"Cannot read the Kitfile {path}: {exc}.") from None


@dataclass(frozen=True)
class _ImportKitfile:
    kitfile: Kitfile
    provenance_location: str
    provenance: MlflowProvenance
    given_sha256: str | None = None  # a --kitfile's text


def _kitfile_for(session: Session, tree: FileTree, options: ImportOptions) -> _ImportKitfile:
    """The Kitfile of the files (the given one, else built from the run), with the provenance file it lists
    put among them: written into a folder, added to a listing."""
    from kitmlflow_tui.core.kitfile import build_kitfile, load_kitfile_text, validate_kitfile
    from kitmlflow_tui.core.kitfile.enrich import (
        PROVENANCE_FILE,
        provenance_file_bytes,
        run_provenance,
        write_provenance_file,
    )

    resolved = session.resolved
    if options.kitfile_path is not None:
        text = read_kitfile(options.kitfile_path)
        kitfile = load_kitfile_text(text, folder=tree, source=str(options.kitfile_path))
        provenance = run_provenance(
            run=resolved.run,
            logged_models=resolved.tree.logged_models,
            registered=resolved.registered,
            filter_summary=session.plan.spec.summary(),
            importer_version=__version__,
        )
        return _ImportKitfile(kitfile, "as given", provenance, hashlib.sha256(text.encode("utf-8")).hexdigest())
    built = build_kitfile(
        tree,
        run=resolved.run,
        logged_models=resolved.tree.logged_models,
        tag=options.tag,
        registered=resolved.registered,
        filter_summary=session.plan.spec.summary(),
        importer_version=__version__,
        overrides=options.overrides,
    )
    if isinstance(tree, ListedTree):
        content = provenance_file_bytes(built)
        if content is not None:
            tree.add_file(ListedFile(PROVENANCE_FILE, len(content)), content)
        elif built.remove_stale_file:
            tree.remove_file(PROVENANCE_FILE)
    elif isinstance(tree, FolderTree):
        write_provenance_file(tree.folder, built)
    validate_kitfile(built.kitfile, tree)
    assert built.provenance is not None
    return _ImportKitfile(built.kitfile, built.provenance_location, built.provenance)


def _listed_tree(session: Session, jobs: int = 8) -> ListedTree:
    """The plan's files as a listing, with the contents the Kitfile and kit's layer walk read fetched into memory."""
    from kitmlflow_tui.core.packing import direct

    needed = [f for f in session.plan.selected if direct.content_needed(f)]
    contents = direct.fetch_contents(
        needed,
        session.catalogue.repository,
        cancel=session.cancel,
        tracking_uri=session.catalogue.tracking_uri,
        jobs=jobs,
    )
    return direct.listed_tree(session.plan, contents)


def preview_kitfile(session: Session, options: ImportOptions) -> Kitfile:
    """The Kitfile an import would write, from the listing (only the few small files it reads are fetched, into
    memory): for --dry-run and the wizard."""
    return _kitfile_for(session, _listed_tree(session), options).kitfile


@dataclass(frozen=True)
class KitfilePreview:
    """What the wizard's review shows before an import: the Kitfile, and the plan the import will follow."""

    kitfile: Kitfile
    plan: Plan  # settled: the files the ModelKit would not hold are among its left-out ones
    no_layer: tuple[LeftOut, ...]  # those files, with the reason


def preview(session: Session, options: ImportOptions, observer: Observer | None = None) -> KitfilePreview:
    """The Kitfile an import would write and the files it would leave out of the ModelKit (the wizard's review)."""
    settled = settle_layers(session, options, observer)
    moved = settled.plan.left_out[len(session.plan.left_out) :]
    return KitfilePreview(preview_kitfile(settled, options), settled.plan, moved)


# Names kit's layer rules may leave out of a ModelKit whatever the Kitfile: its default ignores at the root,
# and ".." inside a name below a folder entry. Other files are in a layer of a Kitfile the builder writes
# (it gives the victims of kit's prefix rule entries of their own); a given --kitfile may leave out any.
_KIT_OWN_NAMES = frozenset(("Kitfile", "kitfile", ".kitfile", ".kitignore"))


def _may_be_left_out(path: str) -> bool:
    return path.split("/", 1)[0] in _KIT_OWN_NAMES or ".." in path


def settle_layers(session: Session, options: ImportOptions, observer: Observer | None = None) -> Session:
    """The session with every selected file the ModelKit would not hold (kit's layer rules: see
    :func:`kitmlflow_tui.core.kitfile.files_in_no_layer`) moved to the plan's left-out files with the reason,
    before the download. A run's own ``.kitignore`` is such a file: it is the run's data, never applied.
    Raises "nothing selected" (exit 2) when no file is left."""
    from kitmlflow_tui.core.kitfile import files_in_no_layer

    if session.layers_settled:
        return session
    observer = observer or Observer()
    paths = [file.path for file in session.plan.selected]
    if options.kitfile_path is None and not any(_may_be_left_out(path) for path in paths):
        return dataclasses.replace(session, layers_settled=True)
    reasons = files_in_no_layer(preview_kitfile(session, options), paths)
    settled = dataclasses.replace(session, plan=session.plan.excluding(reasons), layers_settled=True)
    if reasons:
        observer.step(Step.PLAN, f"{len(reasons)} selected files left out: the ModelKit could not hold them")
        require_selection(settled.plan)
        # The Kitfile of what is left can leave out more (a file shadowed only by a removed entry): again.
        return settle_layers(dataclasses.replace(settled, layers_settled=False), options, observer)
    return settled


def _stage(session: Session, cache: Path, stage: Path) -> None:
    """Exactly the planned files, hard-linked from the cache: the cache may hold more from earlier runs."""
    sources, targets = Destinations(cache), Destinations(stage, fresh_folder=True)
    for file in session.plan.selected:
        source = sources.path(file.path)
        target = targets.path(file.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)


FORMATS = ("modelkit", "modelpack")


def check_format(artifact_format: str, packer: str, compression: str) -> None:
    """The artifact format and how it can be packed (exit 2 before anything moves). A ModelPack is written by
    kitmlflow's own writer: kit 1.7 has no ModelPack writer, and kit's (≥ 1.10) writes one layer per Kitfile entry,
    where Docker Model Runner needs each weight file as a raw layer. Its layers are uncompressed: model-spec has no
    compressed raw layer, and modctl and Docker Model Runner read no compressed tar."""
    if artifact_format not in FORMATS:
        raise BadInputError(f"Unknown format {artifact_format!r}: use one of {', '.join(FORMATS)}.")
    if artifact_format != "modelpack":
        return
    if packer == "kit":
        raise BadInputError(
            "--packer kit cannot write a ModelPack: kit 1.7 has no ModelPack writer.",
            hint="Use --packer native or auto (kitmlflow's own writer) with --format modelpack.",
        )
    if compression != "none":
        raise BadInputError(
            "A ModelPack's layers are uncompressed (modctl and Docker Model Runner read no compressed layer).",
            hint="Leave out --compression with --format modelpack.",
        )


def _artifact_writer(session: Session, options: ImportOptions) -> ArtifactWriter | None:
    """The ModelPack writer with the run's facts, or None for a ModelKit (the packers' default)."""
    if options.format != "modelpack":
        return None
    from kitmlflow_tui.core.kitfile.enrich import iso_utc
    from kitmlflow_tui.core.packing.modelpack import ModelPackWriter
    from kitmlflow_tui.core.packing.modelpack_config import RunFacts

    run = session.resolved.run
    return ModelPackWriter(RunFacts.from_run(iso_utc(run.end_time), run.tags), options.tag.name)


def run_import(session: Session, options: ImportOptions, observer: Observer | None = None) -> ImportResult:
    """Download the plan into the run's cache, write the Kitfile, pack; nothing half-done on failure. With a signing
    key or an attestation output, the packed ModelKit's provenance attestation too (attached after a push)."""
    from kitmlflow_tui.core.attest.keys import load_signing_key
    from kitmlflow_tui.core.attest.produce import now_rfc3339
    from kitmlflow_tui.core.packing.kit_cli import choose_packer

    observer = observer or Observer()
    started = now_rfc3339()
    # A key that cannot sign fails before a byte is downloaded (exit 2).
    key = load_signing_key(options.sign_key) if options.sign_key is not None else None
    reference = str(options.tag)
    require_selection(session.plan)  # also for a session the wizard built: never an empty ModelKit
    check_format(options.format, options.packer, options.compression)
    packer = "native" if options.format == "modelpack" else choose_packer(options.packer)
    session = settle_layers(session, options, observer)
    cache = run_cache_dir(session)
    with _run_cache_lock(cache, observer, session.cancel):
        result = _import_locked(session, options, observer, reference, packer, cache)
    observer.packed(result)
    if options.attests:
        observer.step(Step.ATTEST, "Writing the provenance attestation" + (" (signed)" if key else ""))
        attestation = _attestation(session.plan, options, result, key, started)
        result = dataclasses.replace(result, attestation=attestation)
    if options.push_to is None:
        return result
    result = dataclasses.replace(result, pushed=push(result, options, observer, session.cancel))
    if result.attestation is not None and result.attestation.envelope is not None:
        result = dataclasses.replace(result, attestation=_attach(result, options, observer))
    return result


def push_packed(
    result: ImportResult, options: ImportOptions, observer: Observer, cancel: threading.Event
) -> ImportResult:
    """Push a ModelKit an earlier import packed (the wizard's retry of a failed push, its push after the import):
    only the blobs the registry lacks move. With a signing key its attestation is made and attached as
    ``run_import`` does, from the files' digests that import took (it must have had the key too: exit 2 if not)."""
    from kitmlflow_tui.core.attest.keys import load_signing_key
    from kitmlflow_tui.core.attest.produce import now_rfc3339

    started = now_rfc3339()
    key = load_signing_key(options.sign_key) if options.sign_key is not None else None
    if key is not None and (not result.files or result.plan is None or result.provenance is None):
        raise BadInputError(
            f"{result.reference} was packed without a signing key: its files were not hashed for an attestation.",
            hint="Import it again with the key to push it signed.",
        )
    result = dataclasses.replace(result, pushed=push(result, options, observer, cancel))
    if key is None:
        return result
    assert result.plan is not None
    observer.step(Step.ATTEST, "Writing the provenance attestation (signed)")
    attestation = _attestation(result.plan, options, result, key, started)
    return dataclasses.replace(
        result, attestation=_attach(dataclasses.replace(result, attestation=attestation), options, observer)
    )


def _attestation(
    plan: Plan, options: ImportOptions, result: ImportResult, key: SigningKey | None, started: str
) -> Attestation:
    """The statement of the packed ModelKit (subject: its manifest, named by where it is pushed, else its local
    name), signed with ``key``, written to --attestation-output."""
    from kitmlflow_tui.core.attest.produce import ImportFacts, import_attestation

    assert result.provenance is not None
    facts = ImportFacts(
        tag=options.tag,
        storage_root=options.storage_root,
        subject_ref=options.push_to or options.tag,
        provenance=result.provenance,
        files=result.files,
        run_files={file.path: file.model for file in plan.selected},
        kitfile_sha256=result.kitfile_sha256,
        packer=result.packer,
        compression=options.compression,
        format=options.format,
        started_on=started,
    )
    return import_attestation(facts, key, options.attestation_output)


def _attach(result: ImportResult, options: ImportOptions, observer: Observer) -> Attestation:
    """Attach the signed attestation to the pushed manifest; on failure the ModelKit is pushed, unattested."""
    from kitmlflow_tui.core.attest.produce import attach_to_pushed
    from kitmlflow_tui.core.registry import RegistryClient
    from kitmlflow_tui.core.registry.local import read_local_modelkit

    assert options.push_to is not None and result.attestation is not None and result.attestation.envelope is not None
    observer.step(Step.ATTEST, f"Attaching the signed attestation to {options.push_to}")
    local = read_local_modelkit(options.tag, storage_root=options.storage_root)
    on_note = lambda message: observer.step(Step.NOTE, message)  # noqa: E731
    try:
        with RegistryClient.connect(options.push_to.registry, options.registry, on_note=on_note) as client:
            attached = attach_to_pushed(client, options.push_to.repository, local, result.attestation.envelope)
    except KitmlflowError as exc:
        unattested = (
            f"{options.push_to} is pushed, without its attestation; a re-run attaches it (nothing else is sent again)."
        )
        exc.hint = f"{exc.hint}\n{unattested}" if exc.hint else unattested
        raise
    return dataclasses.replace(result.attestation, attached=attached)


def push(result: ImportResult, options: ImportOptions, observer: Observer, cancel: threading.Event) -> PushResult:
    """Push the packed ModelKit to its registry; on failure it stays in local storage, and the error says so."""
    from kitmlflow_tui.core.registry import push_modelkit

    assert options.push_to is not None
    target = options.push_to
    observer.step(Step.PUSH, f"Pushing {target}")

    def refuse_other_content(client: RegistryClient) -> None:
        # sync's rule: a tag holding another model, version or run (or no MLflow provenance) stays unless forced.
        from kitmlflow_tui.core.provenance import read_provenance
        from kitmlflow_tui.core.sync import other_content

        provenance = read_provenance(result.kitfile.to_dict())
        held = other_content(client, target, result.digest, provenance, options.format)
        if held is not None:
            raise PushError(
                f"{target} holds {held}, not this ModelKit's source; the tag is left as it is.",
                hint="Add --force to replace it.",
            )

    try:
        return push_modelkit(
            options.tag,
            target,
            options.registry,
            storage_root=options.storage_root,
            on_progress=observer.push_progress,
            on_note=lambda message: observer.step(Step.NOTE, message),
            cancel=cancel,
            before_upload=None if options.force else refuse_other_content,
        )
    except KitmlflowError as exc:
        kept = f"The ModelKit {result.reference} ({result.digest[:19]}) is kept in local storage; a re-run pushes only what the registry lacks."
        exc.hint = f"{exc.hint}\n{kept}" if exc.hint else kept
        raise


@contextlib.contextmanager
def _run_cache_lock(cache: Path, observer: Observer, cancel: threading.Event) -> Iterator[None]:
    """One import of a run at a time per cache: two would write the same partial files, and the first to
    finish would delete the cache under the other. The lock also makes stage folders left by a killed
    import (hard links that would keep a deleted cache's bytes on disk) safe to remove. A cancel from the
    wizard ends the wait; the lock file goes when the import is done."""

    def told() -> None:
        observer.step(Step.WAIT, "Waiting for another import of this run to finish")

    with contextlib.ExitStack() as held:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            lock = locking.locked(
                cache.parent / f".{cache.name}.lock", cancel=cancel, on_wait=told, remove_when_done=True
            )
            held.enter_context(lock)
        except locking.LockWaitCancelled:
            raise InterruptedByUser("Import cancelled while it waited for another import of this run.") from None
        except OSError as exc:
            raise DownloadError(
                f"Cannot use the download cache {cache.parent}: {exc.strerror or exc}.",
                hint="Set KITMLFLOW_CACHE_DIR to a writable folder.",
            ) from exc
        for stale in cache.parent.glob(f".{cache.name}.stage-*"):
            shutil.rmtree(stale, ignore_errors=True)
        yield


def _require_every_file_in_a_layer(session: Session, kitfile: Kitfile, reference: str) -> None:
    """The last guard: a selected file the Kitfile of the downloaded folder leaves out of every layer
    stops the import (settle_layers left it in, so the preview's Kitfile differed): never a silent drop."""
    from kitmlflow_tui.core.kitfile import files_in_no_layer

    missing = files_in_no_layer(kitfile, [file.path for file in session.plan.selected])
    if missing:
        shown = "; ".join(f"{path}: {reason}" for path, reason in list(missing.items())[:3])
        raise PackError(
            f"{reference} would lack {len(missing)} selected files ({shown}).",
            hint="Exclude them (--exclude), or give a --kitfile whose entries cover them.",
        )


def _import_locked(
    session: Session, options: ImportOptions, observer: Observer, reference: str, packer: str, cache: Path
) -> ImportResult:
    from kitmlflow_tui.core.packing.direct import can_go_direct
    from kitmlflow_tui.core.packing.kit_cli import pack_with_kit
    from kitmlflow_tui.core.packing.native import pack_native

    if can_go_direct(session.plan, packer, options.compression, options.keep_download):
        return _import_direct(session, options, observer, reference)
    writer = _artifact_writer(session, options)
    downloaded = download(session, cache, jobs=options.jobs, observer=observer)
    files: tuple[FileDigest, ...] = ()
    stage = Path(tempfile.mkdtemp(prefix=f".{session.resolved.run.run_id}.stage-", dir=cache.parent))
    try:
        try:
            _stage(session, cache, stage)
        except OSError as exc:
            raise PackError(f"Preparing the files of {reference} for packing failed: {exc}.") from exc
        observer.step(Step.KITFILE, "Writing the Kitfile")
        made = _kitfile_for(session, FolderTree(stage), options)
        _require_every_file_in_a_layer(session, made.kitfile, reference)
        if packer == "kit" and options.attests:
            # kit reads the files itself: hashing them for the attestation is one more read (docs/attestation.md).
            observer.step(Step.PACK, "Hashing the files for the attestation")
            files = _digest_stage(stage)
        observer.step(Step.PACK, f"Packing {reference} ({'kit pack' if packer == 'kit' else 'native packer'})")
        pack = (
            pack_with_kit
            if packer == "kit"
            else functools.partial(
                pack_native, on_progress=observer.pack_progress, writer=writer, digest_files=options.attests
            )
        )
        try:
            packed = pack(
                stage,
                made.kitfile,
                options.tag,
                storage_root=options.storage_root,
                compression=options.compression,
                cancel=session.cancel,
            )
        except KitmlflowError:
            raise
        except OSError as exc:
            raise PackError(f"Packing {reference} failed: {exc}.") from exc
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    if not options.keep_download:
        shutil.rmtree(cache, ignore_errors=True)
    if files:
        packed = dataclasses.replace(packed, files=files)
    return _import_result(session, packed, made, downloaded)


def _digest_stage(stage: Path) -> tuple[FileDigest, ...]:
    """Every file of the stage folder (the planned files and the provenance file), hashed: one read each."""
    from kitmlflow_tui.core.packing.file_digests import digest_file

    found = []
    for root, _dirs, names in os.walk(stage):
        for name in names:
            path = Path(root) / name
            found.append(digest_file(path, path.relative_to(stage).as_posix()))
    return tuple(found)


def _import_result(
    session: Session, packed: PackResult, made: _ImportKitfile, downloaded: DownloadResult
) -> ImportResult:
    return ImportResult(
        reference=packed.reference,
        digest=packed.digest,
        packer=packed.packer,
        size=packed.size,
        kitfile=made.kitfile,
        storage_root=packed.storage_root,
        download=downloaded,
        provenance_location=made.provenance_location,
        plan=session.plan,
        provenance=made.provenance,
        kitfile_sha256=made.given_sha256,
        files=packed.files,
    )


def _import_direct(session: Session, options: ImportOptions, observer: Observer, reference: str) -> ImportResult:
    """The native packer's import without a download folder: the files' bytes go straight into the layer blobs
    (``kitmlflow_tui.core.packing.direct``)."""
    from kitmlflow_tui.core.packing.direct import pack_direct

    observer.step(Step.KITFILE, "Writing the Kitfile from the run's listing")
    tree = _listed_tree(session, options.jobs)
    made = _kitfile_for(session, tree, options)
    _require_every_file_in_a_layer(session, made.kitfile, reference)
    observer.step(Step.DOWNLOAD, f"Downloading into the layers of {reference} (native packer)")
    direct = pack_direct(
        session.plan,
        tree,
        made.kitfile,
        options.tag,
        repository_for=session.catalogue.repository,
        run_key=_direct_run_key(session.catalogue.tracking_uri, session.resolved.run.run_id),
        storage_root=options.storage_root,
        jobs=options.jobs,
        observer=observer,
        cancel=session.cancel,
        tracking_uri=session.catalogue.tracking_uri,
        writer=_artifact_writer(session, options),
        digest_files=options.attests,
    )
    downloaded = DownloadResult(
        dest=direct.resume_dir,
        paths=tuple(f.path for f in session.plan.selected),
        downloaded_bytes=direct.downloaded_bytes,
        reused_bytes=direct.reused_bytes,
        total_bytes=direct.total_bytes,
    )
    return _import_result(session, direct.packed, made, downloaded)
