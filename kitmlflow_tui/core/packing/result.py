"""What a pack produced: the value both packers return."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kitmlflow_tui.core.packing.file_digests import FileDigest


@dataclass(frozen=True)
class PackResult:
    reference: str  # "mymodel:v1": the name kit list shows (storage.format_reference)
    digest: str  # "sha256:..." of the manifest
    size: int  # sum of the layer sizes, as `kit list` adds them up (the config is not counted)
    packer: str  # "native" or "kit"
    storage_root: Path  # kit's home folder; the ModelKit is in its storage/ subfolder
    config_digest: str = ""
    layer_count: int = 0
    # Files in the folder that ended up in no layer although .kitignore does not name them
    # (symlinks, files no entry covers, kit's prefix and ".." rules): worth a warning.
    left_out: tuple[str, ...] = ()
    # Every file of the layers with its sha256, when the pack was asked to hash them (an attestation's
    # resolvedDependencies); empty otherwise.
    files: tuple[FileDigest, ...] = ()
