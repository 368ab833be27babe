"""Names and short descriptions for a Kitfile's entries, from what MLflow knows: the run's note, the datasets it
logged as inputs, and each file's role.

kit init names almost nothing (``kit unpack`` then prints "Unpacking model part  to params.yaml"); a deployer
reading the Kitfile wants to know what each layer is. Every entry the schema gives a name gets one, every entry the
schema gives a description gets one; a name or description already there (kit's, MLflow's) is kept.

The run's note is markdown: only its headings and paragraphs matter here, so they are read with two rules
(ATX ``# Title`` and setext ``Title`` over ``===``/``---``) rather than a markdown library.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from kitmlflow_tui.core.catalogue.records import DatasetInput
from kitmlflow_tui.core.errors import scrub_secrets
from kitmlflow_tui.core.kitfile.model import CodeEntry, DatasetEntry, DocsEntry, ModelPart

# The environment files MLflow writes beside a model (inside an MLmodel folder they are part of that model).
ENVIRONMENT_FILES = {
    "requirements.txt": "pip requirements of the run's Python environment",
    "conda.yaml": "conda environment of the run",
    "python_env.yaml": "Python version and build tools of the run's environment (MLflow python_env)",
}
CODE_FOLDER_NAMES = frozenset(("src", "pkg", "lib", "build"))  # kit init's code folders

_ATX_HEADING = re.compile(r"[ ]{0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*")
_SETEXT_UNDERLINE = re.compile(r"[ ]{0,3}(?:=+|-+)[ \t]*")
_BLANK_LINES = re.compile(r"\n[ \t]*\n")


@dataclass(frozen=True)
class NoteText:
    """A run note's first heading (its title) and its first paragraph that is not a heading."""

    title: str | None
    paragraph: str | None


def read_note(note: str | None) -> NoteText:
    title: str | None = None
    for block in _BLANK_LINES.split((note or "").strip()):
        lines = block.strip("\n").splitlines()
        while lines:
            heading = _ATX_HEADING.fullmatch(lines[0])
            if heading is not None:
                title = title or (heading.group(1) or "").strip() or None
                lines = lines[1:]
            elif len(lines) > 1 and _SETEXT_UNDERLINE.fullmatch(lines[1]) and lines[0].strip():
                title = title or lines[0].strip()
                lines = lines[2:]
            else:
                paragraph = "\n".join(lines).strip()
                if paragraph:
                    return NoteText(title, paragraph)
                break
    return NoteText(title, None)


def stem(path: str) -> str:
    """A file's name without its extension (``data/train.csv`` → ``train``); a folder's name."""
    name = posixpath.basename(path.rstrip("/")) or path
    root, _dot, _ext = name.rpartition(".")
    return root if root and not name.startswith(".") else name


def _source_stem(dataset: DatasetInput) -> str | None:
    if not dataset.source:
        return None
    path = dataset.source.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    return stem(path) if path else None


class InputIndex:
    """The logged dataset inputs by the name a file holding one has: its source's file (or folder) name, else the
    input's own name (``data/train.csv`` ↔ ``s3://bucket/churn/train.csv``, or a dataset named ``train``). Built
    once: a dataset folder may hold many files."""

    def __init__(self, inputs: Sequence[DatasetInput]) -> None:
        self._by_name: dict[str, DatasetInput] = {}
        for dataset in inputs:
            self._by_name.setdefault(dataset.name, dataset)
        for dataset in reversed(inputs):  # a source's name wins over an input's own; the first input wins
            source = _source_stem(dataset)
            if source is not None:
                self._by_name[source] = dataset

    def of(self, path: str) -> DatasetInput | None:
        return self._by_name.get(stem(path))


def dataset_description(dataset: DatasetInput) -> str:
    """What the input is, in words (its source's credentials masked: a presigned URL's signature, say)."""
    what = f"{dataset.context} data" if dataset.context else "Data"
    facts = [f"MLflow dataset {dataset.name}"]
    if dataset.digest:
        facts.append(f"digest {dataset.digest}")
    if dataset.source:
        facts.append(f"from {scrub_secrets(dataset.source)}")
    return f"{what[:1].upper()}{what[1:]} the run logged as an input ({', '.join(facts)})"


def _input_record(dataset: DatasetInput) -> dict[str, str]:
    found = {
        "name": dataset.name,
        "digest": dataset.digest,
        "source_type": dataset.source_type,
        "source": scrub_secrets(dataset.source) if dataset.source else None,
        "context": dataset.context,
    }
    return {key: value for key, value in found.items() if value}


def named_datasets(
    datasets: Sequence[DatasetEntry], inputs: Sequence[DatasetInput], files_in: Callable[[str], list[str]]
) -> list[DatasetEntry]:
    """Each dataset named and described by the logged input it is (a file), else by its file or folder and kind; a
    folder entry holding logged inputs (``files_in`` lists a folder's files) says which. The inputs' records go to
    ``parameters.mlflow_datasets``."""
    index = InputIndex(inputs)
    named = []
    for entry in datasets:
        path = entry.path or "."
        itself = index.of(path) if inputs else None
        held = [] if itself or not inputs else [(f, d) for f in files_in(path) if (d := index.of(f)) is not None]
        if itself is not None:
            name, description, found = itself.name, dataset_description(itself), [itself]
        elif held:
            name = stem(path)
            description = "; ".join(f"{file}: {dataset_description(d)}" for file, d in held)
            found = [d for _, d in held]
        else:
            name, description, found = stem(path), _file_role(path), []
        entry = replace(entry, name=entry.name or name, description=entry.description or description)
        if found:
            records = [_input_record(d) for d in found]
            entry = replace(entry, parameters={**(entry.parameters or {}), "mlflow_datasets": records})
        named.append(entry)
    return named


def named_parts(parts: Sequence[ModelPart]) -> tuple[ModelPart, ...]:
    """Every part named: by its file (``params.yaml`` → ``params``), by its path where two files share a name."""
    stems = [stem(part.path or ".") for part in parts]
    named = []
    for part, name in zip(parts, stems, strict=True):
        if not part.name:
            unique = stems.count(name) == 1
            part = replace(part, name=name if unique else (part.path or ".").replace("/", "-"))
        named.append(part)
    return tuple(named)


def described_code(code: Sequence[CodeEntry]) -> list[CodeEntry]:
    return [replace(entry, description=entry.description or _code_role(entry.path or ".")) for entry in code]


def described_docs(docs: Sequence[DocsEntry]) -> list[DocsEntry]:
    return [replace(entry, description=entry.description or _docs_role(entry.path or ".")) for entry in docs]


def _code_role(path: str) -> str:
    if path in ENVIRONMENT_FILES:
        return ENVIRONMENT_FILES[path]
    if path == ".":
        return "The run's other artifacts (files kit init could not classify)"
    if posixpath.basename(path) in CODE_FOLDER_NAMES:
        return f"Code folder {path}"
    return "Run artifact kit init does not classify"


def _docs_role(path: str) -> str:
    suffix = posixpath.splitext(path)[1].lower()
    kind = {".md": "Markdown document", ".adoc": "AsciiDoc document", ".html": "HTML page", ".pdf": "PDF document"}
    return kind.get(suffix, "Documentation folder") + " logged with the run"


def _file_role(path: str) -> str:
    suffix = posixpath.splitext(path)[1].lower()
    kinds = {
        ".csv": "CSV data",
        ".parquet": "Parquet data",
        ".zip": "Zip archive",
        ".tar": "Tar archive",
        ".json": "JSON file",
        ".yaml": "YAML file",
        ".txt": "Text file",
        ".xml": "XML file",
    }
    return kinds.get(suffix, "Data folder") + " logged with the run"
