"""The files a Kitfile describes and a ModelKit packs: a folder on disk, or a run's listing held in memory.

kit init's classification (``kitfile.classify``), the MLflow corrections (``kitfile.enrich``), the Kitfile's
path checks and kit's layer walk (``packing.layers``) look only at names, kinds, sizes and modes, plus the
content of a few small files (``MLmodel``, a root license, ``.kitignore``). A :class:`FolderTree` answers from
the disk, exactly as those steps used to ask it; a :class:`ListedTree` answers from the planned files of a run
(paths and listed sizes) and the few contents fetched into memory, so a Kitfile and a layer layout can be
computed before, or without, downloading anything (docs/architecture.md, "the direct import").

Entries of a folder come unsorted: each caller sorts them the way the kit code it mirrors does.
"""

from __future__ import annotations

import os
import posixpath
import stat
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Kind = Literal["file", "dir", "symlink", "other"]  # as lstat sees it: "file" is a regular file


@dataclass(frozen=True)
class TreeEntry:
    name: str  # the base name
    kind: Kind
    size: int  # 0 for anything but a regular file
    mode: int  # permission bits plus setuid/setgid/sticky


class FileTree(ABC):
    """Read-only view of a tree of files. Paths are relative, ``/``-separated; ``""`` is the root."""

    @abstractmethod
    def entries(self, folder: str) -> list[TreeEntry]:
        """The entries of ``folder`` (unsorted); raises ``OSError`` when it cannot be listed."""

    @abstractmethod
    def exists(self, path: str) -> bool:
        """Whether ``path`` names a file or a folder (through symlinks, as ``Path.exists``)."""

    @abstractmethod
    def read_bytes(self, path: str) -> bytes | None:
        """The content of a file, or None when it is not available (missing, not fetched); ``OSError`` when it
        exists but cannot be read."""

    @abstractmethod
    def describe(self) -> str:
        """How messages name the tree (a folder path, or the run's listing)."""

    def read_text(self, path: str) -> str:
        """The content as text, "" when it is not available or cannot be read (as kit init reads a license)."""
        try:
            data = self.read_bytes(path)
        except OSError:
            return ""
        return data.decode("utf-8", errors="replace") if data is not None else ""


class FolderTree(FileTree):
    """A folder on disk: ``lstat`` kinds (a symlink is never followed), the file system's modes."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)

    def path_of(self, relative: str) -> Path:
        return self.folder / relative if relative else self.folder

    def entries(self, folder: str) -> list[TreeEntry]:
        directory = self.path_of(folder)
        found = []
        for name in os.listdir(directory):
            info = os.lstat(directory / name)
            if stat.S_ISDIR(info.st_mode):
                kind: Kind = "dir"
            elif stat.S_ISREG(info.st_mode):
                kind = "file"
            elif stat.S_ISLNK(info.st_mode):
                kind = "symlink"
            else:
                kind = "other"
            size = info.st_size if kind == "file" else 0
            found.append(TreeEntry(name, kind, size, stat.S_IMODE(info.st_mode)))
        return found

    def exists(self, path: str) -> bool:
        return (self.folder / path).exists()

    def read_bytes(self, path: str) -> bytes | None:
        try:
            return self.path_of(path).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def describe(self) -> str:
        return str(self.folder)


@dataclass(frozen=True)
class ListedFile:
    path: str
    size: int
    mode: int | None = None  # None: the mode a download would give it


def download_modes() -> tuple[int, int]:
    """(file mode, folder mode) of what this process creates: ``0o666`` and ``0o777`` less the umask, the modes a
    downloaded file and its folders get, so a listed tree packs as its download would."""
    umask = _current_umask()
    return 0o666 & ~umask, 0o777 & ~umask


def _current_umask() -> int:
    try:  # Linux ≥ 4.7 says it without changing it (os.umask would, for every thread, for a moment)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


class ListedTree(FileTree):
    """Files known by path and size (a plan's selection), folders implied by the paths, and the contents of the
    few files that were fetched. ``folders`` adds folders no file implies (with their modes, for tests)."""

    def __init__(
        self,
        files: Iterable[ListedFile],
        contents: Mapping[str, bytes] | None = None,
        *,
        folders: Mapping[str, int] | None = None,
        modes: tuple[int, int] | None = None,
        description: str = "the run's listing",
    ) -> None:
        self.file_mode, self.folder_mode = modes or download_modes()
        self.contents = dict(contents or {})
        self._description = description
        self._files: dict[str, ListedFile] = {}
        self._folder_modes: dict[str, int] = {"": self.folder_mode}
        self._children: dict[str, dict[str, TreeEntry]] = {"": {}}
        for folder, mode in (folders or {}).items():
            self._add_folder(folder, mode)
        for file in files:
            self.add_file(file)

    def _add_folder(self, folder: str, mode: int | None = None) -> None:
        if folder in self._children:
            if mode is not None:
                self._folder_modes[folder] = mode
                parent, _, name = folder.rpartition("/")
                self._children[parent][name] = TreeEntry(name, "dir", 0, mode)
            return
        parent, _, name = folder.rpartition("/")
        self._add_folder(parent)
        self._folder_modes[folder] = self.folder_mode if mode is None else mode
        self._children[folder] = {}
        self._children[parent][name] = TreeEntry(name, "dir", 0, self._folder_modes[folder])

    def add_file(self, file: ListedFile, content: bytes | None = None) -> None:
        """Add (or replace) a file; with ``content``, its bytes are known (and its size is theirs)."""
        parent, _, name = file.path.rpartition("/")
        if file.path in self._children or not name:
            raise ValueError(f"{file.path!r} is a folder of the tree, not a file")
        self._add_folder(parent)
        if content is not None:
            self.contents[file.path] = content
            file = ListedFile(file.path, len(content), file.mode)
        self._files[file.path] = file
        mode = self.file_mode if file.mode is None else file.mode
        self._children[parent][name] = TreeEntry(name, "file", file.size, mode)

    def remove_file(self, path: str) -> None:
        if self._files.pop(path, None) is not None:
            parent, _, name = path.rpartition("/")
            del self._children[parent][name]
            self.contents.pop(path, None)

    @property
    def files(self) -> tuple[ListedFile, ...]:
        return tuple(self._files.values())

    def entries(self, folder: str) -> list[TreeEntry]:
        try:
            return list(self._children[folder].values())
        except KeyError:
            raise FileNotFoundError(f"{folder!r} is not a folder of {self._description}") from None

    def exists(self, path: str) -> bool:
        cleaned = posixpath.normpath(path) if path else "."
        cleaned = "" if cleaned == "." else cleaned
        return cleaned in self._files or cleaned in self._children

    def is_file(self, path: str) -> bool:
        return path in self._files

    def read_bytes(self, path: str) -> bytes | None:
        return self.contents.get(path)

    def describe(self) -> str:
        return self._description


def as_tree(source: FileTree | Path | str) -> FileTree:
    """A tree for a folder path; a tree as it is."""
    return source if isinstance(source, FileTree) else FolderTree(source)
