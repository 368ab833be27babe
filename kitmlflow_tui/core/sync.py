"""``kitmlflow sync``: keep a registry repository in step with the versions of an MLflow registered model.

For each version named (every version of the model, the one an alias points at, or one by number) the tag
the template gives is looked up in the registry (its manifest, then its config). When the ModelKit there
records the same registered model version and run in its provenance, the version is in step and nothing
moves. When the tag is missing, the version goes through the import's core (plan, download, Kitfile, pack)
into a private kit home and is pushed. A tag holding another version's (or anything else's) ModelKit is a
conflict, reported and left alone unless forced. A tag named after an alias (the URI's, or every alias of
the model when every version is synced) is pointed at its version's manifest (one manifest PUT, no blob).
Before sync first points a tag at an alias, it writes down in the repository that the tag is that model's
alias tag (``alias_tags``); when every version is synced, a tag so recorded whose alias MLflow no longer has is
reported as a stale alias, and ``prune_aliases`` deletes it (``registry.untag``).

Every version is tried, whatever happened to the ones before; the result is one record per version and
one per alias tag. A sync holds a lock per target repository on this machine for the whole run, so a
second sync of the same target waits and then finds everything in step. A sync killed mid-push leaves its
packed ModelKit in the work folder; the next sync pushes it from there (only what the registry lacks), and
before it ends removes every ModelKit left there that it did not need (one whose push had finished when its
sync was killed, say). Deleted versions (gaps in MLflow's numbering) are computed from the gaps, never listed.

Disk: the import's download cache goes once the version is packed, and the private kit home once it is
pushed. Nothing is written into the user's kit storage: a sync of 200 versions would otherwise fill it
with ModelKits nobody asked to have locally (``kit pull`` gets any of them back).

Why one module of this size: the decision per version (in step, missing, conflict, alias to move) and the
records it yields read one state of the registry and of the model; split apart, each piece would need that
state and the lock passed in. The import and the push themselves are the pipeline's and the registry's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import string
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitmlflow_tui import __version__
from kitmlflow_tui.core import locking, pipeline
from kitmlflow_tui.core.alias_tags import RECORD_TAG, AliasTags
from kitmlflow_tui.core.errors import (
    BadInputError,
    DownloadError,
    InterruptedByUser,
    KitmlflowError,
    NotFoundError,
    PushError,
    RunDeletedError,
    RunNotFinishedError,
    as_kitmlflow_error,
    scrub_secrets,
)
from kitmlflow_tui.core.events import Step
from kitmlflow_tui.core.modelkit_reference import (
    ModelKitRef,
    format_reference,
    parse_modelkit_reference,
    parse_push_reference,
)
from kitmlflow_tui.core.provenance import MlflowProvenance, read_provenance
from kitmlflow_tui.core.reference import ModelRef

if TYPE_CHECKING:
    from kitmlflow_tui.core.attest.dsse import Envelope
    from kitmlflow_tui.core.catalogue import Catalogue
    from kitmlflow_tui.core.catalogue.records import ModelVersionInfo
    from kitmlflow_tui.core.kitfile import KitfileOverrides
    from kitmlflow_tui.core.registry import PushResult, RegistryClient, RegistryOptions, RemoteManifest
    from kitmlflow_tui.core.registry.local import LocalModelKit
    from kitmlflow_tui.core.selection.plan import FilterSpec

DEFAULT_TAG_TEMPLATE = "v{version}"
TEMPLATE_FIELDS = ("version", "name", "run_id", "alias")
MAX_CONFIG_BYTES = 16 * 1024 * 1024  # a config is the Kitfile as JSON: params, metrics and tags of a run
ATTESTATION_FILE = "attestation.dsse.json"  # a packed version's signed attestation, kept with it until it is pushed
MAX_DELETED_RECORDS = 1000  # deleted versions reported one by one; a gap that does not fit is one record
_SAMPLE_RUN_ID = "0123456789abcdef0123456789abcdef"


class SyncAction(StrEnum):
    PUSHED = "pushed"
    SKIPPED = "skipped"
    TAG_MOVED = "tag_moved"
    TAG_CREATED = "tag_created"  # an alias's tag that did not exist
    STALE_ALIAS = "stale_alias"  # the tag of an alias MLflow no longer has (deleted with --prune-aliases)
    CONFLICT = "conflict"
    FAILED = "failed"
    WOULD_PUSH = "would_push"  # --dry-run
    WOULD_MOVE_TAG = "would_move_tag"  # --dry-run


@dataclass(frozen=True)
class SyncRecord:
    """What happened to one version (or to the alias tag). Sizes are bytes; None where they do not apply."""

    action: SyncAction
    version: str
    tag: str | None  # None for a version that has no tag (deleted from MLflow)
    reference: str | None  # registry/repository:tag
    reason: str
    run_id: str | None = None
    exit_code: int = 0
    hint: str | None = None  # what to do about a failure
    digest: str | None = None  # the manifest the tag names after the sync (or would keep)
    size: int | None = None  # the ModelKit's bytes (config and layers)
    selected_bytes: int | None = None  # the version's planned artifact bytes (would_push, pushed)
    downloaded_bytes: int | None = None
    uploaded_bytes: int | None = None
    uploaded_blobs: int | None = None
    existing_blobs: int | None = None  # blobs the registry had already
    attestation: dict[str, Any] | None = None  # the signed attestation attached to a pushed version (--sign-key)

    def as_dict(self) -> dict[str, Any]:
        return {key: (str(value) if key == "action" else value) for key, value in self.__dict__.items()}


@dataclass(frozen=True)
class SyncResult:
    model: str
    tracking_uri: str  # redacted
    target: str  # registry/repository
    alias: str | None
    dry_run: bool
    records: tuple[SyncRecord, ...]

    @property
    def exit_code(self) -> int:
        """0 when every version is in step; else the exit code of the first failure."""
        return next((r.exit_code for r in self.records if r.exit_code), 0)

    def counts(self) -> dict[str, int]:
        return {str(action): sum(1 for r in self.records if r.action == action) for action in SyncAction}


# -- inputs ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TagTemplate:
    """``--tag-template``: ``{version}``, ``{name}``, ``{run_id}``, ``{alias}`` and literal text."""

    text: str
    fields: frozenset[str]

    @classmethod
    def parse(cls, text: str) -> TagTemplate:
        fields: set[str] = set()
        try:
            parts = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise BadInputError(f"Invalid --tag-template {text!r}: {exc}.", hint=_TEMPLATE_HINT) from None
        for _literal, name, spec, conversion in parts:
            if name is None:
                continue
            if name not in TEMPLATE_FIELDS or spec or conversion:
                shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
                raise BadInputError(f"Invalid --tag-template {text!r}: {shown} is not a field.", hint=_TEMPLATE_HINT)
            fields.add(name)
        if not text.strip():
            raise BadInputError("The --tag-template is empty.", hint=_TEMPLATE_HINT)
        return cls(text, frozenset(fields))

    def render(self, *, version: str, name: str, run_id: str | None, alias: str | None) -> str:
        values = {"version": version, "name": name, "run_id": run_id or "", "alias": alias or ""}
        return self.text.format_map(values)


_TEMPLATE_HINT = "Fields: {version}, {name}, {run_id}, {alias}; e.g. --tag-template 'v{version}' (the default)."


@dataclass(frozen=True)
class SyncTarget:
    """``--to REGISTRY/REPOSITORY``: where the tags go."""

    registry: str
    repository: str

    def ref(self, tag: str) -> ModelKitRef:
        return parse_push_reference(format_reference(self.registry, self.repository, tag))

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}"


def parse_target(text: str) -> SyncTarget:
    raw = text.strip()
    if ":" in raw.rsplit("/", 1)[-1] or "@" in raw:
        raise BadInputError(
            f"--to names a repository, not a tag: {raw!r}.",
            hint="The tags come from --tag-template (default v{version}), e.g. --to registry.example.com/ml/fraud.",
        )
    hint = "--to names REGISTRY/REPOSITORY, e.g. --to registry.example.com/ml/fraud (or localhost:5000/ml/fraud)."
    try:
        ref = parse_modelkit_reference(raw)
    except BadInputError as exc:  # its hint speaks of -t
        exc.hint = hint
        raise
    if not ref.names_registry:
        raise BadInputError(f"--to {raw!r} names no registry, so there is nowhere to push.", hint=hint)
    return SyncTarget(ref.registry, ref.repository)


@dataclass(frozen=True)
class SyncOptions:
    target: SyncTarget
    spec: FilterSpec
    template: TagTemplate = field(default_factory=lambda: TagTemplate.parse(DEFAULT_TAG_TEMPLATE))
    registry: RegistryOptions | None = None
    force: bool = False  # replace a tag that holds another version's ModelKit
    dry_run: bool = False  # read only: no lock, no download, no pack, no push
    packer: str = "auto"
    compression: str = "none"
    overrides: KitfileOverrides | None = None
    jobs: int = 8
    tracking_uri_flag: str | None = None
    sign_key: Path | None = None  # sign each pushed version's provenance attestation and attach it
    prune_aliases: bool = False  # delete the alias tags sync made for aliases MLflow no longer has
    format: str = "modelkit"  # modelkit | modelpack: what the sync pushes, and what a tag must hold to be in step


def check_sync(reference: ModelRef, options: SyncOptions) -> None:
    """Everything about the inputs that can be checked before a server is asked (exit 2)."""
    fields = options.template.fields
    if "alias" in fields and reference.alias is None:
        raise BadInputError(
            "--tag-template uses {alias}, but the URI names no alias.", hint="Use mlflow://models/NAME@ALIAS."
        )
    if reference.all_versions and not fields & {"version", "run_id"}:
        raise BadInputError(
            f"--tag-template {options.template.text!r} gives every version the same tag.",
            hint="Put {version} in it, e.g. 'v{version}' (the default).",
        )
    if options.prune_aliases and not reference.all_versions:
        raise BadInputError(
            "--prune-aliases needs the whole model: only then does the sync know every alias MLflow has.",
            hint=f"Use mlflow://[host/]models/{reference.name}.",
        )
    sample = options.template.render(
        version=reference.version or "1", name=reference.name, run_id=_SAMPLE_RUN_ID, alias=reference.alias
    )
    _checked_tag(options, sample, reference.version or "1")
    options.spec.validate()
    pipeline.check_format(options.format, options.packer, options.compression)
    if options.sign_key is not None:
        from kitmlflow_tui.core.attest.keys import load_signing_key

        load_signing_key(options.sign_key)  # a key that cannot sign is exit 2 before a version is read


def _checked_tag(options: SyncOptions, tag: str, version: str) -> ModelKitRef:
    if tag == RECORD_TAG:
        raise BadInputError(
            f"--tag-template {options.template.text!r} gives the tag {tag!r} for version {version}: that tag holds "
            "kitmlflow's record of the alias tags.",
            hint="Choose another --tag-template.",
        )
    try:
        return options.target.ref(tag)
    except BadInputError as exc:
        raise BadInputError(
            f"--tag-template {options.template.text!r} gives the tag {tag!r} for version {version}, which kit "
            f"does not accept ({exc.message})",
            hint="A tag is up to 128 letters, digits, '_', '.', '-', not starting with '.' or '-'.",
        ) from None


# -- progress ------------------------------------------------------------------------------------------------
class SyncObserver(pipeline.Observer):
    """What a sync tells its caller: its own steps (``step``), each version's import, each record.
    The default ignores everything; the CLI prints."""

    @contextlib.contextmanager
    def version(self, version: str) -> Iterator[pipeline.Observer]:
        """The observer of one version's import (download, pack and push progress)."""
        yield pipeline.Observer()

    def record(self, record: SyncRecord) -> None:
        pass


# -- the sync ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Wanted:
    info: ModelVersionInfo
    tag: str
    ref: ModelKitRef


@dataclass(frozen=True)
class _Held:
    """What a tag holds in the registry: a ModelKit or a ModelPack (``format``), and the provenance it records."""

    manifest: RemoteManifest
    size: int
    provenance: MlflowProvenance | None
    not_a_modelkit: str | None = None  # why, when it is neither
    format: str = "modelkit"

    def describe(self) -> str:
        if self.not_a_modelkit:
            return self.not_a_modelkit
        artifact = "a ModelPack" if self.format == "modelpack" else "a ModelKit"
        if self.provenance is None:
            return f"{artifact} without MLflow provenance"
        registered = self.provenance.registered_model
        run_id = _shown(self.provenance.run.id)
        if registered is None or registered.imported_from_run:
            return f"{artifact} of run {run_id} imported directly, not as a registered model version"
        of = f"{_shown(registered.name)} version {_shown(registered.version)} (run {run_id})"
        return f"{of} as a ModelPack" if self.format == "modelpack" else of

    def holds(self, name: str, version: str, run_id: str | None, artifact_format: str) -> bool:
        """The tag is in step: the same registered version and run, in the format the sync writes (the other
        format of the same version is a conflict: replacing it is --force's decision)."""
        if self.provenance is None or self.not_a_modelkit or self.format != artifact_format:
            return False
        registered = self.provenance.registered_model
        return (
            registered is not None
            and not registered.imported_from_run
            and registered.name == name
            and registered.version == version
            and run_id is not None
            and self.provenance.run.id == run_id
        )

    def of_model(self, name: str) -> bool:
        registered = self.provenance.registered_model if self.provenance is not None else None
        return registered is not None and not registered.imported_from_run and registered.name == name


def _shown(value: Any) -> str:
    """A value read from a registry's config, as a message shows it: bounded (it is not ours)."""
    text = str(value)
    return text if len(text) <= 130 else text[:128] + "…"


class _RunIds:
    """The source run of each version, asked of MLflow at most once (most listings carry it already)."""

    def __init__(self, catalogue: Catalogue) -> None:
        self._catalogue = catalogue
        self._known: dict[str, str | None] = {}

    def __call__(self, info: ModelVersionInfo) -> str | None:
        if info.version not in self._known:
            self._known[info.version] = self._catalogue.source_run_id(info)
        return self._known[info.version]

    def known(self, version: str) -> str | None:
        return self._known.get(version)


@dataclass
class _Context:
    reference: ModelRef
    options: SyncOptions
    catalogue: Catalogue
    client: RegistryClient
    observer: SyncObserver
    cancel: threading.Event
    run_ids: _RunIds
    work: Path | None  # the private kit homes of this target (None in a dry run)
    aliases: list[tuple[str, str]]  # (alias, version) whose tags the sync moves
    alias_tags: AliasTags | None = None  # the repository's record, once read
    unpushed: set[Path] = field(default_factory=set)  # kit homes whose ModelKit this run could not push: kept

    @property
    def all_versions(self) -> bool:
        return self.reference.all_versions


def run_sync(
    reference: ModelRef,
    options: SyncOptions,
    observer: SyncObserver | None = None,
    cancel: threading.Event | None = None,
) -> SyncResult:
    """Bring ``options.target`` in step with the versions ``reference`` names; see the module's text."""
    from kitmlflow_tui.core.registry import RegistryClient

    observer = observer or SyncObserver()
    cancel = cancel or threading.Event()
    check_sync(reference, options)
    catalogue = pipeline.connect(reference, options.tracking_uri_flag, jobs=options.jobs, observer=observer)
    observer.step(Step.LIST, f"Listing the versions of {reference.name}")
    versions, deleted, aliases = _versions(catalogue, reference)
    run_ids = _RunIds(catalogue)
    wanted = _tags(reference, options, versions, run_ids)
    on_note = lambda message: observer.step(Step.NOTE, message)  # noqa: E731
    with (
        RegistryClient.connect(options.target.registry, options.registry, on_note=on_note, cancel=cancel) as client,
        contextlib.ExitStack() as stack,
    ):
        work = None if options.dry_run else stack.enter_context(_target_lock(options.target, observer, cancel))
        context = _Context(reference, options, catalogue, client, observer, cancel, run_ids, work, aliases)
        records = _sync_all(context, wanted, deleted)
        if work is not None:
            _remove_leftovers(work, keep=context.unpushed)
    return SyncResult(
        model=reference.name,
        tracking_uri=catalogue.display_uri,
        target=str(options.target),
        alias=reference.alias,
        dry_run=options.dry_run,
        records=tuple(records),
    )


def _sync_all(context: _Context, wanted: list[_Wanted], deleted: list[_Deleted]) -> list[SyncRecord]:
    """Every version, then the aliases' tags; a version's failure is its record, Ctrl-C ends the loop."""
    records: list[SyncRecord] = []

    def add(record: SyncRecord) -> SyncRecord:
        records.append(record)
        context.observer.record(record)
        return record

    entries: list[tuple[int, _Wanted | _Deleted]] = [(gap.first, gap) for gap in deleted]
    entries += [(int(item.info.version), item) for item in wanted]
    by_version: dict[str, tuple[_Wanted, SyncRecord]] = {}
    for _number, entry in sorted(entries, key=lambda pair: pair[0]):
        if isinstance(entry, _Deleted):
            add(entry.record())
            continue
        by_version[entry.info.version] = (entry, add(_guarded(context, entry, _sync_version, entry)))
        if by_version[entry.info.version][1].exit_code == InterruptedByUser.exit_code:
            return records
    version_tags = {item.tag: item.info.version for item in wanted}
    alias_tags: set[str] = set()  # the tags MLflow's aliases give, whatever happens to them below
    for alias, version in context.aliases:
        try:
            alias_ref = context.options.target.ref(alias)
        except BadInputError:  # MLflow takes aliases kit refuses as tags ("-x", "ä"); the URI's never is one
            reason = f"the alias {_shown(alias)} cannot be a tag (kit's rules): no tag of its name"
            if version in by_version:
                add(SyncRecord(SyncAction.SKIPPED, version, None, None, reason))
            continue
        alias_tags.add(alias_ref.tag)
        if version not in by_version:
            continue  # MLflow removes the aliases of a deleted version: not reached
        item, version_record = by_version[version]
        if alias_ref.tag == item.tag:
            continue  # a template of {alias}: the version's own tag is the alias's
        alias_item = _Wanted(item.info, alias_ref.tag, alias_ref)
        if alias_ref.tag in version_tags:
            reason = f"not moved: {alias_ref.tag} is the tag of version {version_tags[alias_ref.tag]} (--tag-template)"
            add(
                SyncRecord(
                    SyncAction.CONFLICT, version, alias_ref.tag, str(alias_ref), reason, exit_code=PushError.exit_code
                )
            )
            continue
        record = add(_guarded(context, alias_item, _sync_alias, alias_item, version_record))
        if record.exit_code == InterruptedByUser.exit_code:
            return records
    if context.all_versions:
        for record in _stale_aliases(context, alias_tags | set(version_tags)):
            add(record)
    return records


@dataclass(frozen=True)
class _Deleted:
    """Version numbers below the newest that MLflow no longer lists: one, or a whole gap."""

    first: int
    last: int

    def record(self) -> SyncRecord:
        if self.first == self.last:
            return SyncRecord(SyncAction.SKIPPED, str(self.first), None, None, "deleted from the MLflow model registry")
        count = self.last - self.first + 1
        return SyncRecord(
            SyncAction.SKIPPED,
            f"{self.first}-{self.last}",
            None,
            None,
            f"versions {self.first} to {self.last} ({count:,}) deleted from the MLflow model registry",
        )


def _deleted_versions(numbers: Iterable[int]) -> list[_Deleted]:
    """The numbers between 1 and the newest of ``numbers`` that are not among them, computed from the gaps
    (never listed one by one: a server may list versions 1 and 10**12). Each is its own entry while
    MAX_DELETED_RECORDS allows; a gap that does not fit any more is one entry."""
    entries: list[_Deleted] = []
    budget = MAX_DELETED_RECORDS
    previous = 0
    for number in sorted({n for n in numbers if n >= 1}):
        first, last = previous + 1, number - 1
        previous = number
        if first > last:
            continue
        if last - first + 1 <= budget:
            entries += [_Deleted(n, n) for n in range(first, last + 1)]
            budget -= last - first + 1
        else:
            entries.append(_Deleted(first, last))
    return entries


def _versions(
    catalogue: Catalogue, reference: ModelRef
) -> tuple[list[ModelVersionInfo], list[_Deleted], list[tuple[str, str]]]:
    """The versions to sync, the version numbers below the newest that MLflow no longer lists, and the
    (alias, version) pairs whose tags move: the URI's alias, every alias of the model with every version,
    none for one version by number.

    MLflow numbers a model's versions 1, 2, 3... and never reuses a number: a gap is a deleted version."""
    if reference.alias is not None:
        registered, _source = catalogue.resolve_model(reference)
        version = catalogue.get_model_version(reference.name, registered.version)
        return [version], [], [(reference.alias, version.version)]
    if reference.version is not None:
        return [catalogue.get_model_version(reference.name, reference.version)], [], []
    listed = catalogue.list_model_versions(reference.name)
    return (
        listed,
        _deleted_versions(int(v.version) for v in listed),
        sorted(catalogue.model_aliases(reference.name).items()),
    )


def _tags(
    reference: ModelRef, options: SyncOptions, versions: list[ModelVersionInfo], run_ids: _RunIds
) -> list[_Wanted]:
    """Each version's tag, all checked before anything moves: a bad or shared tag is exit 2."""
    wanted: list[_Wanted] = []
    owners: dict[str, str] = {}
    for info in versions:
        run_id = run_ids(info) if "run_id" in options.template.fields else None
        tag = options.template.render(version=info.version, name=reference.name, run_id=run_id, alias=reference.alias)
        ref = _checked_tag(options, tag, info.version)
        if tag in owners:
            raise BadInputError(
                f"--tag-template {options.template.text!r} gives versions {owners[tag]} and {info.version} "
                f"the same tag {tag!r}.",
                hint="Put {version} in the template.",
            )
        owners[tag] = info.version
        wanted.append(_Wanted(info, tag, ref))
    return wanted


def _guarded(context: _Context, item: _Wanted, body: Callable[..., SyncRecord], *args: Any) -> SyncRecord:
    """One version's sync; a failure becomes its record (the others are still tried), Ctrl-C stops."""
    try:
        return body(context, *args)
    except KeyboardInterrupt:
        context.cancel.set()
        error: KitmlflowError = InterruptedByUser("Interrupted.")
    except KitmlflowError as exc:
        error = exc
    except Exception as exc:  # noqa: BLE001 - one version's surprise must not hide the others' results
        error = as_kitmlflow_error(exc)
    return SyncRecord(
        SyncAction.FAILED,
        item.info.version,
        item.tag,
        str(item.ref),
        scrub_secrets(error.message),
        run_id=context.run_ids.known(item.info.version),
        exit_code=error.exit_code,
        hint=scrub_secrets(error.hint) if error.hint else None,
    )


def _sync_version(context: _Context, item: _Wanted) -> SyncRecord:
    info, options = item.info, context.options
    if context.cancel.is_set():
        raise InterruptedByUser("Interrupted.")

    def record(action: SyncAction, reason: str, **values: Any) -> SyncRecord:
        return SyncRecord(action, info.version, item.tag, str(item.ref), reason, **values)

    def not_importable(reason: str, exit_code: int) -> SyncRecord:
        # Among every version of a model, one that cannot be imported is reported and passed over;
        # a version the URI names is a failure, as `import` would make it.
        if context.all_versions:
            return record(SyncAction.SKIPPED, reason, run_id=context.run_ids.known(info.version))
        return record(SyncAction.FAILED, reason, run_id=context.run_ids.known(info.version), exit_code=exit_code)

    if info.status != "READY":
        return not_importable(f"its registration is {info.status}, not READY", NotFoundError.exit_code)
    run_id = context.run_ids(info)
    if run_id is None:
        return not_importable("it has no source run, so there is no provenance to record", NotFoundError.exit_code)
    held = _read_tag(context.client, options.target.repository, item.tag)
    replacing = ""
    if held is not None:
        if held.holds(context.reference.name, info.version, run_id, options.format):
            return record(
                SyncAction.SKIPPED,
                f"in step: {item.tag} holds {held.describe()}",
                run_id=run_id,
                digest=held.manifest.digest,
                size=held.size,
            )
        if not options.force:
            return record(
                SyncAction.CONFLICT,
                f"{item.tag} holds {held.describe()}, not {context.reference.name} version {info.version} "
                f"(run {run_id}); left as it is (--force replaces it)",
                run_id=run_id,
                digest=held.manifest.digest,
                size=held.size,
                exit_code=PushError.exit_code,
            )
        replacing = f"replacing {held.describe()} (--force)"

    with context.observer.version(info.version) as observer:
        version_ref = ModelRef(context.reference.tracking_uri, context.reference.name, version=info.version)
        try:
            session = pipeline.plan_with(
                context.catalogue, version_ref, options.spec, observer=observer, cancel=context.cancel
            )
        except (RunNotFinishedError, RunDeletedError) as exc:
            return not_importable(exc.message, exc.exit_code)
        selected = session.plan.selected_bytes
        if options.dry_run:
            reason = f"would replace {held.describe()} (--force)" if held is not None else "not in the registry"
            return record(SyncAction.WOULD_PUSH, reason, run_id=run_id, selected_bytes=selected)
        pushed, size, downloaded, attestation = _push(context, session, item, observer)
    return record(
        SyncAction.PUSHED,
        replacing or "not in the registry",
        run_id=run_id,
        digest=pushed.digest,
        size=size,
        selected_bytes=selected,
        downloaded_bytes=downloaded,
        uploaded_bytes=pushed.uploaded_bytes,
        uploaded_blobs=pushed.uploaded_blobs,
        existing_blobs=pushed.existing_blobs,
        attestation=attestation,
    )


def _sync_alias(context: _Context, item: _Wanted, version_record: SyncRecord) -> SyncRecord:
    """Point the alias's tag at its version's manifest: one manifest PUT, no blob."""
    name, options = context.reference.name, context.options
    info = item.info
    run_id = context.run_ids.known(info.version)

    def record(action: SyncAction, reason: str, **values: Any) -> SyncRecord:
        return SyncRecord(action, info.version, item.tag, str(item.ref), reason, run_id=run_id, **values)

    version_tag = version_record.tag
    if version_record.action not in (SyncAction.PUSHED, SyncAction.SKIPPED, SyncAction.WOULD_PUSH) or (
        version_record.action == SyncAction.SKIPPED and version_record.digest is None
    ):
        return record(SyncAction.SKIPPED, f"not moved: version {info.version} is not in step ({version_record.action})")
    digest = version_record.digest  # None in a dry run that would push the version first
    manifest = context.client.get_manifest(options.target.repository, item.tag)
    if manifest is not None and manifest.digest == digest:  # the usual case, one GET: the config is not read
        _remember_alias_tag(context, item.tag)
        return record(SyncAction.SKIPPED, f"in step: {item.tag} points at {version_tag}", digest=digest)
    held = None if manifest is None else _held(context.client, options.target.repository, manifest)
    if held is not None:
        if digest is None and held.holds(name, info.version, run_id, options.format):
            return record(
                SyncAction.SKIPPED, f"in step: {item.tag} holds {held.describe()}", digest=held.manifest.digest
            )
        if not options.force and (not held.of_model(name) or _is_version_tag(context, held, item.tag)):
            return record(
                SyncAction.CONFLICT,
                f"{item.tag} holds {held.describe()}, which is not the alias's tag to move; left as it is "
                "(--force replaces it)",
                digest=held.manifest.digest,
                exit_code=PushError.exit_code,
            )
    was = f" (was {held.describe()})" if held is not None else " (a new tag)"
    if options.dry_run or digest is None:
        return record(SyncAction.WOULD_MOVE_TAG, f"would point {item.tag} at {version_tag}{was}")
    _remember_alias_tag(context, item.tag)
    context.observer.step(Step.TAG, f"Pointing {item.ref} at {version_tag}")
    moved = context.client.tag(options.target.repository, digest, item.tag)
    action = SyncAction.TAG_CREATED if manifest is None else SyncAction.TAG_MOVED
    return record(action, f"{item.tag} → {version_tag}{was}", digest=moved, size=version_record.size)


# -- the record of alias tags, and the tags of aliases MLflow no longer has ------------------------------------
def _alias_tags(context: _Context) -> AliasTags:
    if context.alias_tags is None:
        from kitmlflow_tui.core.alias_tags import read_alias_tags

        context.alias_tags = read_alias_tags(context.client, context.options.target.repository)
        if context.alias_tags.foreign:
            context.observer.step(
                Step.NOTE,
                f"The tag {RECORD_TAG} of {context.options.target} holds something kitmlflow did not write "
                f"({context.alias_tags.foreign}): alias tags are not recorded, none is reported stale or pruned.",
            )
    return context.alias_tags


def _save_alias_tags(context: _Context, record: AliasTags) -> None:
    from kitmlflow_tui.core.alias_tags import write_alias_tags

    write_alias_tags(context.client, context.options.target.repository, record)
    context.alias_tags = record


def _remember_alias_tag(context: _Context, tag: str) -> None:
    """Write down that ``tag`` is this model's alias tag before the tag is pointed (a sync that stops between
    the two leaves a record of a tag that does not exist yet, which prunes nothing)."""
    record = _alias_tags(context)
    if context.options.dry_run or record.foreign or record.records(tag, context.reference.name):
        return
    _save_alias_tags(context, record.with_tag(tag, context.reference.name))


def _stale_aliases(context: _Context, current: set[str]) -> list[SyncRecord]:
    """A record per tag this model's record names that no alias (nor version) gives any more: reported, and
    deleted with ``prune_aliases``. A tag that is gone, or holds something else by now, is forgotten."""
    record = _alias_tags(context)
    forget: set[str] = set()
    records: list[SyncRecord] = []
    for tag in sorted(record.of_model(context.reference.name) - current):
        if context.cancel.is_set():
            break
        stale = _stale_alias(context, tag)
        if stale is None or (stale.digest is None and not stale.exit_code):
            forget.add(tag)  # gone, someone else's by now, or deleted here
        if stale is not None:
            records.append(stale)
    if forget and not context.options.dry_run:
        _save_alias_tags(context, record.without(forget))
    return records


def _stale_alias(context: _Context, tag: str) -> SyncRecord | None:
    """The stale alias tag ``tag``: reported, or deleted. None when the tag is gone or holds something that is
    not this model's by now (not ours to report)."""
    name, options = context.reference.name, context.options
    ref = options.target.ref(tag)
    manifest = context.client.get_manifest(options.target.repository, tag)
    held = None if manifest is None else _held(context.client, options.target.repository, manifest)
    if held is None or not held.of_model(name):
        return None
    assert held.provenance is not None and held.provenance.registered_model is not None  # of_model says so
    version = _shown(held.provenance.registered_model.version)
    run_id = held.provenance.run.id
    digest = held.manifest.digest

    def stale(reason: str, **values: Any) -> SyncRecord:
        return SyncRecord(SyncAction.STALE_ALIAS, version, tag, str(ref), reason, run_id=run_id, **values)

    gone = f"the alias {tag} is no longer in MLflow"
    if not options.prune_aliases:
        return stale(f"{gone}; {tag} still points at version {version} (--prune-aliases deletes it)", digest=digest)
    if options.dry_run:
        return stale(f"{gone}; would delete {tag} (version {version})", digest=digest)
    from kitmlflow_tui.core.registry.untag import delete_tag

    context.observer.step(Step.TAG, f"Deleting {ref}: {gone}")
    try:
        deleted = delete_tag(context.client, options.target.repository, tag, expected_digest=digest)
    except KitmlflowError as exc:
        return stale(
            f"{gone}; {tag} could not be deleted: {scrub_secrets(exc.message)}",
            digest=digest,
            exit_code=exc.exit_code,
            hint=scrub_secrets(exc.hint) if exc.hint else None,
        )
    if not deleted:
        return stale(f"{gone}; {tag} changed while it was being deleted: left as it is", digest=digest)
    return stale(f"{gone}; {tag} deleted (it pointed at version {version})")


def _is_version_tag(context: _Context, held: _Held, tag: str) -> bool:
    """Whether ``tag`` is the template's tag of the version ``held`` records (an alias named like one)."""
    assert held.provenance is not None
    registered = held.provenance.registered_model
    if registered is None:
        return False
    rendered = context.options.template.render(
        version=registered.version,
        name=context.reference.name,
        run_id=held.provenance.run.id,
        alias=context.reference.alias,
    )
    return rendered == tag


def _read_tag(client: RegistryClient, repository: str, tag: str) -> _Held | None:
    """What a tag holds (its manifest, then its config: two GETs), or None when the registry has no such tag."""
    manifest = client.get_manifest(repository, tag)
    return None if manifest is None else _held(client, repository, manifest)


def other_content(
    client: RegistryClient, ref: ModelKitRef, digest: str, provenance: MlflowProvenance | None, artifact_format: str
) -> str | None:
    """What ``ref``'s tag holds, described, when that is other content than the ``artifact_format`` manifest
    ``digest`` whose config records ``provenance``: another model, version or run, the other format, or no MLflow
    provenance. None when the tag is missing, holds that very manifest, or one of the same run and registered
    version (a re-push). ``import --push`` follows sync's rule with it: such a tag is a conflict unless forced."""
    held = _read_tag(client, ref.repository, ref.tag)
    if held is None or held.manifest.digest == digest:
        return None
    theirs = held.provenance if not held.not_a_modelkit and held.format == artifact_format else None
    if theirs is None or provenance is None:
        return held.describe()

    def version(recorded: MlflowProvenance) -> tuple[str, str] | None:
        registered = recorded.registered_model
        if registered is None or registered.imported_from_run:  # a run imported whole is the run's, not a version's
            return None
        return (registered.name, registered.version)

    same = theirs.run.id == provenance.run.id and version(theirs) == version(provenance)
    return None if same else held.describe()


def _held(client: RegistryClient, repository: str, manifest: RemoteManifest) -> _Held:
    """A manifest with the provenance it records: a ModelKit's in its config (one bounded GET), a ModelPack's in
    the Kitfile its manifest carries."""
    try:
        document = manifest.json()
        config = manifest.config
        layers = manifest.layers
        size = sum(int(d.get("size") or 0) for d in (config, *layers))
    except (ValueError, TypeError, KitmlflowError) as exc:
        return _Held(manifest, 0, None, f"a manifest kitmlflow cannot read ({exc})")
    from kitmlflow_tui.core.packing.modelpack import carried_kitfile, is_modelpack
    from kitmlflow_tui.core.packing.native import CONFIG_MEDIA_TYPE

    if is_modelpack(document):
        kitfile = carried_kitfile(document)
        return _Held(manifest, size, read_provenance(kitfile) if kitfile else None, format="modelpack")
    if config.get("mediaType") != CONFIG_MEDIA_TYPE or not isinstance(config.get("digest"), str):
        return _Held(manifest, size, None, f"something that is not a ModelKit (config {config.get('mediaType')})")
    try:
        document = json.loads(client.get_blob(repository, config["digest"], max_bytes=MAX_CONFIG_BYTES))
    except ValueError:
        return _Held(manifest, size, None, "a ModelKit whose config is not JSON")
    return _Held(manifest, size, read_provenance(document) if isinstance(document, dict) else None)


# -- pushing one version -----------------------------------------------------------------------------------
def _push(
    context: _Context, session: pipeline.Session, item: _Wanted, observer: pipeline.Observer
) -> tuple[PushResult, int, int, dict[str, Any] | None]:
    """Pack the version into a private kit home and push it (with its signed attestation, under --sign-key):
    (push result, ModelKit bytes, bytes downloaded, where the attestation went).

    The kit home is named after everything the ModelKit depends on; one left by a sync that stopped after
    packing is pushed as it is (no download), its attestation read from the home. Only one is kept: any other
    goes first, and this one once the registry holds the ModelKit."""
    from kitmlflow_tui.core.attest.produce import read_saved_envelope, write_document
    from kitmlflow_tui.core.registry import push_modelkit
    from kitmlflow_tui.core.registry.local import read_local_modelkit

    options = context.options
    assert context.work is not None
    home = context.work / f"kit-{_fingerprint(session, options, item.ref)}"  # named as _KIT_HOME_RE reads
    saved = home / ATTESTATION_FILE
    for other in context.work.glob("kit-*"):
        if other != home:
            shutil.rmtree(other, ignore_errors=True)
    local = None
    envelope = None
    if home.is_dir():
        with contextlib.suppress(KitmlflowError):  # not there, or half-packed: pack it again
            local = read_local_modelkit(item.ref, storage_root=home)
        envelope = read_saved_envelope(saved) if options.sign_key is not None else None
        if options.sign_key is not None and envelope is None:
            local = None  # packed, but the attestation was not written: pack again
    downloaded = 0
    if local is not None:
        observer.step(Step.PACK, f"{item.ref} was packed by a sync that stopped before pushing it: no download")
    else:
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        (home / "disable-update-notifications").touch()  # kit pack --config HOME would look for updates
        import_options = pipeline.ImportOptions(
            tag=item.ref,
            packer=options.packer,
            compression=options.compression,
            overrides=options.overrides,
            jobs=options.jobs,
            storage_root=home,
            sign_key=options.sign_key,
            format=options.format,
        )
        imported = pipeline.run_import(session, import_options, observer)
        downloaded = imported.download.downloaded_bytes
        if imported.attestation is not None and imported.attestation.envelope is not None:
            envelope = imported.attestation.envelope
            write_document(saved, envelope.to_bytes())
        local = read_local_modelkit(item.ref, storage_root=home)
    observer.step(Step.PUSH, f"Pushing {item.ref}")
    context.unpushed.add(home)
    pushed = push_modelkit(
        item.ref,
        None,
        options.registry,
        storage_root=home,
        on_progress=observer.push_progress,
        on_note=lambda message: observer.step(Step.NOTE, message),
        cancel=context.cancel,
    )
    attestation = None
    if envelope is not None:
        attestation = _attach(context, item, local, envelope, observer)
    context.unpushed.discard(home)  # pushed and attested: nothing to keep for a re-run
    shutil.rmtree(home, ignore_errors=True)  # the registry holds it now
    return pushed, sum(blob.size for blob in local.blobs), downloaded, attestation


def _attach(
    context: _Context, item: _Wanted, local: LocalModelKit, envelope: Envelope, observer: pipeline.Observer
) -> dict[str, Any]:
    """Attach a pushed version's signed attestation to its manifest; what went where, for the record."""
    from kitmlflow_tui.core.attest.produce import attach_to_pushed
    from kitmlflow_tui.core.attest.statement import PREDICATE_TYPE

    observer.step(Step.ATTEST, f"Attaching the signed attestation to {item.ref}")
    attached = attach_to_pushed(context.client, context.options.target.repository, local, envelope)
    return {
        "predicate_type": PREDICATE_TYPE,
        "subject_digest": local.manifest.digest,
        "attached": [{"layout": a.layout, "digest": a.digest, "where": a.where} for a in attached],
    }


_KIT_HOME_RE = re.compile(r"kit-[0-9a-f]{24}")


def _remove_leftovers(work: Path, *, keep: set[Path]) -> None:
    """Remove the kit homes a sync left in the target's work folder (killed after its manifest PUT, or before a
    version was found in step some other way), except those this run could not push: the next run pushes them
    without a download. Only names ``_push`` gives are touched, and only under the target's lock, which every
    sync of the target holds while it uses the folder: none of them is in use."""
    with contextlib.suppress(OSError):
        for entry in work.iterdir():
            if _KIT_HOME_RE.fullmatch(entry.name) and entry.is_dir() and entry not in keep:
                shutil.rmtree(entry, ignore_errors=True)


def _fingerprint(session: pipeline.Session, options: SyncOptions, ref: ModelKitRef) -> str:
    """What the packed ModelKit depends on: the run, the planned files, the Kitfile's inputs, the tool."""
    registered = session.resolved.registered
    parts = {
        "ref": str(ref),
        "run": session.resolved.run.run_id,
        "version": registered.version if registered else None,
        "files": [(f.path, f.size) for f in session.plan.selected],
        "filter": session.plan.spec.summary(),
        "overrides": repr(options.overrides),
        "packer": options.packer,
        "compression": options.compression,
        "format": options.format,
        "importer": __version__,
        "signed": options.sign_key is not None,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


# -- one sync per target at a time -----------------------------------------------------------------------------
def sync_root() -> Path:
    """Where syncs keep their locks and their private kit homes: under the import's cache."""
    return pipeline.cache_root() / "sync"


@contextlib.contextmanager
def _target_lock(target: SyncTarget, observer: SyncObserver, cancel: threading.Event) -> Iterator[Path]:
    """Hold the lock of one target repository for the whole sync; yields the target's work folder.

    Two syncs of one target at once would both see a tag missing and push it twice, or move the alias tag
    in the wrong order; the second waits instead and then finds everything in step. A cancel ends the wait.
    Syncs on different machines do not share the lock: there each version's tag is read just before it
    would be pushed, so the registry's state decides, with a window as long as one version's import."""
    key = hashlib.sha256(str(target).encode()).hexdigest()[:16]
    root = sync_root()
    work = root / key

    def told() -> None:
        observer.step(Step.WAIT, f"Waiting for another sync of {target} to finish")

    with contextlib.ExitStack() as held:
        try:
            work.mkdir(parents=True, exist_ok=True)
            lock = locking.locked(root / f"{key}.lock", cancel=cancel, on_wait=told, remove_when_done=True)
            held.enter_context(lock)
        except locking.LockWaitCancelled:
            raise InterruptedByUser(f"Sync cancelled while it waited for another sync of {target}.") from None
        except OSError as exc:
            raise DownloadError(
                f"Cannot use the sync folder {root}: {exc.strerror or exc}.",
                hint="Set KITMLFLOW_CACHE_DIR to a writable folder.",
            ) from exc
        yield work
        with contextlib.suppress(OSError):
            work.rmdir()  # empty unless a ModelKit waits there to be pushed: leave no empty folder behind
