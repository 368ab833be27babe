"""The kit packer: runs the real ``kit pack`` and reads back what it stored."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kitmlflow_tui.core import settings
from kitmlflow_tui.core.errors import BadInputError, InterruptedByUser, PackError
from kitmlflow_tui.core.kitfile.model import Kitfile
from kitmlflow_tui.core.modelkit_reference import ModelKitRef, repo_file_stem
from kitmlflow_tui.core.packing.native import COMPRESSIONS, plan_layers
from kitmlflow_tui.core.packing.result import PackResult
from kitmlflow_tui.core.packing.storage import KitStorage, resolve_kit_home

PACKERS = ("auto", "kit", "native")


def find_kit() -> str | None:
    """The kit binary to use: ``$KIT_BIN`` when it names an executable, else ``kit`` on the PATH."""
    configured = settings.KIT_BIN.value()
    if configured:
        found = shutil.which(configured)
        return found if found else None
    return shutil.which("kit")


def choose_packer(mode: str) -> str:
    """``"kit"`` or ``"native"`` for ``--packer auto|kit|native``; ``auto`` prefers kit when installed."""
    if mode not in PACKERS:
        raise BadInputError(f"Unknown packer {mode!r}: use auto, kit or native.")
    if mode == "native":
        return "native"
    if find_kit() is not None:
        return "kit"
    if mode == "auto":
        return "native"
    configured = settings.KIT_BIN.value()
    raise PackError(
        f"kit was not found (KIT_BIN={configured!r} is not an executable)." if configured else "kit is not installed.",
        hint="Install kit (https://kitops.org), set KIT_BIN, or use --packer native.",
    )


def dump_kitfile_yaml(kitfile: Kitfile | Mapping[str, Any]) -> str:
    """The Kitfile as YAML in kit's own style."""
    from kitmlflow_tui.core.kitfile import dump_kitfile

    return dump_kitfile(kitfile)


def pack_with_kit(
    folder: Path,
    kitfile: Kitfile | Mapping[str, Any],
    reference: ModelKitRef,
    *,
    kit_bin: str | None = None,
    storage_root: Path | None = None,
    compression: str = "none",
    cancel: threading.Event | None = None,
) -> PackResult:
    """Run ``kit pack <folder> -f <Kitfile> -t <repo:tag> --config <home>``.

    The Kitfile goes to a temporary file outside ``folder`` (kit leaves a ``Kitfile`` inside the
    folder out of every layer anyway). The digest is read back from kit's tag file.
    """
    if compression not in COMPRESSIONS:
        raise BadInputError(f"Unknown compression {compression!r}: use one of {', '.join(COMPRESSIONS)}.")
    binary = kit_bin or find_kit()
    if binary is None:
        raise PackError("kit is not installed.", hint="Install kit, set KIT_BIN, or use --packer native.")
    folder = Path(folder)
    if not folder.is_dir():
        raise PackError(f"Cannot pack {folder}: it is not a folder.")
    home = resolve_kit_home(storage_root)
    with tempfile.TemporaryDirectory(prefix="kitmlflow-kitfile-") as scratch:
        kitfile_path = Path(scratch) / "Kitfile"
        kitfile_path.write_text(dump_kitfile_yaml(kitfile), encoding="utf-8")
        command = [
            binary,
            "pack",
            str(folder),
            "-f",
            str(kitfile_path),
            "-t",
            str(reference),  # the name kit resolves
            "--compression",
            compression,
            "--config",
            str(home),
            "--progress",
            "none",
        ]
        returncode, stdout, stderr = _run(command, cancel)
    if returncode != 0:
        detail = _last_lines(stderr or stdout)
        raise PackError(
            f"kit pack failed (exit {returncode}): {detail}" if detail else f"kit pack failed (exit {returncode})."
        )
    result = _read_back(home, reference)
    try:
        left_out = plan_layers(folder, kitfile).left_out  # kit's walk, replayed read-only for the report
    except PackError:
        left_out = ()
    return dataclasses.replace(result, left_out=left_out)


def _run(command: list[str], cancel: threading.Event | None) -> tuple[int, str, str]:
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        raise PackError(f"Cannot run {command[0]}: {exc.strerror or exc}") from exc
    output: dict[str, str] = {}

    def collect() -> None:
        out, err = process.communicate()
        output["stdout"], output["stderr"] = out, err

    reader = threading.Thread(target=collect, daemon=True)
    reader.start()
    try:
        while reader.is_alive():
            if cancel is not None and cancel.is_set():
                process.terminate()
                reader.join(10)
                raise InterruptedByUser("Packing cancelled.")
            reader.join(0.1)
    except KeyboardInterrupt:
        process.terminate()
        reader.join(10)  # kit must be gone before the caller removes the folder it packs
        raise
    return process.returncode, output.get("stdout", ""), output.get("stderr", "")


def _last_lines(text: str, count: int = 6) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:])


def _read_back(home: Path, reference: ModelKitRef) -> PackResult:
    storage = KitStorage(home)
    tags_path = storage.root / f"{repo_file_stem(reference.registry, reference.repository)}-tags.json"
    deadline = time.monotonic() + 2
    while True:
        try:
            tags = json.loads(tags_path.read_text(encoding="utf-8"))
            descriptor = tags[reference.tag]
            digest = descriptor["digest"]
            manifest = json.loads(storage.blob_path(digest).read_bytes())
            break
        except (OSError, ValueError, KeyError, TypeError) as exc:
            if time.monotonic() > deadline:
                raise PackError(f"kit pack finished but {reference} is not in {storage.root}: {exc}") from exc
            time.sleep(0.1)
    layers = manifest.get("layers") or []
    return PackResult(
        reference=str(reference),
        digest=digest,
        size=sum(int(layer.get("size", 0)) for layer in layers),
        packer="kit",
        storage_root=home,
        config_digest=str(manifest.get("config", {}).get("digest", "")),
        layer_count=len(layers),
    )
