"""MLflow's deployment target ``kitops``: ``mlflow deployments create -t kitops:/REGISTRY/REPO --name NAME
-m models:/MODEL/VERSION`` imports the model version and pushes it as a ModelKit, through the Python API (the same
core, the same ModelKit and digest as ``kitmlflow import … --push``).

A deployment here is a tag of the repository: ``--name`` is the tag unless ``-C tag=TAG`` names another, and
``get``/``list`` read the registry's tags. A registry stores ModelKits; it does not serve them, so ``predict``
refuses, and ``delete`` refuses unless ``-C force=true`` (deleting a tag deletes its manifest, for every tag that
names it). MLflow finds this module through the entry point group ``mlflow.deployments`` (pyproject.toml); it
wants ``run_local``, ``target_help`` and exactly one ``BaseDeploymentClient`` subclass in it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

from mlflow.deployments import BaseDeploymentClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import ErrorCode

from kitmlflow_tui.core.errors import BadInputError, KitmlflowError, NotFoundError, scrub_secrets

SCHEME = "kitops"
FORMATS = ("modelkit", "modelpack")
MAX_SHARED_TAG_CHECKS = 500  # a forced delete reads at most this many other tags to find those it would take along
# cosign's signature and attestation tags: parts of a ModelKit's supply chain, not deployments.
_COSIGN_TAG = re.compile(r"sha256-[0-9a-f]{64}(\.[a-z]+)?")
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")

# -C KEY=VALUE: the import's keyword arguments (docs/python-api.md); lists are comma-separated, since MLflow
# refuses a repeated key.
_TEXT = ("tag", "format", "max_file_size", "profile", "packer", "compression", "tracking_uri", "description")
_PATHS = ("sign_key", "attestation_output", "cert", "key", "kitfile")
_LISTS = ("include", "exclude", "authors")
_FLAGS = ("plain_http", "tls_verify", "force")
CONFIG_KEYS = (*_TEXT, *_PATHS, *_LISTS, *_FLAGS, "jobs")

HELP = f"""\
Target URI: kitops:/REGISTRY/REPOSITORY (e.g. kitops:/registry.example.com/ml/churn).
A deployment is a tag of that repository: create/update import the model version (models:/NAME/VERSION,
models:/NAME@ALIAS or runs:/RUN_ID) from the tracking server (MLFLOW_TRACKING_URI, or -C tracking_uri=URI) and push
it as a ModelKit tagged --name (or -C tag=TAG), exactly as `kitmlflow import ... --push` would.
--flavor (or -C format=) is the format: {" or ".join(FORMATS)}.
Config (-C KEY=VALUE): {", ".join(CONFIG_KEYS)}; include, exclude and authors take comma-separated lists,
plain_http, tls_verify and force take true/false.
Credentials: `kitmlflow login REGISTRY` (or `kit login`). get/list read the registry's tags; delete refuses unless
-C force=true; predict does not apply (a registry does not serve predictions). run-local packs into kit's local
storage without pushing, under --name as the ModelKit's reference (churn:v3; MLflow gives run-local no target).
"""


def target_help() -> str:
    return HELP


def run_local(name: str, model_uri: str, flavor: str | None = None, config: dict | None = None) -> None:
    """``mlflow deployments run-local``: the ModelKit packed into kit's local storage, not pushed. MLflow hands a
    plugin's ``run_local`` no target, so ``--name`` is the ModelKit's reference (``churn:v3``,
    ``registry.example.com/ml/churn:v3`` for a later ``kit push``)."""
    from kitmlflow_tui.api import import_modelkit

    with _as_mlflow_errors():
        settings = _settings(config)
        if settings.pop("tag", None):
            raise BadInputError("run-local packs under --name, a ModelKit reference (churn:v3): -C tag does not apply.")
        chosen = _format(flavor, settings.pop("format", None))
        if chosen != "modelkit":
            settings["format"] = chosen
        import_modelkit(_reference_text(model_uri), name, **settings)


class KitOpsDeploymentClient(BaseDeploymentClient):
    """Deployments as tags of one registry repository (see the module's text)."""

    def __init__(self, target_uri: str) -> None:
        super().__init__(target_uri)
        with _as_mlflow_errors():
            self.target = _parse_target(target_uri)

    # -- create, update: an import and a push ----------------------------------------------------------------
    def create_deployment(
        self,
        name: str,
        model_uri: str,
        flavor: str | None = None,
        config: dict | None = None,
        endpoint: str | None = None,
    ) -> dict[str, Any]:
        with _as_mlflow_errors():
            return self._import(name, model_uri, flavor, config)

    def update_deployment(
        self,
        name: str,
        model_uri: str | None = None,
        flavor: str | None = None,
        config: dict | None = None,
        endpoint: str | None = None,
    ) -> dict[str, Any]:
        """Push again: the model given, else the one the tag records (its alias, which may point at another
        version now, else its version); the tag is replaced whatever it held."""
        with _as_mlflow_errors():
            settings = _settings(config)
            if model_uri is None:
                held = self._read(str(settings.get("tag") or name))
                model_uri = held.get("model_uri")
                if not model_uri:
                    raise BadInputError(f"{held['reference']} records no MLflow model version to push again; give -m.")
            return self._import(name, model_uri, flavor, {**(config or {}), "force": "true"})

    def _import(self, name: str, model_uri: str, flavor: str | None, config: dict | None) -> dict[str, Any]:
        from kitmlflow_tui.api import import_modelkit

        settings = _settings(config)
        tag = str(settings.pop("tag", None) or name)
        chosen = _format(flavor, settings.pop("format", None))
        if chosen != "modelkit":
            settings["format"] = chosen
        report = import_modelkit(_reference_text(model_uri), str(self.target.ref(tag)), push=True, **settings)
        assert report.pushed is not None
        return {
            "name": name,
            "flavor": chosen,
            "tag": tag,
            "reference": report.pushed.reference,
            "digest": report.pushed.digest,
            "model_uri": model_uri,
            "run_id": report.run.run_id,
        }

    # -- get, list: the registry's tags ----------------------------------------------------------------------
    def get_deployment(self, name: str, endpoint: str | None = None) -> dict[str, Any]:
        with _as_mlflow_errors():
            return self._read(name)

    def list_deployments(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        with _as_mlflow_errors(), self._client() as client:
            listing = client.list_tags(self.target.repository)
        deployments = [
            {"name": tag, "reference": str(self.target.ref(tag))}
            for tag in listing.tags
            if not _COSIGN_TAG.fullmatch(tag)
        ]
        if listing.truncated:
            deployments.append({"name": "…", "note": f"more tags than the {len(listing.tags)} listed"})
        return deployments

    def _read(self, tag: str) -> dict[str, Any]:
        import json

        from kitmlflow_tui.core.packing.native import CONFIG_MEDIA_TYPE
        from kitmlflow_tui.core.provenance import read_provenance
        from kitmlflow_tui.core.sync import MAX_CONFIG_BYTES

        reference = str(self.target.ref(tag))
        with self._client() as client:
            manifest = client.get_manifest(self.target.repository, tag)
            if manifest is None:
                raise NotFoundError(f"No deployment {tag}: {reference} is not in the registry.")
            config = manifest.config
            found: dict[str, Any] = {"name": tag, "flavor": _flavor_of(manifest.json(), config)}
            found.update(reference=reference, digest=manifest.digest)
            if config.get("mediaType") == CONFIG_MEDIA_TYPE and isinstance(config.get("digest"), str):
                document = json.loads(
                    client.get_blob(self.target.repository, config["digest"], max_bytes=MAX_CONFIG_BYTES)
                )
                provenance = read_provenance(document) if isinstance(document, dict) else None
                if provenance is not None:
                    found.update(tracking_uri=provenance.tracking_uri, run_id=provenance.run.id)
                    registered = provenance.registered_model
                    if registered is not None:  # an alias is kept: an update follows it to its version now
                        found["model_version"] = registered.version
                        found["model_uri"] = (
                            f"models:/{registered.name}@{registered.alias}"
                            if registered.alias
                            else f"models:/{registered.name}/{registered.version}"
                        )
        return found

    # -- delete, predict: what a registry is not ---------------------------------------------------------------
    def delete_deployment(self, name: str, config: dict | None = None, endpoint: str | None = None) -> None:
        """Refused unless ``-C force=true``: a registry deletes a manifest, and with it every tag that names it."""
        with _as_mlflow_errors():
            settings = _settings(config)
            tag = str(settings.get("tag") or name)
            reference = str(self.target.ref(tag))
            if not settings.get("force"):
                raise BadInputError(
                    f"A registry tag is not a deployment to tear down: deleting {reference} deletes its manifest from "
                    "the registry, and with it every other tag that names the same ModelKit.",
                    hint="If that is what you want: -C force=true (the registry must allow deletes); pulling the "
                    "ModelKit stops working for everyone.",
                )
            with self._client(settings) as client:
                manifest = client.get_manifest(self.target.repository, tag)
                if manifest is None:
                    raise NotFoundError(f"No deployment {tag}: {reference} is not in the registry.")
                shared = self._tags_naming(client, manifest.digest, besides=tag)
                if shared:
                    raise BadInputError(
                        f"Deleting {reference} would also delete the tags {', '.join(shared)} (the same ModelKit).",
                        hint="Point those tags elsewhere first, or delete them the same way.",
                    )
                client.delete_manifest(self.target.repository, manifest.digest)

    def _tags_naming(self, client: Any, digest: str, *, besides: str) -> list[str]:
        listing = client.list_tags(self.target.repository, limit=MAX_SHARED_TAG_CHECKS)
        if listing.truncated:
            raise BadInputError(
                f"{self.target} has more than {MAX_SHARED_TAG_CHECKS} tags: kitmlflow cannot tell which of them a "
                "delete would take along, so it deletes nothing."
            )
        shared = []
        for other in listing.tags:
            if other != besides and not _COSIGN_TAG.fullmatch(other):
                held = client.get_manifest(self.target.repository, other)
                if held is not None and held.digest == digest:
                    shared.append(other)
        return shared

    def predict(self, deployment_name: str | None = None, inputs: Any = None, endpoint: str | None = None) -> Any:
        raise MlflowException(
            f"The {SCHEME} target is an OCI registry: it stores ModelKits and does not serve predictions. "
            "Serve the model with `mlflow models serve -m models:/NAME/VERSION`, or unpack the ModelKit with "
            "`kit unpack` and serve it where you run models."
        )

    @contextmanager
    def _client(self, settings: dict[str, Any] | None = None) -> Iterator[Any]:
        """A client of the target's registry; get and list take no -C, so only delete's settings reach it."""
        from kitmlflow_tui.core.registry import RegistryClient, RegistryOptions

        given = {name: (settings or {}).get(name) for name in ("plain_http", "tls_verify", "cert", "key")}
        options = RegistryOptions(
            plain_http=bool(given["plain_http"]),
            tls_verify=given["tls_verify"] is not False,
            cert=given["cert"],
            key=given["key"],
        )
        with RegistryClient.connect(self.target.registry, options) as client:
            yield client


# -- inputs --------------------------------------------------------------------------------------------------------
def _parse_target(target_uri: str) -> Any:
    from kitmlflow_tui.core.sync import parse_target

    repository = target_uri.split(":", 1)[1].lstrip("/") if ":" in target_uri else ""
    if not repository:
        raise BadInputError(
            f"The {SCHEME} target names no repository: {target_uri!r}.",
            hint=f"Write -t {SCHEME}:/REGISTRY/REPOSITORY, e.g. {SCHEME}:/registry.example.com/ml/churn.",
        )
    return parse_target(repository)


def _reference_text(model_uri: str) -> str:
    """MLflow's ``models:/NAME/VERSION``, ``models:/NAME@ALIAS`` or ``runs:/RUN_ID`` as kitmlflow's ``mlflow://``
    grammar (the tracking server from MLFLOW_TRACKING_URI or ``-C tracking_uri=``)."""
    for prefix, kind in (("models:/", "models"), ("runs:/", "runs")):
        if model_uri.startswith(prefix):
            rest = model_uri[len(prefix) :].strip("/")
            if kind == "runs" and "/" in rest:
                raise BadInputError(
                    f"{model_uri}: the {SCHEME} target imports a whole run (runs:/RUN_ID).",
                    hint="Choose its files with -C include=PATH/ (comma-separated globs).",
                )
            return f"mlflow://{kind}/" + quote(rest, safe="/@")
    raise BadInputError(
        f"The {SCHEME} target takes models:/NAME/VERSION, models:/NAME@ALIAS or runs:/RUN_ID, not {model_uri!r}."
    )


def _settings(config: dict | None) -> dict[str, Any]:
    """``-C`` pairs as the import's keyword arguments; an unknown key or a bad value is exit 2 naming it."""
    settings: dict[str, Any] = {}
    for key, raw in (config or {}).items():
        value = str(raw).strip()
        if key in _LISTS:
            settings[key] = tuple(part.strip() for part in value.split(",") if part.strip())
        elif key in _FLAGS:
            settings[key] = _flag(key, value)
        elif key == "jobs":
            if not value.isdigit():
                raise BadInputError(f"-C jobs={value} is not a number.")
            settings[key] = int(value)
        elif key in _TEXT or key in _PATHS:
            settings[key] = value
        else:
            raise BadInputError(
                f"Unknown -C key {key!r} for the {SCHEME} target.", hint=f"Keys: {', '.join(CONFIG_KEYS)}."
            )
    return settings


def _flag(key: str, value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise BadInputError(f"-C {key}={value}: say true or false.")


def _format(flavor: str | None, configured: str | None) -> str:
    if flavor and configured and flavor != configured:
        raise BadInputError(f"--flavor {flavor} and -C format={configured} disagree; give one.")
    chosen = flavor or configured or "modelkit"
    if chosen not in FORMATS:
        raise BadInputError(f"The {SCHEME} target's flavor is the format: {' or '.join(FORMATS)}, not {chosen!r}.")
    return chosen


def _flavor_of(manifest: dict[str, Any], config: dict[str, Any]) -> str:
    from kitmlflow_tui.core.packing.native import CONFIG_MEDIA_TYPE

    if config.get("mediaType") == CONFIG_MEDIA_TYPE:
        return "modelkit"
    if manifest.get("artifactType") == "application/vnd.cncf.model.manifest.v1+json":
        return "modelpack"
    return f"other ({config.get('mediaType')})"


# -- errors ----------------------------------------------------------------------------------------------------------
_MLFLOW_CODES: dict[int, str] = {
    BadInputError.exit_code: "INVALID_PARAMETER_VALUE",
    3: "PERMISSION_DENIED",
    NotFoundError.exit_code: "RESOURCE_DOES_NOT_EXIST",
}


@contextmanager
def _as_mlflow_errors() -> Iterator[None]:
    """kitmlflow's errors as MLflow's, which its CLI prints: the message, the hint and the exit code kitmlflow would
    have used, every secret scrubbed."""
    try:
        yield
    except KitmlflowError as exc:
        text = scrub_secrets(str(exc))
        code = _MLFLOW_CODES.get(exc.exit_code, "INTERNAL_ERROR")
        raise MlflowException(
            f"{text}\n(kitmlflow exit code {exc.exit_code})", error_code=ErrorCode.Value(code)
        ) from None
