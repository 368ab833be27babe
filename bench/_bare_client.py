"""The least work any client can do to copy a run's artifacts out of MLflow's proxy: the ceiling of ``ceiling.py``.

No MLflow import, no checks beyond the HTTP status, nothing but the requests and the writes:

1. the listing, folder by folder as MLflow's proxy answers it: ``GET /api/2.0/mlflow-artifacts/artifacts?path=ROOT/DIR``
   (a JSON ``{"files": [{"path", "is_dir", "file_size"}]}``), ``--jobs`` folders in flight;
2. the files: ``--jobs`` threads, each with its own keep-alive ``http.client`` connection, each GET read into one
   reused 1 MiB buffer and written with ``os.pwrite``; a file of at least 32 MiB is cut into ``--jobs`` ranges
   (``Range: bytes=a-b``) read at once, as kitmlflow reads a large file of a store that serves ranges.

``--fetch curl`` hands step 2 to ``curl --parallel --parallel-max JOBS`` instead (one stream per file; the listing
stays here). Prints one JSON line: files, bytes, seconds of each step.

Run: ``python bench/_bare_client.py http://127.0.0.1:PORT EXP/RUN/artifacts DEST [--jobs 8] [--fetch python|curl]``
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import subprocess
import tempfile
import threading
import time
import urllib.parse

API = "/api/2.0/mlflow-artifacts/artifacts"
BUFFER = 1024 * 1024
SPLIT_AT = 32 * 1024 * 1024


class Connections(threading.local):
    """One keep-alive connection per thread."""

    def __init__(self, host: str, port: int) -> None:
        self.connection = http.client.HTTPConnection(host, port, timeout=60)


def get(connections: Connections, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    connections.connection.request("GET", path, headers=headers or {})
    response = connections.connection.getresponse()
    if response.status not in (200, 206):
        raise RuntimeError(f"GET {path}: {response.status} {response.read()[:200]!r}")
    return response


def list_tree(connections: Connections, root: str, jobs: int) -> list[tuple[str, int]]:
    """Every file under ``root`` with its size, one request per folder, ``jobs`` in flight."""
    files: list[tuple[str, int]] = []
    folders: queue.Queue[str | None] = queue.Queue()
    pending = [1]
    lock = threading.Lock()
    folders.put("")

    def worker() -> None:
        while (folder := folders.get()) is not None:
            query = urllib.parse.urlencode({"path": f"{root}/{folder}" if folder else root})
            document = json.loads(get(connections, f"{API}?{query}").read())
            with lock:
                for entry in document.get("files", []):
                    child = f"{folder}/{entry['path']}" if folder else entry["path"]
                    if entry.get("is_dir"):
                        pending[0] += 1
                        folders.put(child)
                    else:
                        files.append((child, int(entry.get("file_size", 0))))
                pending[0] -= 1
                if pending[0] == 0:
                    for _ in range(jobs):
                        folders.put(None)

    threads = [threading.Thread(target=worker) for _ in range(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return files


def fetch_python(connections: Connections, root: str, files: list[tuple[str, int]], dest: str, jobs: int) -> None:
    pieces: list[tuple[str, int, int, int]] = []  # (path, size, start, end)
    for path, size in sorted(files, key=lambda item: item[1], reverse=True):
        step = max(size // jobs + 1, 16 * 1024 * 1024) if size >= SPLIT_AT else max(size, 1)
        pieces += [(path, size, start, min(start + step, size)) for start in range(0, max(size, 1), step)]
    work: queue.SimpleQueue[tuple[str, int, int, int]] = queue.SimpleQueue()
    for piece in pieces:
        work.put(piece)
    opened: dict[str, int] = {}
    lock = threading.Lock()

    def descriptor(path: str, size: int) -> int:
        with lock:
            if path not in opened:
                target = os.path.join(dest, path)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                opened[path] = os.open(target, os.O_WRONLY | os.O_CREAT, 0o644)
                os.ftruncate(opened[path], size)
            return opened[path]

    def worker() -> None:
        buffer = bytearray(BUFFER)
        view = memoryview(buffer)
        while True:
            try:
                path, size, start, end = work.get_nowait()
            except queue.Empty:
                return
            fd = descriptor(path, size)
            url = f"{API}/{root}/" + urllib.parse.quote(path)
            whole = start == 0 and end == size
            response = get(connections, url, None if whole else {"Range": f"bytes={start}-{end - 1}"})
            offset = start
            while count := response.readinto(view):
                os.pwrite(fd, view[:count], offset)
                offset += count

    threads = [threading.Thread(target=worker) for _ in range(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for fd in opened.values():
        os.close(fd)


def fetch_curl(base: str, root: str, files: list[tuple[str, int]], dest: str, jobs: int) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".curl", delete=False) as config:
        for path, _size in sorted(files, key=lambda item: item[1], reverse=True):
            config.write(f'url = "{base}{API}/{root}/{urllib.parse.quote(path)}"\n')
            config.write(f'output = "{os.path.join(dest, path)}"\n')
    try:
        subprocess.run(
            ["curl", "--silent", "--show-error", "--no-progress-meter", "--fail", "--create-dirs", "--parallel",
             "--parallel-immediate",
             "--parallel-max", str(jobs), "--config", config.name],
            check=True,
        )  # fmt: skip
    finally:
        os.unlink(config.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the tracking server, http://HOST:PORT")
    parser.add_argument("root", help="the run's artifact root under the proxy: EXP/RUN/artifacts")
    parser.add_argument("dest")
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--fetch", choices=("python", "curl"), default="python")
    args = parser.parse_args()
    start = time.perf_counter()
    url = urllib.parse.urlsplit(args.base)
    connections = Connections(url.hostname or "127.0.0.1", url.port or 80)
    files = list_tree(connections, args.root, args.jobs)
    listed = time.perf_counter()
    os.makedirs(args.dest, exist_ok=True)
    if args.fetch == "curl":
        fetch_curl(args.base, args.root, files, args.dest, args.jobs)
    else:
        fetch_python(connections, args.root, files, args.dest, args.jobs)
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "files": len(files),
                "bytes": sum(size for _, size in files),
                "list_s": round(listed - start, 3),
                "fetch_s": round(done - listed, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
