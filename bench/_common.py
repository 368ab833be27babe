"""Shared machinery of the benchmarks: arguments, a work folder, real servers, measured subprocesses.

Every measurement runs in a fresh subprocess. Its wall time is taken from ``Popen`` to the moment
``os.wait4`` reaps it (a reaper thread blocks in ``wait4``, so the time is exact, not polled), and its
CPU time (user + system) comes from the same ``wait4``. Memory is measured two ways, both by polling
every 50 ms:

- ``rss_tree``: psutil's RSS of the process and all of its descendants, summed; the peak of those sums
  (a sampled value: a spike shorter than 50 ms can escape it);
- ``maxrss``: the kernel's high-water mark ``VmHWM`` (``/proc/PID/status``) of each process of the tree,
  summed over every process seen (exact since that process's exec, except for its last <50 ms).

``ru_maxrss`` from ``wait4`` is not used: Linux carries the high-water mark of the memory a child had
before its exec over to it, so every child would report at least the ≈190 MB of this mlflow-importing
benchmark process. Both tools measured here are single processes (threads only); the tables show
``rss_tree``, the JSON has both.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import unquote

import psutil

# No MLflow telemetry in this process either (seed_run uses an MlflowClient here): besides phoning home, its
# background thread sets and unsets _MLFLOW_TELEMETRY_SESSION_ID in os.environ, which races with anything
# iterating os.environ meanwhile (requests' proxy lookup raised KeyError inside seed_run once).
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
sys.path.insert(0, str(REPO))  # bench scripts run as files: the repository root makes `tests` importable
sys.path.insert(0, str(REPO))

from tests.support.servers import MlflowServer, mlflow_server, seed_run  # noqa: E402

BIN = Path(sys.executable).parent
PYTHON = sys.executable
MLFLOW_CLI = [str(BIN / "mlflow")] if (BIN / "mlflow").exists() else [shutil.which("mlflow") or "mlflow"]
KITMLFLOW_CLI = [str(BIN / "kitmlflow")] if (BIN / "kitmlflow").exists() else [PYTHON, "-m", "kitmlflow_tui.cli"]

SAMPLE_SECONDS = 0.05
MB = 1_000_000
MiB = 1024 * 1024

# The imports both tools need before their first request. The in-process measurements run these
# before starting the clock, so that they time the work and not Python's start-up.
PREAMBLE = """
import json, sys, time
import mlflow
from mlflow import MlflowClient
import mlflow.artifacts
import mlflow.store.artifact.artifact_repository_registry
import mlflow.store.artifact.http_artifact_repo
import mlflow.utils.rest_utils
"""


# ----------------------------------------------------------------------------------------------
# arguments, work folder, environment


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="one run of each measurement instead of --runs")
    p.add_argument("--runs", type=int, default=3, help="measurements per tool (best and median are reported)")
    p.add_argument("--workdir", type=Path, help="parent folder of the temporary work folder (default: system temp)")
    p.add_argument("--keep", action="store_true", help="keep the work folder (servers are always stopped)")
    p.add_argument("--json-out", type=Path, help="also write the results as JSON to this file")
    return p


def runs_of(args: argparse.Namespace) -> int:
    return 1 if args.quick else max(1, args.runs)


@contextlib.contextmanager
def workdir(args: argparse.Namespace, name: str) -> Iterator[Path]:
    parent = args.workdir
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"kitmlflow-bench-{name}-", dir=parent))
    try:
        yield path
    finally:
        if args.keep:
            print(f"(work folder kept: {path})")
        else:
            shutil.rmtree(path, ignore_errors=True)


def client_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every measured process: no MLFLOW_* from the caller, no telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "PYTHONUNBUFFERED": "1"})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


def machine() -> dict:
    import mlflow

    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        model = platform.processor() or "?"
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "python": platform.python_version(),
        "mlflow": mlflow.__version__,
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def baseline_tree(ref: str, work: Path) -> Path:
    """The package of git ``ref``, extracted into the work folder: first on ``PYTHONPATH``, it is the one a measured
    process imports (``--baseline REF``: before and after in one run)."""
    folder = work / f"baseline-{ref.replace('/', '-')}"
    folder.mkdir()
    archive = subprocess.run(["git", "archive", ref, "kitmlflow_tui"], cwd=REPO, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    found = subprocess.run(
        [PYTHON, "-c", "import kitmlflow_tui; print(kitmlflow_tui.__file__)"],
        env={**client_env(), "PYTHONPATH": str(folder)},
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not found.startswith(str(folder)):
        raise RuntimeError(f"the baseline package is not the one imported: {found}")
    compile_package(folder / "kitmlflow_tui")
    return folder


def compile_package(folder: Path = REPO / "kitmlflow_tui") -> None:
    """The package's ``.pyc`` files written before a measurement, so that a measured command starts as an installed
    kitmlflow does (pip compiles a package at install). Without them, under ``PYTHONDONTWRITEBYTECODE=1`` (set on
    some machines, and inherited by ``client_env``) every run compiles the package's modules again: 0.2-0.5 CPU-s
    of each command's start-up here, and more for a baseline extracted by ``git archive``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(folder)], env=env, check=True, stdout=subprocess.DEVNULL)


# ----------------------------------------------------------------------------------------------
# servers and data


@contextlib.contextmanager
def server(root: Path) -> Iterator[MlflowServer]:
    """A real proxied ``mlflow server`` (``--artifacts-destination``) on 127.0.0.1, stopped on exit."""
    with mlflow_server(root / "server") as srv:
        print(f"mlflow server {srv.url} (pid {srv.pid}) ready in {srv.ready_seconds:.1f} s", flush=True)
        yield srv


def seeded_run(srv: MlflowServer, experiment: str) -> tuple[str, str, Path]:
    """A FINISHED run with one tiny artifact; returns (experiment id, run id, its folder on the server's
    disk). The benchmark then writes the real files straight into that folder: the proxied server
    serves whatever is on its disk, and this is far faster than uploading a gigabyte through it."""
    exp_id, run_id = seed_run(srv.url, experiment_name=experiment, files={"README.txt": b"benchmark run\n"})
    folder = srv.root / "art" / exp_id / run_id / "artifacts"
    if not (folder / "README.txt").is_file():
        raise RuntimeError(f"the seeded artifact is not where expected: {folder}")
    return exp_id, run_id, folder


_BLOCK = os.urandom(8 * MiB)


def write_file(path: Path, size: int, head: bytes = b"") -> None:
    """``size`` bytes: ``head``, then incompressible data written in 8 MiB blocks (never all in memory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(head)
        remaining = size - len(head)
        while remaining > 0:
            n = min(remaining, len(_BLOCK))
            f.write(_BLOCK[:n])
            remaining -= n


def tree_bytes(path: Path) -> tuple[int, int]:
    """(files, bytes) of every regular file under ``path``."""
    files = total = 0
    for root, _, names in os.walk(path):
        for name in names:
            st = os.lstat(os.path.join(root, name))
            files += 1
            total += st.st_size
    return files, total


def settle() -> None:
    """Flush dirty pages before the next measurement, so no process pays for another's writeback."""
    os.sync()
    time.sleep(0.5)


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def server_cpu_seconds(srv: MlflowServer) -> float:
    """User + system CPU seconds used so far by the server's processes (supervisor and uvicorn)."""
    total = 0.0
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(srv.pid)
        for p in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
    return total


_ACCESS = re.compile(r'"GET /api/2\.0/mlflow-artifacts/artifacts/(\S+) HTTP/1\.1" (\d{3})')


class ServerLog:
    """The server's access log: which artifact files were fetched (GET .../artifacts/PATH) since a mark.

    This is the server's own account of what a client asked for, independent of the client's numbers."""

    def __init__(self, srv: MlflowServer) -> None:
        self.path = srv.log_path
        self.offset = 0

    def mark(self) -> None:
        self.offset = self.path.stat().st_size

    def fetched(self, run_id: str) -> list[str]:
        """Run-relative paths of the artifact files served with 200/206 since the mark."""
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            text = f.read().decode(errors="replace")
        marker = f"/{run_id}/artifacts/"
        out = []
        for path, status in _ACCESS.findall(text):
            path = unquote(path.split("?", 1)[0])
            if status in ("200", "206") and marker in path:
                out.append(path.split(marker, 1)[1])
        return out


# ----------------------------------------------------------------------------------------------
# measured subprocesses


@dataclass
class Measurement:
    label: str
    wall: float
    rss_tree: int  # peak of the summed RSS of the process tree, sampled every 50 ms
    maxrss: int  # VmHWM of each process of the tree, summed (sampled every 50 ms, exact per process)
    cpu: float  # user + system CPU seconds of the child (and of the children it reaped), from wait4
    returncode: int
    stdout: str = field(default="", repr=False)
    stderr_tail: str = field(default="", repr=False)
    extra: dict = field(default_factory=dict)

    def json(self) -> dict:
        data = asdict(self)
        data.pop("stdout")
        return data


class MeasuredProcessError(RuntimeError):
    pass


def _vm_hwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class TreeMemory:
    """Peak summed RSS of a process tree and the VmHWM of each of its processes, by polling."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_rss = 0
        self.hwm: dict[int, int] = {}

    def sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        total = 0
        for p in procs:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
            self.hwm[p.pid] = max(self.hwm.get(p.pid, 0), _vm_hwm(p.pid))
        self.peak_rss = max(self.peak_rss, total)

    @property
    def peak_hwm(self) -> int:
        return sum(self.hwm.values())


def measure(
    label: str,
    cmd: Sequence[str],
    *,
    env: dict[str, str],
    logs: Path,
    timeout: float = 1800.0,
    check: bool = True,
    on_sample: Callable[[float], None] | None = None,
) -> Measurement:
    """Run ``cmd`` as a fresh subprocess: wall and CPU time, peak RSS (tree sum) and VmHWM (see above).
    ``on_sample(seconds since start)`` is called at every 50 ms poll while it runs."""
    logs.mkdir(parents=True, exist_ok=True)
    stem = "".join(c if c.isalnum() else "-" for c in label)[:60]
    out_path, err_path = logs / f"{stem}.stdout", logs / f"{stem}.stderr"
    reaped = threading.Event()
    result: dict = {}
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=REPO)

        def reap() -> None:
            _, status, usage = os.wait4(proc.pid, 0)
            result.update(end=time.perf_counter(), status=status, cpu=usage.ru_utime + usage.ru_stime)
            reaped.set()

        reaper = threading.Thread(target=reap, daemon=True)
        reaper.start()
        memory = TreeMemory(proc.pid)
        deadline = start + timeout
        while not reaped.wait(SAMPLE_SECONDS):
            memory.sample()
            if on_sample is not None:
                on_sample(time.perf_counter() - start)
            if time.perf_counter() > deadline:
                for p in psutil.Process(proc.pid).children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        p.kill()
                proc.kill()
        reaper.join()
    proc.returncode = os.waitstatus_to_exitcode(result["status"])
    stdout = out_path.read_text(errors="replace")
    stderr_tail = "\n".join(err_path.read_text(errors="replace").splitlines()[-15:])
    m = Measurement(
        label,
        result["end"] - start,
        memory.peak_rss,
        memory.peak_hwm,
        result["cpu"],
        proc.returncode,
        stdout,
        stderr_tail,
    )
    if check and proc.returncode != 0:
        raise MeasuredProcessError(f"{label}: exit {proc.returncode}: {' '.join(cmd)}\n{stderr_tail}")
    return m


def last_json(text: str) -> dict:
    """The JSON document a measured snippet or ``--json`` command printed on stdout."""
    text = text.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return json.loads(text.splitlines()[-1])


# ----------------------------------------------------------------------------------------------
# statistics and reporting


def best(values: Sequence[float]) -> float:
    return min(values)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def fmt_s(seconds: float) -> str:
    return f"{seconds:.2f} s"


def fmt_mb(n: float) -> str:
    return f"{n / MB:,.1f} MB"


def fmt_ratio(r: float) -> str:
    return f"{r:.2f}x"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], left: int = 1) -> str:
    """A plain-text table; the first ``left`` columns are left-aligned, the others right-aligned."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        padded = (c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        lines.append("  ".join(padded).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


@dataclass
class Target:
    name: str
    passed: bool
    detail: str

    @property
    def status(self) -> str:
        return "PASS" if self.passed else "MISS"


class Report:
    """What a benchmark prints and (with --json-out) hands to run_all.py."""

    def __init__(self, name: str, args: argparse.Namespace) -> None:
        self.name = name
        self.args = args
        self.started = time.perf_counter()
        self.machine = machine()
        self.rows: list[dict] = []
        self.measurements: list[dict] = []
        self.targets: list[Target] = []
        self.notes: list[str] = []

    def target(self, name: str, passed: bool, detail: str) -> None:
        t = Target(name, passed, detail)
        self.targets.append(t)
        print(f"{t.status}  {name}: {detail}", flush=True)

    def finish(self) -> None:
        elapsed = time.perf_counter() - self.started
        self.machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        m = self.machine
        print(
            f"\nmachine: {m['cpus']} cores ({m['cpu_model']}), {m['memory_gib']} GiB, Python {m['python']}, "
            f"mlflow {m['mlflow']}; load average {m['load_average_at_start']} at start, "
            f"{m['load_average_at_end']} at end; {self.name} took {elapsed:.0f} s"
        )
        if self.args.json_out:
            self.args.json_out.write_text(
                json.dumps(
                    {
                        "benchmark": self.name,
                        "quick": self.args.quick,
                        "runs": runs_of(self.args),
                        "elapsed_seconds": round(elapsed, 1),
                        "machine": m,
                        "rows": self.rows,
                        "targets": [{"name": t.name, "status": t.status, "detail": t.detail} for t in self.targets],
                        "notes": self.notes,
                        "measurements": self.measurements,
                    },
                    indent=2,
                )
            )
