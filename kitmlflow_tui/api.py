"""The Python API: ``import_modelkit``, ``sync_model``, ``download_artifacts``, for training scripts and notebooks.

Keyword arguments are named like the command line's options (``include``, ``max_file_size``, ``push``, ...). Each
function parses its inputs once (bad input is exit 2 before the network is touched), runs the core and returns a
frozen result; errors are raised as the core's family (``KitmlflowError``, each with its ``exit_code``). Nothing is
printed: ``progress=`` receives what the core does, either as a core ``Observer`` or as a callable given
``StepEvent``, transfer ``ProgressEvent``, the ``PlanReport`` before the download and each ``SyncRecord``.

Importing this module costs nothing heavy (no MLflow, rich or Textual): the core is imported inside the functions.

The command line goes through the same steps, split where it shows something in between (the plan before the
download, the wizard instead of ``--yes``): ``prepare_import`` → ``ImportRequest.plan`` → ``PlannedImport.run`` or
``.preview``; ``prepare_download`` → ``DownloadRequest.plan`` → ``PlannedDownload.run``; ``prepare_sync`` →
``SyncRequest.run``. The one-call functions chain them.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitmlflow_tui.core.errors import BadInputError
from kitmlflow_tui.core.events import Observer, ProgressEvent, Step, StepEvent

if TYPE_CHECKING:
    from kitmlflow_tui.core.attest.produce import Attestation
    from kitmlflow_tui.core.catalogue.records import LoggedModelInfo, RegisteredModelInfo, RunInfo
    from kitmlflow_tui.core.kitfile import Kitfile, KitfileOverrides
    from kitmlflow_tui.core.modelkit_reference import ModelKitRef
    from kitmlflow_tui.core.pipeline import ImportOptions, ImportResult, Session
    from kitmlflow_tui.core.reference import ModelRef, Reference
    from kitmlflow_tui.core.registry import PushResult, RegistryOptions
    from kitmlflow_tui.core.selection.plan import FilterSpec, Plan
    from kitmlflow_tui.core.selection.profiles import Profile
    from kitmlflow_tui.core.sync import SyncObserver, SyncOptions, SyncResult

__all__ = [
    "DownloadReport",
    "ExcludedFile",
    "ImportReport",
    "PlanReport",
    "SelectedFile",
    "Step",
    "StepEvent",
    "download_artifacts",
    "import_modelkit",
    "sync_model",
]

PathArg = str | os.PathLike[str]
# A core Observer (the CLI's renderers are), or a callable given each event (see the module's text).
Progress = Observer | Callable[[Any], None] | None


# -- results -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SelectedFile:
    path: str  # relative to the run's artifact root, with "/"
    size: int | None  # None when the store did not say


@dataclass(frozen=True)
class ExcludedFile:
    path: str
    size: int | None
    reason: str  # "excluded by pattern '*.ckpt'", "over the size cap (…)", …


@dataclass(frozen=True)
class PlanReport:
    """What the filter chose from the run: every result starts with it."""

    run: RunInfo  # tracking_uri (no secrets), experiment_id, run_id, run_name, status, params, metrics, tags
    registered_model: RegisteredModelInfo | None  # the version the URI named, or the run's model was registered as
    plan: Plan  # the core's plan: the whole tree, the filter, the files selected and left out

    @property
    def selected(self) -> tuple[SelectedFile, ...]:
        return tuple(SelectedFile(f.path, f.size) for f in self.plan.selected)

    @property
    def excluded(self) -> tuple[ExcludedFile, ...]:
        return tuple(ExcludedFile(o.file.path, o.file.size, o.reason) for o in self.plan.left_out)

    @property
    def selected_bytes(self) -> int:
        return self.plan.selected_bytes

    @property
    def total_bytes(self) -> int:
        return self.plan.total_bytes

    @property
    def logged_models(self) -> tuple[LoggedModelInfo, ...]:
        return self.plan.tree.logged_models


@dataclass(frozen=True)
class ImportReport(PlanReport):
    """An import: with ``dry_run`` only the plan and the Kitfile it would write (``reference`` and ``digest`` None)."""

    kitfile: Kitfile  # the Kitfile packed (or that would be); .to_dict() gives the mapping --json shows
    dry_run: bool = False
    reference: str | None = None  # the name kit resolves: "model:v1", "registry.example.com/org/model:v1"
    digest: str | None = None  # "sha256:…" of the manifest
    packer: str | None = None  # "kit" or "native"
    size: int | None = None  # the ModelKit's bytes
    storage_root: Path | None = None  # kit's local storage the ModelKit is in
    downloaded_bytes: int = 0
    reused_bytes: int = 0  # already there from an interrupted import of the run
    pushed: PushResult | None = None  # with push=True: reference, digest, uploaded_bytes, …
    warnings: tuple[str, ...] = ()
    # With sign_key or attestation_output: the provenance attestation (statement, envelope, where it was attached)
    attestation: Attestation | None = None


@dataclass(frozen=True)
class DownloadReport(PlanReport):
    dest: Path
    paths: tuple[str, ...]  # every selected file, now complete under dest
    downloaded_bytes: int
    reused_bytes: int


# -- the one-call functions ----------------------------------------------------------------------------------------
def import_modelkit(
    uri: str | Reference,
    tag: str,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    max_file_size: str | int | None = None,
    profile: str | None = None,
    push: bool = False,
    force: bool = False,
    tracking_uri: str | None = None,
    jobs: int = 8,
    packer: str = "auto",
    compression: str = "none",
    kitfile: PathArg | None = None,
    description: str | None = None,
    authors: Sequence[str] = (),
    dry_run: bool = False,
    keep_download: bool = False,
    plain_http: bool = False,
    tls_verify: bool = True,
    cert: PathArg | None = None,
    key: PathArg | None = None,
    format: str = "modelkit",
    sign_key: PathArg | None = None,
    attestation_output: PathArg | None = None,
    allow_no_model: bool = False,
    progress: Progress = None,
    cancel: threading.Event | None = None,
) -> ImportReport:
    """Import a finished MLflow run (``mlflow://…/runs/RUN``) or registered model version
    (``mlflow://…/models/NAME/VERSION``, ``…@ALIAS``) as a ModelKit tagged ``tag`` in kit's local storage, and
    with ``push=True`` push it to the registry ``tag`` names (``registry.example.com/org/model:v1``).
    Filters that leave out every file of the run's MLflow model are refused (BadInputError) unless
    ``allow_no_model``; a model that loses part of its files is in the report's ``warnings``.
    ``cancel``: setting it stops the import (InterruptedByUser, exit 130) with what was downloaded kept."""
    request = prepare_import(
        uri,
        tag,
        include=include,
        exclude=exclude,
        max_file_size=max_file_size,
        profile=profile,
        push=push,
        force=force,
        tracking_uri=tracking_uri,
        jobs=jobs,
        packer=packer,
        compression=compression,
        kitfile=kitfile,
        description=description,
        authors=authors,
        dry_run=dry_run,
        keep_download=keep_download,
        plain_http=plain_http,
        tls_verify=tls_verify,
        cert=cert,
        key=key,
        format=format,
        sign_key=sign_key,
        attestation_output=attestation_output,
        allow_no_model=allow_no_model,
    )
    observer = _observer(progress)
    planned = request.plan(observer, cancel)
    _tell(progress, planned.report)
    return planned.preview() if request.dry_run else planned.run()


def sync_model(
    uri: str | ModelRef,
    to: str,
    *,
    tag_template: str = "v{version}",
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    max_file_size: str | int | None = None,
    profile: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    prune_aliases: bool = False,
    tracking_uri: str | None = None,
    jobs: int = 8,
    packer: str = "auto",
    compression: str = "none",
    plain_http: bool = False,
    tls_verify: bool = True,
    cert: PathArg | None = None,
    key: PathArg | None = None,
    format: str = "modelkit",
    sign_key: PathArg | None = None,
    progress: Progress = None,
    cancel: threading.Event | None = None,
) -> SyncResult:
    """Keep the registry repository ``to`` (``registry.example.com/ml/fraud``) in step with a registered model
    (``mlflow://…/models/NAME``, ``…/NAME/VERSION`` or ``…/NAME@ALIAS``): each version missing there is imported
    and pushed under ``tag_template``; an alias also moves a tag of its name. The result has one record per version
    and alias tag; when one failed or is in conflict, ``SyncFailedError`` (its ``exit_code``, its ``result``) is
    raised after every version was tried."""
    request = prepare_sync(
        uri,
        to,
        tag_template=tag_template,
        include=include,
        exclude=exclude,
        max_file_size=max_file_size,
        profile=profile,
        force=force,
        dry_run=dry_run,
        prune_aliases=prune_aliases,
        tracking_uri=tracking_uri,
        jobs=jobs,
        packer=packer,
        compression=compression,
        plain_http=plain_http,
        tls_verify=tls_verify,
        cert=cert,
        key=key,
        format=format,
        sign_key=sign_key,
    )
    return request.run(_sync_observer(progress), cancel)


def download_artifacts(
    uri: str | Reference,
    dest: PathArg,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    max_file_size: str | int | None = None,
    profile: str | None = None,
    tracking_uri: str | None = None,
    jobs: int = 8,
    any_status: bool = False,
    progress: Progress = None,
    cancel: threading.Event | None = None,
) -> DownloadReport:
    """Download the files of a finished run the filters select into ``dest`` (no Kitfile, no pack): the filtered
    twin of ``mlflow.artifacts.download_artifacts``. A re-run resumes: complete files are not fetched again.
    ``any_status``: also a run that is not FINISHED (RUNNING, FAILED, KILLED), its files as they are."""
    request = prepare_download(
        uri,
        dest,
        include=include,
        exclude=exclude,
        max_file_size=max_file_size,
        profile=profile,
        tracking_uri=tracking_uri,
        jobs=jobs,
        any_status=any_status,
    )
    planned = request.plan(_observer(progress), cancel)
    _tell(progress, planned.report)
    return planned.run()


# -- the steps (the command line calls these) ---------------------------------------------------------------------
@dataclass(frozen=True)
class ImportRequest:
    """An import's inputs, parsed and checked (no network yet)."""

    reference: Reference
    spec: FilterSpec
    options: ImportOptions
    tracking_uri: str | None
    dry_run: bool
    allow_no_model: bool = False

    def plan(self, observer: Observer | None = None, cancel: threading.Event | None = None) -> PlannedImport:
        """Resolve the run, list its tree and apply the filter, with every file the ModelKit could not hold left
        out (the plan an import follows); no byte is downloaded. A plan that leaves out every file of the run's
        MLflow model is refused (exit 2: nobody reads a warning before the ModelKit is pushed) unless it is a
        dry run or ``allow_no_model``; what it leaves out of a model is in ``warnings``."""
        from kitmlflow_tui.core import pipeline
        from kitmlflow_tui.core.selection.model_coverage import model_coverage, require_a_model

        observer = observer or Observer()
        session = pipeline.plan(
            self.reference,
            self.spec,
            tracking_uri_flag=self.tracking_uri,
            jobs=self.options.jobs,
            observer=observer,
            cancel=cancel,
        )
        session = pipeline.settle_layers(session, self.options, observer)
        coverage = model_coverage(session.plan)
        if not self.dry_run and not self.allow_no_model:
            require_a_model(coverage)
        return PlannedImport(self, session, observer, tuple(coverage.warnings()))


@dataclass(frozen=True)
class PlannedImport:
    request: ImportRequest
    session: Session
    observer: Observer
    warnings: tuple[str, ...] = ()  # what the filters leave out of the run's MLflow model

    @property
    def report(self) -> PlanReport:
        return _plan_report(self.session)

    def preview(self) -> ImportReport:
        """The dry run: the Kitfile the import would write (only the few small files it reads are fetched)."""
        from kitmlflow_tui.core import pipeline

        kitfile = pipeline.preview_kitfile(self.session, self.request.options)
        return ImportReport(*_plan_fields(self.session), kitfile=kitfile, dry_run=True, warnings=self.warnings)

    def run(self) -> ImportReport:
        """Download, write the Kitfile, pack (and push): nothing half-done on failure."""
        from kitmlflow_tui.core import pipeline

        result = pipeline.run_import(self.session, self.request.options, self.observer)
        return _import_report(self.session, result, self.warnings)


def prepare_import(
    uri: str | Reference,
    tag: str | ModelKitRef,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    max_file_size: str | int | None = None,
    profile: str | None = None,
    push: bool = False,
    force: bool = False,
    tracking_uri: str | None = None,
    jobs: int = 8,
    packer: str = "auto",
    compression: str = "none",
    kitfile: PathArg | None = None,
    description: str | None = None,
    authors: Sequence[str] = (),
    dry_run: bool = False,
    keep_download: bool = False,
    plain_http: bool = False,
    tls_verify: bool = True,
    cert: PathArg | None = None,
    key: PathArg | None = None,
    format: str = "modelkit",
    sign_key: PathArg | None = None,
    attestation_output: PathArg | None = None,
    allow_no_model: bool = False,
) -> ImportRequest:
    """``import_modelkit``'s inputs checked in the command line's order (URI, tag, registry options, filters,
    Kitfile): exit 2 before the network is touched."""
    from kitmlflow_tui.core import pipeline
    from kitmlflow_tui.core.modelkit_reference import ModelKitRef, parse_modelkit_reference, parse_push_reference

    reference = _reference(uri)  # the plan refuses one that names no run; the wizard opens at any
    if isinstance(tag, ModelKitRef):
        tag_ref = tag
    else:
        tag_ref = parse_push_reference(tag) if push else parse_modelkit_reference(tag)
    registry = _registry_options(push, plain_http, tls_verify, cert, key)
    spec, loaded = filter_spec(include, exclude, max_file_size, profile)
    kitfile_path = Path(kitfile) if kitfile is not None else None
    if kitfile_path is not None:  # a Kitfile kit would reject fails before any byte moves
        from kitmlflow_tui.core.kitfile import load_kitfile_text

        load_kitfile_text(pipeline.read_kitfile(kitfile_path), source=str(kitfile_path))
    pipeline.check_format(format, packer, compression)
    if not dry_run:
        _check_attestation_inputs(_path(sign_key), _path(attestation_output), push)
    options = pipeline.ImportOptions(
        tag=tag_ref,
        packer=_choice(packer, ("auto", "kit", "native"), "packer"),
        compression=_choice(compression, ("none", "gzip"), "compression"),
        kitfile_path=kitfile_path,
        keep_download=keep_download,
        overrides=package_overrides(loaded, description, tuple(authors)),
        jobs=_jobs(jobs),
        push_to=tag_ref if push else None,
        registry=registry,
        format=format,
        sign_key=_path(sign_key),
        attestation_output=_path(attestation_output),
        force=force,
    )
    return ImportRequest(reference, spec, options, tracking_uri, dry_run, allow_no_model)


@dataclass(frozen=True)
class SyncRequest:
    reference: ModelRef
    options: SyncOptions

    def run(self, observer: SyncObserver | None = None, cancel: threading.Event | None = None) -> SyncResult:
        """The sync (or, with ``options.dry_run``, what it would do); SyncFailedError when a version failed."""
        from kitmlflow_tui.core import sync
        from kitmlflow_tui.core.errors import SyncFailedError

        result = sync.run_sync(self.reference, self.options, observer, cancel)
        if result.exit_code:
            raise SyncFailedError(result)
        return result

    def dry_run(self) -> SyncRequest:
        return dataclasses.replace(self, options=dataclasses.replace(self.options, dry_run=True))


def prepare_sync(
    uri: str | ModelRef,
    to: str,
    *,
    tag_template: str = "v{version}",
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    max_file_size: str | int | None = None,
    profile: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    prune_aliases: bool = False,
    tracking_uri: str | None = None,
    jobs: int = 8,
    packer: str = "auto",
    compression: str = "none",
    plain_http: bool = False,
    tls_verify: bool = True,
    cert: PathArg | None = None,
    key: PathArg | None = None,
    format: str = "modelkit",
    sign_key: PathArg | None = None,
) -> SyncRequest:
    """``sync_model``'s inputs, checked (the template renders tags kit accepts, ...): exit 2 before the network."""
    from kitmlflow_tui.core import sync
    from kitmlflow_tui.core.reference import ModelRef, parse_reference

    reference = parse_reference(uri, all_versions=True) if isinstance(uri, str) else uri
    if not isinstance(reference, ModelRef):
        raise BadInputError(
            "kitmlflow sync takes a registered model: mlflow://[host/]models/NAME[@ALIAS|/VERSION].",
            hint="To import and push one run: kitmlflow import URI -t REGISTRY/REPO:TAG --yes --push.",
        )
    spec, loaded = filter_spec(include, exclude, max_file_size, profile)
    options = sync.SyncOptions(
        target=sync.parse_target(to),
        spec=spec,
        template=sync.TagTemplate.parse(tag_template),
        registry=_registry_options(True, plain_http, tls_verify, cert, key),
        force=force,
        dry_run=dry_run,
        prune_aliases=prune_aliases,
        packer=_choice(packer, ("auto", "kit", "native"), "packer"),
        compression=_choice(compression, ("none", "gzip"), "compression"),
        overrides=package_overrides(loaded, None, ()),
        jobs=_jobs(jobs),
        tracking_uri_flag=tracking_uri,
        format=format,
        sign_key=_path(sign_key),
    )
    sync.check_sync(reference, options)
    return SyncRequest(reference, options)


@dataclass(frozen=True)
class DownloadRequest:
    reference: Reference
    spec: FilterSpec
    dest: Path
    tracking_uri: str | None
    jobs: int
    any_status: bool = False  # a run that is not FINISHED too

    def plan(self, observer: Observer | None = None, cancel: threading.Event | None = None) -> PlannedDownload:
        from kitmlflow_tui.core import pipeline

        observer = observer or Observer()
        session = pipeline.plan(
            self.reference,
            self.spec,
            tracking_uri_flag=self.tracking_uri,
            jobs=self.jobs,
            observer=observer,
            cancel=cancel,
            command="download",
            any_status=self.any_status,
        )
        return PlannedDownload(self, session, observer)


@dataclass(frozen=True)
class PlannedDownload:
    request: DownloadRequest
    session: Session
    observer: Observer

    @property
    def report(self) -> PlanReport:
        return _plan_report(self.session)

    def run(self) -> DownloadReport:
        from kitmlflow_tui.core import pipeline

        done = pipeline.download(self.session, self.request.dest, jobs=self.request.jobs, observer=self.observer)
        return DownloadReport(
            *_plan_fields(self.session),
            dest=done.dest,
            paths=done.paths,
            downloaded_bytes=done.downloaded_bytes,
            reused_bytes=done.reused_bytes,
        )


def prepare_download(
    uri: str | Reference,
    dest: PathArg,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    max_file_size: str | int | None = None,
    profile: str | None = None,
    tracking_uri: str | None = None,
    jobs: int = 8,
    any_status: bool = False,
) -> DownloadRequest:
    reference = _reference(uri)
    spec, _loaded = filter_spec(include, exclude, max_file_size, profile)
    return DownloadRequest(reference, spec, Path(dest), tracking_uri, _jobs(jobs), any_status)


# -- inputs, shared with the command line -------------------------------------------------------------------------
def filter_spec(
    include: Sequence[str], exclude: Sequence[str], max_file_size: str | int | None, profile: str | None
) -> tuple[FilterSpec, Profile | None]:
    """The filter of a command: the profile's (a name, or a path with a ``/``), with the flags added."""
    from kitmlflow_tui.core.selection.plan import FilterSpec, parse_size

    for what, patterns in (("include", include), ("exclude", exclude)):
        if isinstance(patterns, str):  # include="*.pt" would otherwise be five one-letter patterns
            raise BadInputError(f"{what} takes a list of glob patterns, e.g. {what}=[{patterns!r}].")
    if isinstance(max_file_size, int) and not isinstance(max_file_size, bool):
        cap: int | None = max_file_size
    else:
        cap = parse_size(max_file_size, what="--max-file-size") if max_file_size else None
    flags = FilterSpec(include=tuple(include), exclude=tuple(exclude), max_file_size=cap)
    loaded = None
    if profile:
        from kitmlflow_tui.core.selection.profiles import load_profile

        loaded = load_profile(profile)
        spec = loaded.spec.merged(flags)
    else:
        spec = flags
    spec.validate()
    return spec, loaded


def package_overrides(
    profile: Profile | None, description: str | None, authors: tuple[str, ...]
) -> KitfileOverrides | None:
    """The package fields the description/authors options and a profile's Kitfile defaults set (options win)."""
    from kitmlflow_tui.core.kitfile import KitfileOverrides
    from kitmlflow_tui.core.selection.profiles import PackageDefaults

    package = profile.package if profile is not None else PackageDefaults()
    description = description.strip() if description and description.strip() else package.description
    names = tuple(a.strip() for a in authors if a.strip()) or package.authors
    if not (description or names or package.license):
        return None
    return KitfileOverrides(description=description, authors=names or None, license=package.license)


def _reference(uri: str | Reference) -> Reference:
    from kitmlflow_tui.core.reference import parse_reference

    return parse_reference(uri) if isinstance(uri, str) else uri


def _registry_options(
    push: bool, plain_http: bool, tls_verify: bool, cert: PathArg | None, key: PathArg | None
) -> RegistryOptions | None:
    if not push:
        given = [name for name, value in (("plain_http", plain_http), ("cert", cert), ("key", key)) if value]
        given += [] if tls_verify else ["tls_verify"]
        if given:
            raise BadInputError(f"{', '.join(given)} only apply with push=True.")
        return None
    from kitmlflow_tui.core.registry import RegistryOptions

    return RegistryOptions(plain_http=plain_http, tls_verify=tls_verify, cert=_path(cert), key=_path(key)).validate()


def _check_attestation_inputs(sign_key: Path | None, output: Path | None, push: bool) -> None:
    """A signing key that cannot sign, a signature with nowhere to go, an output that cannot be written: exit 2
    before the network is touched."""
    if output is not None:
        from kitmlflow_tui.core.attest.produce import check_output_path

        check_output_path(output)
    if sign_key is not None:
        if not push and output is None:
            raise BadInputError(
                "sign_key (--sign-key) signs the attestation of a pushed ModelKit: add push (--push), or "
                "attestation_output (--attestation-output PATH)."
            )
        from kitmlflow_tui.core.attest.keys import check_sign_key

        check_sign_key(sign_key)


def _choice(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise BadInputError(f"{what} must be one of {', '.join(allowed)}, not {value!r}.")
    return value


def _jobs(jobs: int) -> int:
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= 64:
        raise BadInputError(f"jobs must be a whole number from 1 to 64, not {jobs!r}.")
    return jobs


def _path(value: PathArg | None) -> Path | None:
    return Path(value) if value is not None else None


# -- results from the core's values ----------------------------------------------------------------------------
def _plan_fields(session: Session) -> tuple[RunInfo, RegisteredModelInfo | None, Plan]:
    return session.resolved.run, session.resolved.registered, session.plan


def _plan_report(session: Session) -> PlanReport:
    return PlanReport(*_plan_fields(session))


def _import_report(session: Session, result: ImportResult, warnings: tuple[str, ...]) -> ImportReport:
    return ImportReport(
        *_plan_fields(session),
        kitfile=result.kitfile,
        reference=result.reference,
        digest=result.digest,
        packer=result.packer,
        size=result.size,
        storage_root=result.storage_root,
        downloaded_bytes=result.download.downloaded_bytes,
        reused_bytes=result.download.reused_bytes,
        pushed=result.pushed,
        warnings=warnings,
        attestation=result.attestation,
    )


# -- progress ---------------------------------------------------------------------------------------------------
class _Relay(Observer):
    """The core's observer calls as events for a callable."""

    def __init__(self, callback: Callable[[Any], None]) -> None:
        self._callback = callback

    def step(self, step: Step, message: str) -> None:
        self._callback(StepEvent(step, message))

    def progress(self, event: ProgressEvent) -> None:
        self._callback(event)

    def push_progress(self, event: ProgressEvent) -> None:
        self._callback(event)


def _observer(progress: Progress) -> Observer:
    if progress is None:
        return Observer()
    if isinstance(progress, Observer):
        return progress
    if callable(progress):
        return _Relay(progress)
    raise BadInputError(f"progress= takes a callable or an Observer, not {type(progress).__name__}.")


def _tell(progress: Progress, event: Any) -> None:
    if progress is not None and not isinstance(progress, Observer):
        progress(event)


def _sync_observer(progress: Progress) -> SyncObserver:
    import contextlib

    from kitmlflow_tui.core.sync import SyncObserver, SyncRecord

    if isinstance(progress, SyncObserver):
        return progress
    relay = _observer(progress)

    class SyncRelay(SyncObserver):
        def step(self, step: Step, message: str) -> None:
            relay.step(step, message)

        @contextlib.contextmanager
        def version(self, version: str) -> Iterator[Observer]:
            yield relay

        def record(self, record: SyncRecord) -> None:
            _tell(progress, record)

    return SyncRelay()
