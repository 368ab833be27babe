"""kitmlflow's native packer vs ``kit pack`` on the same ≈1 GB folder and the same Kitfile.

The folder: ``weights/model.safetensors`` (600 MiB), ``checkpoints/optimizer.pt`` (300 MiB), 300 small
files of 4-200 KB in ``data/``, ``src/`` and ``docs/`` (100 each), a ``README.md``, and the Kitfile that
``kit init`` writes for it (``kitmlflow_tui.core.kitfile.classify_like_kit_init``, saved as ``DIR/Kitfile``;
both packers leave it out of every layer). Six layers: model, model part, code, dataset, two docs.

Measured, each in a fresh subprocess writing into a fresh, empty kit home, alternating the order of
the two packers from one round to the next:

- native: ``python -c`` that imports ``kitmlflow_tui.core.packing.native`` and calls
  ``pack_native(DIR, kitfile, parse_modelkit_reference("bench:v1"), storage_root=HOME)``;
- kit:    ``kit pack DIR -t bench:v1 --config HOME --progress none``.

Before each measurement dirty pages are flushed (``sync``) and the source files are dropped from the
page cache (``posix_fadvise(DONTNEED)`` on each file, nobody else's cache is touched), so both packers
read the folder cold (``--warm`` keeps it cached instead).

Durability differs: the native packer fsyncs every blob, JSON file and folder it writes before it
exits; ``kit pack`` does not fsync, it leaves the data in the page cache. The "kit + sync" column adds
the time of fsyncing, right after kit exits, every file and folder kit left in its home (the same
work the native packer does inside its own time): that is the like-for-like comparison, the raw
``kit pack`` time is the one a user sees.

Memory: the peak of the summed RSS of the process tree, polled with psutil every 50 ms, and the
kernel's high-water mark ``VmHWM`` of each process (``/proc/PID/status``, read at each poll; exact
except for the last <50 ms of a process), summed over the tree. ``ru_maxrss`` from ``wait4`` is NOT
usable here: Linux carries the pre-exec high-water mark across exec, so every child reports the
≈190 MB of the mlflow-importing benchmark process that spawned it. Disk: every 50 ms the allocated size
(``st_blocks``) of every file in the kit home and in the process's ``TMPDIR`` is summed; the peak
minus the final size of the ModelKit in ``HOME/storage`` is the temporary overhead (kit writes each
layer to ``HOME/cache/pack`` first, then copies it into ``storage/``).

``--diagnose`` adds a third row: the native packer with ``os.fsync`` and ``posix_fadvise`` stubbed out in
its driver (no change to kitmlflow's code), i.e. what it costs without its durability work. ``--baseline REF``
adds the native packer of that git ref (``_common.baseline_tree``): before and after in one run.

Run: ``.venv/bin/python bench/pack_vs_kit.py [--quick] [--runs N] [--workdir DIR] [--warm] [--diagnose]
[--baseline REF]``
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import _common as c
import psutil

LARGE = {
    "weights/model.safetensors": 600 * c.MiB,
    "checkpoints/optimizer.pt": 300 * c.MiB,
}
SMALL_FOLDERS = {"data": ".csv", "src": ".py", "docs": ".md"}
SMALL_PER_FOLDER = 100
RSS_TARGET = 300 * c.MB
TAG = "bench:v1"

NATIVE_DRIVER = """
import json, sys, time
start = time.perf_counter()
from pathlib import Path
import yaml
from kitmlflow_tui.core.modelkit_reference import parse_modelkit_reference
from kitmlflow_tui.core.packing.native import pack_native
imported = time.perf_counter()
folder, home, tag, mode = sys.argv[1:5]
if mode == "no-fsync":  # diagnostic only: what the native packer costs without its durability work
    import os
    os.fsync = lambda fd: None
    os.posix_fadvise = lambda *args: None
kitfile = yaml.safe_load((Path(folder) / "Kitfile").read_text())
result = pack_native(Path(folder), kitfile, parse_modelkit_reference(tag), storage_root=Path(home))
done = time.perf_counter()
print(json.dumps({"import_s": imported - start, "pack_s": done - imported, "digest": result.digest}))
"""


# ----------------------------------------------------------------------------------------------
# shared with import_vs_manual.py: kit discovery, kit homes, a measurement that also watches disk


def find_kit() -> str | None:
    """``$KIT_BIN`` or ``kit`` on the PATH, found the way kitmlflow finds it."""
    from kitmlflow_tui.core.packing.kit_cli import find_kit as kitmlflow_find_kit

    return kitmlflow_find_kit()


def kit_home(path: Path) -> Path:
    """A fresh, empty kit home that never phones home (kit checks for updates unless told not to)."""
    c.remove(path)
    path.mkdir(parents=True)
    (path / "disable-update-notifications").touch()
    return path


def disk_usage(paths: Sequence[Path]) -> int:
    """Allocated bytes (``st_blocks``) of the regular files under ``paths``, each inode counted once
    (kitmlflow stages its download as hard links); files may vanish while this runs."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for top in paths:
        for root, _, names in os.walk(top):
            for name in names:
                with contextlib.suppress(OSError):
                    st = os.lstat(os.path.join(root, name))
                    if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) in seen:
                        continue
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
    return total


# Memory sampling is _common.TreeMemory (summed RSS peak plus each process's VmHWM; see its docstring).
TreeMemory = c.TreeMemory


@dataclass
class DiskMeasurement:
    m: c.Measurement
    disk_before: int  # allocated bytes under the watched paths before the start
    disk_peak: int  # the highest sample (at least the before and after values)
    disk_after: int  # after the process exited


def measure_disk(
    label: str,
    cmd: Sequence[str],
    *,
    env: dict[str, str],
    logs: Path,
    watch: Sequence[Path],
    timeout: float = 3600.0,
) -> DiskMeasurement:
    """Like ``_common.measure`` (wall time until ``wait4`` reaps the child, CPU from ``wait4``, memory
    polled every 50 ms, see :class:`TreeMemory`) plus the allocated size of ``watch`` at each poll.
    ``Measurement.maxrss`` holds the summed VmHWM, not ``ru_maxrss``."""
    logs.mkdir(parents=True, exist_ok=True)
    stem = "".join(ch if ch.isalnum() else "-" for ch in label)[:60]
    out_path, err_path = logs / f"{stem}.stdout", logs / f"{stem}.stderr"
    before = disk_usage(watch)
    peak_disk = before
    reaped = threading.Event()
    result: dict = {}
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=c.REPO)

        def reap() -> None:
            _, status, usage = os.wait4(proc.pid, 0)
            result.update(end=time.perf_counter(), status=status, cpu=usage.ru_utime + usage.ru_stime)
            reaped.set()

        reaper = threading.Thread(target=reap, daemon=True)
        reaper.start()
        memory = TreeMemory(proc.pid)
        deadline = start + timeout
        while not reaped.wait(c.SAMPLE_SECONDS):
            memory.sample()
            peak_disk = max(peak_disk, disk_usage(watch))
            if time.perf_counter() > deadline:
                with contextlib.suppress(psutil.Error):
                    for p in psutil.Process(proc.pid).children(recursive=True):
                        with contextlib.suppress(psutil.Error):
                            p.kill()
                proc.kill()
        reaper.join()
    proc.returncode = os.waitstatus_to_exitcode(result["status"])
    after = disk_usage(watch)
    stdout = out_path.read_text(errors="replace")
    stderr_tail = "\n".join(err_path.read_text(errors="replace").splitlines()[-15:])
    m = c.Measurement(
        label,
        result["end"] - start,
        memory.peak_rss,
        memory.peak_hwm,
        result["cpu"],
        proc.returncode,
        stdout,
        stderr_tail,
    )
    if proc.returncode != 0:
        raise c.MeasuredProcessError(f"{label}: exit {proc.returncode}: {' '.join(cmd)}\n{stderr_tail}")
    return DiskMeasurement(m, before, max(peak_disk, after), after)


def fsync_tree(path: Path) -> float:
    """fsync every file and folder under ``path`` (what the native packer does for what it writes);
    returns the seconds it took."""
    start = time.perf_counter()
    for root, dirs, names in os.walk(path):
        for name in [*names, *dirs, "."]:
            with contextlib.suppress(OSError):
                fd = os.open(os.path.join(root, name), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
    return time.perf_counter() - start


def evict(folder: Path) -> None:
    """Flush, then drop ``folder``'s files from the page cache (only those files; others' caches stay)."""
    os.sync()
    for root, _, names in os.walk(folder):
        for name in names:
            with contextlib.suppress(OSError):
                fd = os.open(os.path.join(root, name), os.O_RDONLY)
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)
    time.sleep(0.5)


def manifest_of(home: Path, repository: str = "bench", tag: str = "v1") -> dict:
    """The manifest kit's storage in ``home`` holds for ``localhost/<repository>:<tag>``."""
    from kitmlflow_tui.core.packing.storage import KitStorage, repo_file_stem

    storage = KitStorage(home)
    tags = json.loads((storage.root / f"{repo_file_stem('localhost', repository)}-tags.json").read_text())
    digest = tags[tag]["digest"]
    manifest = json.loads(storage.blob_path(digest).read_bytes())
    manifest["_digest"] = digest
    return manifest


def layer_summary(manifest: dict) -> list[tuple[str, str, int]]:
    """(media type, short digest, size) of each layer, in manifest order."""
    return [
        (layer["mediaType"], layer["digest"].split(":", 1)[1][:12], int(layer["size"]))
        for layer in manifest.get("layers") or []
    ]


def kit_version(kit: str, home: Path) -> str:
    out = subprocess.run(
        [kit, "version", "--config", str(home)], capture_output=True, text=True, check=False, timeout=60
    ).stdout
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Version")), "?")


# ----------------------------------------------------------------------------------------------
# the data


def small_files() -> dict[str, int]:
    rng = random.Random(20240602)
    return {
        f"{folder}/file-{i:03d}{ext}": rng.randint(4_000, 200_000)
        for folder, ext in SMALL_FOLDERS.items()
        for i in range(SMALL_PER_FOLDER)
    }


def build_folder(folder: Path, scale: float = 1.0) -> tuple[dict[str, int], dict]:
    """Write the files and the kit-init Kitfile; returns (files, kitfile)."""
    from kitmlflow_tui.core.kitfile import classify_like_kit_init, dump_kitfile

    files = {**{rel: int(size * scale) for rel, size in LARGE.items()}, **small_files()}
    for rel, size in files.items():
        c.write_file(folder / rel, size)
    readme = b"# bench\n\nA folder packed by kitmlflow's native packer and by kit pack.\n"
    (folder / "README.md").write_bytes(readme)
    files["README.md"] = len(readme)
    kitfile = classify_like_kit_init(folder)
    (folder / "Kitfile").write_text(dump_kitfile(kitfile))
    return files, kitfile.to_dict()


# ----------------------------------------------------------------------------------------------


def main() -> int:  # noqa: C901
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--warm", action="store_true", help="leave the source files in the page cache between runs")
    p.add_argument(
        "--diagnose",
        action="store_true",
        help="also time the native packer with os.fsync and posix_fadvise stubbed out (a diagnostic row)",
    )
    p.add_argument("--scale", type=float, default=1.0, help="size factor of the two large files (for trial runs)")
    p.add_argument("--baseline", metavar="REF", help="also time the native packer of this git ref (e.g. main)")
    args = p.parse_args()
    runs = c.runs_of(args)
    report = c.Report("pack_vs_kit", args)
    kit = find_kit()
    if kit is None:
        print("skipped: kit not found (set KIT_BIN or put kit on the PATH); measuring the native packer alone")
        report.notes.append("skipped: kit not found")

    with c.workdir(args, "pack") as work:
        folder = work / "folder"
        files, kitfile = build_folder(folder, args.scale)
        total = sum(files.values())
        if kit:
            version = kit_version(kit, kit_home(work / "version-home"))
            print(f"kit {version} at {kit}")
            report.notes.append(f"kit {version}")
        print(
            f"folder: {len(files)} files, {c.fmt_mb(total)}; "
            f"{len(kitfile.get('model', {}).get('parts', [])) + 1} model layers + "
            f"{sum(len(kitfile.get(k, [])) for k in ('code', 'datasets', 'docs'))} other layers; "
            f"{runs} run(s) each; source cache {'warm' if args.warm else 'dropped before each run'}",
            flush=True,
        )
        logs = work / "logs"
        env = c.client_env()
        baseline = c.baseline_tree(args.baseline, work) if args.baseline else None
        cases = [
            "native",
            *(["kit"] if kit else []),
            *(["native-no-fsync"] if args.diagnose else []),
            *(["native-baseline"] if baseline else []),
        ]
        results: dict[str, list[DiskMeasurement]] = {name: [] for name in cases}
        manifests: dict[str, dict] = {}
        for r in range(runs):
            order = list(cases) if r % 2 == 0 else list(reversed(cases))
            for name in order:
                home = kit_home(work / f"home-{name}-{r}")
                tmp = work / f"tmp-{name}-{r}"
                tmp.mkdir()
                run_env = {**env, "TMPDIR": str(tmp), "KITOPS_HOME": str(home)}
                if name == "native-baseline" and baseline is not None:
                    run_env["PYTHONPATH"] = f"{baseline}:{env['PYTHONPATH']}"
                if name.startswith("native"):
                    mode = "no-fsync" if name == "native-no-fsync" else "default"
                    cmd = [c.PYTHON, "-c", NATIVE_DRIVER, str(folder), str(home), TAG, mode]
                else:
                    cmd = [kit, "pack", str(folder), "-t", TAG, "--config", str(home), "--progress", "none"]
                if args.warm:
                    c.settle()
                else:
                    evict(folder)
                dm = measure_disk(f"{name}-{r}", cmd, env=run_env, logs=logs, watch=[home, tmp])
                m = dm.m
                if name == "kit":
                    m.extra["fsync_s"] = fsync_tree(home)
                else:
                    doc = c.last_json(m.stdout)
                    m.extra["import_s"], m.extra["pack_s"] = doc["import_s"], doc["pack_s"]
                storage = disk_usage([home / "storage"])
                m.extra.update(
                    disk_peak=dm.disk_peak,
                    disk_after=dm.disk_after,
                    storage_bytes=storage,
                    extra_disk=dm.disk_peak - storage,
                )
                manifests[name] = manifest_of(home)
                results[name].append(dm)
                report.measurements.append(m.json())
                fsync_text = f" (+ fsync {m.extra['fsync_s']:.2f} s)" if name == "kit" else ""
                print(
                    f"  round {r + 1}/{runs} {name:<15} {c.fmt_s(m.wall):>9}{fsync_text:<18}  "
                    f"peak RSS {c.fmt_mb(m.rss_tree):>9} (VmHWM {c.fmt_mb(m.maxrss)})  "
                    f"disk peak {c.fmt_mb(dm.disk_peak):>10}, storage {c.fmt_mb(storage):>10}",
                    flush=True,
                )
                c.remove(home)
                c.remove(tmp)

        def walls(name: str, plus_fsync: bool = False) -> list[float]:
            return [d.m.wall + (d.m.extra.get("fsync_s", 0.0) if plus_fsync else 0.0) for d in results[name]]

        rows = []
        variants = [("native", "native (fsyncs every blob)", False)]
        if kit:
            variants += [("kit", "kit pack (raw, no fsync)", False), ("kit", "kit pack + sync", True)]
        if args.diagnose:
            variants.append(("native-no-fsync", "native, fsync+fadvise stubbed (diagnostic)", False))
        if baseline:
            variants.append(("native-baseline", f"native @{args.baseline}", False))
        for name, title, plus in variants:
            values = walls(name, plus)
            ds = results[name]
            row = {
                "packer": title,
                "best_s": round(c.best(values), 3),
                "median_s": round(c.median(values), 3),
                "peak_rss_tree_bytes": max(d.m.rss_tree for d in ds),
                "vmhwm_bytes": max(d.m.maxrss for d in ds),
                "cpu_s": round(c.median([d.m.cpu for d in ds]), 2),
                "disk_peak_bytes": max(d.m.extra["disk_peak"] for d in ds),
                "storage_bytes": ds[-1].m.extra["storage_bytes"],
                "extra_disk_bytes": max(d.m.extra["extra_disk"] for d in ds),
            }
            if name == "native" and kit:
                row["native_vs_kit_raw_median"] = round(c.median(values) / c.median(walls("kit")), 3)
                row["native_vs_kit_sync_median"] = round(c.median(values) / c.median(walls("kit", True)), 3)
            rows.append(row)
        report.rows = rows
        print()
        print(
            c.table(
                ["packer", "best", "median", "native / this", "peak RSS", "VmHWM", "CPU", "disk peak", "extra disk"],
                [
                    [
                        r["packer"],
                        c.fmt_s(r["best_s"]),
                        c.fmt_s(r["median_s"]),
                        c.fmt_ratio(rows[0]["median_s"] / r["median_s"]),
                        c.fmt_mb(r["peak_rss_tree_bytes"]),
                        c.fmt_mb(r["vmhwm_bytes"]),
                        f"{r['cpu_s']:.1f} s",
                        c.fmt_mb(r["disk_peak_bytes"]),
                        c.fmt_mb(r["extra_disk_bytes"]),
                    ]
                    for r in rows
                ],
            )
        )
        native_docs = [d.m.extra for d in results["native"]]
        print(
            "times: wall, from the start of the process to its exit (native includes Python start-up and its "
            f"imports, median {c.median([x['import_s'] for x in native_docs]):.2f} s; the pack call alone, median "
            f"{c.median([x['pack_s'] for x in native_docs]):.2f} s). 'kit pack + sync' adds the fsync of every file "
            "kit left in its home, timed right after it exits. native / this: median ratio (below 1: native is "
            "faster). peak RSS: psutil, process tree summed, sampled every 50 ms; VmHWM: the kernel's peak RSS of each process, summed. "
            "CPU: user+sys from wait4, median. disk peak: allocated bytes in HOME + TMPDIR, sampled every 50 ms; "
            "extra disk = peak - final size of HOME/storage (temporary overhead)."
        )
        if kit:
            same = layer_summary(manifests["native"]) == layer_summary(manifests["kit"])
            same_config = manifests["native"]["config"] == manifests["kit"]["config"]
            print(
                f"\nlayers: {'identical digests in both' if same else 'DIFFERENT between the packers'}; "
                f"config blob: {'identical' if same_config else 'DIFFERENT'} (the manifests also carry each "
                "packer's cli-version annotation):"
            )
            for name in ("native", "kit"):
                print(f"  {name}: manifest {manifests[name]['_digest'][:19]}")
                for media, digest, size in layer_summary(manifests[name]):
                    print(f"    {media:<48} {digest}  {c.fmt_mb(size):>10}")
            report.notes.append(f"layer digests identical: {same}; config identical: {same_config}")
        print()

        native_median = c.median(walls("native"))
        if kit:
            kit_raw = c.median(walls("kit"))
            kit_sync = c.median(walls("kit", True))
            report.target(
                "native pack no slower than kit pack (raw times)",
                native_median <= kit_raw,
                f"median {c.fmt_s(native_median)} vs {c.fmt_s(kit_raw)} ({c.fmt_ratio(native_median / kit_raw)})",
            )
            report.target(
                "native pack no slower than kit pack + sync (same durability)",
                native_median <= kit_sync,
                f"median {c.fmt_s(native_median)} vs {c.fmt_s(kit_sync)} ({c.fmt_ratio(native_median / kit_sync)})",
            )
        else:
            print("skipped: native pack no slower than kit pack (kit not found)")
        native_rss = max(max(d.m.rss_tree, d.m.maxrss) for d in results["native"])
        report.target(
            "native pack peak RSS < 300 MB",
            native_rss < RSS_TARGET,
            f"peak {c.fmt_mb(native_rss)} (psutil tree, 50 ms), VmHWM "
            f"{c.fmt_mb(max(d.m.maxrss for d in results['native']))}",
        )
        report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
