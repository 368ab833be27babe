"""Reusable filter profiles: strict YAML files in ``<user config dir>/kitmlflow/profiles/NAME.yaml``.

A profile holds ``include``, ``exclude``, ``max_file_size`` and optional Kitfile defaults under
``package`` (``description``, ``authors``, ``license``). Unknown keys are an error naming the key and
its line, so a typo never silently widens what gets shipped.

A profile is named (letters, digits, ``.``, ``_``, ``-``; no leading dot, no ``..``, no ``.yaml``): showing,
deleting and saving one never touch a file outside the profiles folder. Only ``--profile`` reads a file by its
path, and only when the value holds a ``/`` (``./params.yaml``).
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kitmlflow_tui.core import safe_yaml
from kitmlflow_tui.core.errors import BadInputError
from kitmlflow_tui.core.selection.plan import FilterSpec, parse_size
from kitmlflow_tui.core.yaml_fields import mapping_fields, string_field, string_list_field

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TOP_KEYS = {"include", "exclude", "max_file_size", "package"}
_PACKAGE_KEYS = {"description", "authors", "license"}
# Generous for a profile the wizard saved from a huge run (one pattern per picked file at worst), and
# refused at once when absurd: a file over the size is never read whole, a list over the count stops
# composing there (about 0.5 s for 100,000 patterns).
MAX_PATTERNS = 100_000
LIMITS = safe_yaml.YamlLimits(max_bytes=8 * safe_yaml.MiB, max_nodes=MAX_PATTERNS + 1_000, max_depth=16)


@dataclass(frozen=True)
class PackageDefaults:
    description: str | None = None
    authors: tuple[str, ...] = ()
    license: str | None = None

    def as_dict(self) -> dict:
        data: dict = {}
        if self.description:
            data["description"] = self.description
        if self.authors:
            data["authors"] = list(self.authors)
        if self.license:
            data["license"] = self.license
        return data


@dataclass(frozen=True)
class Profile:
    name: str
    spec: FilterSpec
    package: PackageDefaults = field(default_factory=PackageDefaults)
    path: Path | None = None

    def to_yaml(self) -> str:
        data: dict = {"include": list(self.spec.include), "exclude": list(self.spec.exclude)}
        if self.spec.max_file_size is not None:
            data["max_file_size"] = self.spec.max_file_size
        if self.package.as_dict():
            data["package"] = self.package.as_dict()
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)


def profiles_dir() -> Path:
    """``$XDG_CONFIG_HOME/kitmlflow/profiles`` (platformdirs' user config dir elsewhere)."""
    import platformdirs

    return Path(platformdirs.user_config_dir("kitmlflow", appauthor=False)) / "profiles"


def is_path_like(value: str) -> bool:
    """Whether ``--profile`` names a file: its value holds a ``/``."""
    return "/" in value or os.sep in value


def _is_name(name: str) -> bool:
    return bool(_NAME.match(name)) and ".." not in name and not name.lower().endswith((".yaml", ".yml"))


def check_name(name: str) -> str:
    """``name`` if it is a profile's name, else exit 2 saying what a name is."""
    if _is_name(name):
        return name
    if _is_name(stem := name.rsplit(".", 1)[0]):
        raise BadInputError(
            f"Invalid profile name {name!r}: a profile is named without its .yaml ({stem!r} is kept as "
            f"{stem}.yaml in {profiles_dir()}).",
            hint=f"To read the file {name} itself, give its path: --profile ./{name}",
        )
    raise BadInputError(
        f"Invalid profile name {name!r}: use letters, digits, '.', '_' and '-' (at most 64; no '/', no '..', "
        "not starting with '.')."
    )


def profile_file(name: str) -> Path:
    """Where the profile named ``name`` lives: always inside the profiles folder."""
    return profiles_dir() / f"{check_name(name)}.yaml"


def load_profile(name_or_path: str) -> Profile:
    """What ``--profile`` reads: a file by its path when the value holds a ``/``, else a profile by name."""
    if is_path_like(name_or_path):
        return _load(Path(name_or_path).expanduser(), name_or_path)
    return load_named_profile(name_or_path)


def load_named_profile(name: str) -> Profile:
    """A profile by name, from the profiles folder only."""
    return _load(profile_file(name), name)


def _load(path: Path, name_or_path: str) -> Profile:
    try:
        text = safe_yaml.read_text(path, LIMITS)
    except safe_yaml.YamlRefused as exc:
        raise _refused(str(path), exc) from None
    except FileNotFoundError:
        known = ", ".join(list_profiles()) or "none saved yet"
        raise BadInputError(
            f"Profile {name_or_path!r} not found at {path}.", hint=f"Known profiles: {known}."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"Cannot read profile {path}: {exc}.") from None
    name = path.stem if is_path_like(name_or_path) else name_or_path
    return parse_profile(text, name=name, source=str(path), path=path)


def parse_profile(text: str, *, name: str, source: str = "<profile>", path: Path | None = None) -> Profile:
    try:
        root = safe_yaml.compose(text, LIMITS)
    except safe_yaml.YamlRefused as exc:
        raise _refused(source, exc) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise BadInputError(f"Profile {source}{where}: not valid YAML ({getattr(exc, 'problem', exc)}).") from None
    if root is None:
        return Profile(name, FilterSpec(), path=path)
    if not isinstance(root, yaml.MappingNode):
        raise BadInputError(f"Profile {source} line {root.start_mark.line + 1}: expected a mapping of keys.")
    where = f"Profile {source}"
    values = mapping_fields(root, _TOP_KEYS, where)
    include = string_list_field(values.get("include"), where, "include")
    exclude = string_list_field(values.get("exclude"), where, "exclude")
    cap_node = values.get("max_file_size")
    cap = None
    if cap_node is not None:
        raw = yaml.safe_load(yaml.serialize(cap_node))
        try:
            cap = parse_size(raw, what="max_file_size")
        except BadInputError as exc:
            raise BadInputError(f"Profile {source} line {cap_node.start_mark.line + 1}: {exc.message}") from None
    package = PackageDefaults()
    if "package" in values:
        node = values["package"]
        if not isinstance(node, yaml.MappingNode):
            raise BadInputError(f"Profile {source} line {node.start_mark.line + 1}: 'package' must be a mapping.")
        fields = mapping_fields(node, _PACKAGE_KEYS, where, "package.")
        package = PackageDefaults(
            description=string_field(fields.get("description"), where, "package.description"),
            authors=tuple(string_list_field(fields.get("authors"), where, "package.authors")),
            license=string_field(fields.get("license"), where, "package.license"),
        )
    if len(include) + len(exclude) > MAX_PATTERNS:
        raise BadInputError(
            f"Profile {source}: {len(include) + len(exclude):,} include/exclude patterns, more than the "
            f"{MAX_PATTERNS:,} a profile may hold."
        )
    spec = FilterSpec(tuple(include), tuple(exclude), cap)
    try:
        spec.validate()
    except BadInputError as exc:
        raise BadInputError(f"Profile {source}: {exc.message}") from None
    return Profile(name, spec, package, path)


def _refused(source: str, exc: safe_yaml.YamlRefused) -> BadInputError:
    where = f" {exc.where}" if exc.where else ""
    return BadInputError(
        f"Profile {source}{where}: refused: {exc.problem}.",
        hint=f"A profile is plain YAML: lists of patterns (at most {MAX_PATTERNS:,}), a size, package fields.",
    )


def save_profile(profile: Profile, *, overwrite: bool = True) -> Path:
    """Write atomically (temp file + rename): a crash never leaves a half-written profile."""
    path = profile.path or profile_file(profile.name)
    if path.exists() and not overwrite:
        raise BadInputError(f"Profile {profile.name!r} already exists at {path}.")
    text = profile.to_yaml()
    parse_profile(text, name=profile.name)  # what we write must load back
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def list_profiles() -> list[str]:
    folder = profiles_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.yaml") if _is_name(p.stem))


def delete_profile(name: str) -> Path:
    """Delete the profile named ``name`` (never a file outside the profiles folder)."""
    path = profile_file(name)
    try:
        path.unlink()
    except FileNotFoundError:
        raise BadInputError(f"No profile named {name!r} (looked in {path.parent}).") from None
    return path
