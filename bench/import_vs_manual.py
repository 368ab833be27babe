"""``kitmlflow import`` vs the manual pipeline (mlflow download + kit init + kit pack) on one ≈1 GB run.

The run, on a real proxied ``mlflow server`` on 127.0.0.1: seeded through MLflow with a README and an
MLflow 3 logged pyfunc model named ``model`` (``seed_run(logged_model=True)``), then the big files are
written straight into the server's artifact folder (``<root>/art/<exp>/<run>/artifacts``): the same
tree as ``pack_vs_kit.py`` (``weights/model.safetensors`` 600 MiB, ``checkpoints/optimizer.pt`` 300 MiB,
300 small files in ``data/``, ``src/``, ``docs/``).

Measured, each command a fresh subprocess, into a fresh kit home (with ``disable-update-notifications``),
alternating the order of the cases from one round to the next:

- kitmlflow, native packer: ``kitmlflow import mlflow://127.0.0.1:PORT/runs/RUN -t bench:v1 --yes
  --packer native --json`` with ``KITOPS_HOME=<home>``, ``KITMLFLOW_CACHE_DIR=<cache>``;
- kitmlflow, kit packer: the same with ``--packer kit`` (kit's folder first on the PATH, and ``KIT_BIN``);
- the manual pipeline a user runs today, stage by stage:
  1. ``mlflow artifacts download -r RUN -d DIR`` (``MLFLOW_TRACKING_URI`` set). In MLflow 3 this does NOT
     fetch the run's logged models (they live under ``models/<model id>``, outside the run's artifacts),
     so the user also needs
  2. ``mlflow artifacts download -u models:/<model id> -d DIR/model`` (the id is given to the manual
     pipeline for free here; a user has to look it up first),
  3. ``kit init DIR --name bench --force --config HOME``,
  4. ``kit pack DIR -t bench:v1 --config HOME --progress none``.

Before each case dirty pages are flushed and the server's artifact files are dropped from the page
cache (``posix_fadvise(DONTNEED)``, those files only), so every case reads the server's disk cold.

Durability: kitmlflow's native packer fsyncs every blob before it tags; neither ``kit pack`` nor
``mlflow artifacts download`` fsyncs anything. The "+ sync" rows add the time of fsyncing, right after
the last stage, every file and folder in the kit home (same measure as in ``pack_vs_kit.py``).

Memory and disk as in ``pack_vs_kit.py`` (psutil tree RSS and summed VmHWM polled every 50 ms; the
allocated size of the kit home, the download folder or kitmlflow's cache, and ``TMPDIR``, polled every
50 ms; extra disk = peak - final size of ``HOME/storage``, i.e. everything beyond the ModelKit itself:
kitmlflow's download cache while it packs, the manual pipeline's download folder, which stays).
Finally the layers of the three ModelKits are shown from the manifests and configs in their kit homes.

Run: ``.venv/bin/python bench/import_vs_manual.py [--quick] [--runs N] [--workdir DIR] [--warm]``
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import _common as c
import pack_vs_kit as pk

TAG = "bench:v1"
RATIO_TARGET = 0.8
README = b"# bench-import\n\nA run imported by kitmlflow and by the manual pipeline.\n"
MANUAL_STAGES = ("download run", "download model", "kit init", "kit pack")


def seed(srv: c.MlflowServer, scale: float) -> tuple[str, str, dict[str, int], Path]:
    """The run (with its logged model) and its big files; returns (run id, model id, files, art folder)."""
    from mlflow import MlflowClient

    exp_id, run_id = c.seed_run(srv.url, experiment_name="bench-import", files={"README.md": README}, logged_model=True)
    models = [
        m for m in MlflowClient(srv.url).search_logged_models(experiment_ids=[exp_id]) if m.source_run_id == run_id
    ]
    if len(models) != 1:
        raise RuntimeError(f"expected one logged model of run {run_id}, found {len(models)}")
    folder = srv.root / "art" / exp_id / run_id / "artifacts"
    files = {**{rel: int(size * scale) for rel, size in pk.LARGE.items()}, **pk.small_files()}
    for rel, size in files.items():
        c.write_file(folder / rel, size)
    files["README.md"] = len(README)
    model_folder = srv.root / "art" / exp_id / "models" / models[0].model_id / "artifacts"
    for path in sorted(model_folder.rglob("*")):
        if path.is_file():
            files[f"model/{path.relative_to(model_folder).as_posix()}"] = path.stat().st_size
    return run_id, models[0].model_id, files, srv.root / "art"


def layers_with_paths(home: Path) -> list[tuple[str, str, int]]:
    """(media type, Kitfile section and path, size) of each layer of ``bench:v1`` in ``home``."""
    from kitmlflow_tui.core.packing.storage import KitStorage

    manifest = pk.manifest_of(home)
    config = json.loads(KitStorage(home).blob_path(manifest["config"]["digest"]).read_bytes())
    where: dict[str, str] = {}
    model = config.get("model") or {}
    if model.get("digest"):
        where[model["digest"]] = f"model: {model.get('path', '')}"
    for part in model.get("parts") or []:
        where[part.get("digest", "")] = f"model.parts: {part.get('path', '')}"
    for key in ("code", "datasets", "docs", "prompts"):
        for entry in config.get(key) or []:
            where[entry.get("digest", "")] = f"{key}: {entry.get('path', '')}"
    return [
        (
            layer["mediaType"].removeprefix("application/vnd.kitops.modelkit."),
            where.get(layer["digest"], "?"),
            layer["size"],
        )
        for layer in manifest.get("layers") or []
    ]


def main() -> int:  # noqa: C901
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--warm", action="store_true", help="leave the server's files in the page cache between cases")
    p.add_argument("--scale", type=float, default=1.0, help="size factor of the two large files (for trial runs)")
    args = p.parse_args()
    runs = c.runs_of(args)
    report = c.Report("import_vs_manual", args)
    kit = pk.find_kit()
    if kit is None:
        print("skipped: kit not found (set KIT_BIN or put kit on the PATH); the manual pipeline needs it")
        report.notes.append("skipped: kit not found")
        report.finish()
        return 0

    with c.workdir(args, "import") as work, c.server(work) as srv:
        version = pk.kit_version(kit, pk.kit_home(work / "version-home"))
        run_id, model_id, files, art = seed(srv, args.scale)
        total = sum(files.values())
        uri = f"mlflow://127.0.0.1:{srv.port}/runs/{run_id}"
        print(
            f"kit {version} at {kit}\nrun {run_id} (logged model {model_id}): {len(files)} files, "
            f"{c.fmt_mb(total)}; {runs} run(s) each; server files "
            f"{'warm' if args.warm else 'dropped from the page cache before each case'}",
            flush=True,
        )
        logs = work / "logs"
        kit_dir = str(Path(kit).parent)
        base_env = c.client_env({"MLFLOW_TRACKING_URI": srv.url})
        cases = ["kitmlflow-native", "kitmlflow-kit", "manual"]
        results: dict[str, list[dict]] = {name: [] for name in cases}
        last_home: dict[str, Path] = {}
        for r in range(runs):
            order = cases if r % 2 == 0 else list(reversed(cases))
            for name in order:
                for old in last_home.pop(name, None), work / f"dl-{name}":
                    if old is not None:
                        c.remove(old)
                home = pk.kit_home(work / f"home-{name}-{r}")
                tmp = work / f"tmp-{name}-{r}"
                tmp.mkdir()
                data = work / f"dl-{name}"  # kitmlflow's cache, or the manual download folder
                env = {
                    **base_env,
                    "TMPDIR": str(tmp),
                    "KITOPS_HOME": str(home),
                    "KITMLFLOW_CACHE_DIR": str(data),
                    "KIT_BIN": kit,
                    "PATH": os.pathsep.join([kit_dir, base_env.get("PATH", "")]),
                }
                watch = [home, data, tmp]
                if args.warm:
                    c.settle()
                else:
                    pk.evict(art)
                stages: list[pk.DiskMeasurement] = []
                if name.startswith("kitmlflow"):
                    packer = name.split("-", 1)[1]
                    cmd = [*c.KITMLFLOW_CLI, "import", uri, "-t", TAG, "--yes", "--packer", packer, "--json"]
                    stages.append(pk.measure_disk(f"{name}-{r}", cmd, env=env, logs=logs, watch=watch))
                    doc = c.last_json(stages[0].m.stdout)
                    if doc.get("packer") != packer:
                        raise RuntimeError(f"{name}: packed by {doc.get('packer')!r}")
                else:
                    commands = [
                        [*c.MLFLOW_CLI, "artifacts", "download", "-r", run_id, "-d", str(data)],
                        [
                            *c.MLFLOW_CLI,
                            "artifacts",
                            "download",
                            "-u",
                            f"models:/{model_id}",
                            "-d",
                            str(data / "model"),
                        ],
                        [kit, "init", str(data), "--name", "bench", "--force", "--config", str(home)],
                        [kit, "pack", str(data), "-t", TAG, "--config", str(home), "--progress", "none"],
                    ]
                    for stage, cmd in zip(MANUAL_STAGES, commands, strict=True):
                        label = f"{name}-{stage.replace(' ', '-')}-{r}"
                        stages.append(pk.measure_disk(label, cmd, env=env, logs=logs, watch=watch))
                fsync_s = pk.fsync_tree(home)
                storage = pk.disk_usage([home / "storage"])
                row = {
                    "wall": sum(s.m.wall for s in stages),
                    "stages": [s.m.wall for s in stages],
                    "fsync_s": fsync_s,
                    "rss": max(s.m.rss_tree for s in stages),
                    "hwm": max(s.m.maxrss for s in stages),
                    "cpu": sum(s.m.cpu for s in stages),
                    "disk_peak": max(s.disk_peak for s in stages),
                    "storage": storage,
                    "extra_disk": max(s.disk_peak for s in stages) - storage,
                    "digest": pk.manifest_of(home)["_digest"],
                }
                results[name].append(row)
                for s in stages:
                    report.measurements.append({**s.m.json(), "disk_peak": s.disk_peak})
                detail = (
                    " = " + " + ".join(f"{w:.1f}" for w in row["stages"]) if len(stages) > 1 else ""
                ) + f"  (+ fsync {fsync_s:.2f} s)"
                print(
                    f"  round {r + 1}/{runs} {name:<17} {c.fmt_s(row['wall']):>9}{detail:<36} "
                    f"peak RSS {c.fmt_mb(row['rss']):>9}  disk peak {c.fmt_mb(row['disk_peak']):>10}, "
                    f"storage {c.fmt_mb(storage):>10}",
                    flush=True,
                )
                last_home[name] = home
                c.remove(tmp)
                if name.startswith("kitmlflow"):
                    c.remove(data)  # normally already gone: kitmlflow removes its download after packing

        layers = {name: layers_with_paths(last_home[name]) for name in cases}
        for name in cases:
            c.remove(last_home[name])
            c.remove(work / f"dl-{name}")

    def med(name: str, key: str = "wall", plus_fsync: bool = False) -> float:
        return c.median([x[key] + (x["fsync_s"] if plus_fsync else 0.0) for x in results[name]])

    def best(name: str, plus_fsync: bool = False) -> float:
        return c.best([x["wall"] + (x["fsync_s"] if plus_fsync else 0.0) for x in results[name]])

    manual, manual_sync = med("manual"), med("manual", plus_fsync=True)
    rows = []
    for i, stage in enumerate(MANUAL_STAGES):
        values = [x["stages"][i] for x in results["manual"]]
        rows.append({"case": f"manual: {stage}", "best_s": c.best(values), "median_s": c.median(values)})
    # The manual pipeline without step 2: what `mlflow artifacts download -r` + kit init + kit pack cost, for
    # a ModelKit that lacks the logged model (what a user who does not know about MLflow 3 models gets).
    without_model = [x["wall"] - x["stages"][1] for x in results["manual"]]
    rows.append(
        {
            "case": "manual without step 2 (no model!)",
            "best_s": c.best(without_model),
            "median_s": c.median(without_model),
        }
    )
    for name, title, plus in [
        ("manual", "manual pipeline, total", False),
        ("manual", "manual pipeline + sync", True),
        ("kitmlflow-native", "kitmlflow import --packer native", False),
        ("kitmlflow-kit", "kitmlflow import --packer kit", False),
        ("kitmlflow-kit", "kitmlflow import --packer kit + sync", True),
    ]:
        xs = results[name]
        rows.append(
            {
                "case": title,
                "best_s": best(name, plus),
                "median_s": med(name, plus_fsync=plus),
                "vs_manual": med(name, plus_fsync=plus) / manual,
                "vs_manual_sync": med(name, plus_fsync=plus) / manual_sync,
                "peak_rss_tree_bytes": max(x["rss"] for x in xs),
                "vmhwm_bytes": max(x["hwm"] for x in xs),
                "cpu_s": c.median([x["cpu"] for x in xs]),
                "disk_peak_bytes": max(x["disk_peak"] for x in xs),
                "extra_disk_bytes": max(x["extra_disk"] for x in xs),
                "storage_bytes": xs[-1]["storage"],
            }
        )
    report.rows = rows
    print()
    print(
        c.table(
            [
                "case",
                "best",
                "median",
                "/ manual",
                "/ manual+sync",
                "peak RSS",
                "VmHWM",
                "CPU",
                "disk peak",
                "extra disk",
            ],
            [
                [
                    row["case"],
                    c.fmt_s(row["best_s"]),
                    c.fmt_s(row["median_s"]),
                    *(
                        [
                            c.fmt_ratio(row["vs_manual"]),
                            c.fmt_ratio(row["vs_manual_sync"]),
                            c.fmt_mb(row["peak_rss_tree_bytes"]),
                            c.fmt_mb(row["vmhwm_bytes"]),
                            f"{row['cpu_s']:.1f} s",
                            c.fmt_mb(row["disk_peak_bytes"]),
                            c.fmt_mb(row["extra_disk_bytes"]),
                        ]
                        if "vs_manual" in row
                        else [""] * 7
                    ),
                ]
                for row in rows
            ],
        )
    )
    print(
        "times: wall of each process from start to exit, Python start-up and mlflow imports included; the manual "
        "total is the sum of its four stages. '+ sync': plus the fsync of every file in the kit home after the "
        "last stage (the native packer does that work inside its own time). / manual: median ratio (below 1: "
        "faster). peak RSS: psutil, process tree summed, sampled every 50 ms (for the manual pipeline: its largest "
        "stage); VmHWM: the kernel's peak RSS per process, summed over the tree. CPU: user+sys from wait4 "
        "(kitmlflow --packer kit includes its kit child). disk peak: allocated bytes of HOME + the download "
        "folder or cache + TMPDIR; extra disk = peak - final HOME/storage."
    )
    print("\nlayers of the ModelKits (from the manifest and the config blob in each kit home):")
    for name in cases:
        print(f"  {name}:")
        for media, where, size in layers[name]:
            print(f"    {media:<22} {c.fmt_mb(size):>10}  {where}")
    print()
    print(
        "for reference, not a target: kitmlflow --packer native vs the manual pipeline without step 2: "
        f"{c.fmt_ratio(med('kitmlflow-native') / c.median(without_model))} (median)\n"
    )
    report.notes.append(f"kit {version}")
    report.notes.append("layers: " + json.dumps({name: layers[name] for name in cases}))
    for name, title in [("kitmlflow-native", "--packer native"), ("kitmlflow-kit", "--packer kit")]:
        value = med(name)
        report.target(
            f"kitmlflow import {title} <= {RATIO_TARGET}x the manual pipeline",
            value <= RATIO_TARGET * manual,
            f"median {c.fmt_s(value)} vs {c.fmt_s(manual)} ({c.fmt_ratio(value / manual)}); "
            f"vs manual + sync {c.fmt_s(manual_sync)} ({c.fmt_ratio(value / manual_sync)})",
        )
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
