"""kitmlflow's push vs ``kit push`` of the same ModelKit, and ``import --push`` vs the manual pipeline.

Part 1, the push alone. One ModelKit, packed once by kitmlflow's native packer into a kit home (with kit's
version as its cli-version annotation when kit is there, so it is byte for byte what ``kit pack`` writes):
``weights/model.safetensors`` (2 GB of incompressible bytes, one model layer) and a README (docs layer).
Each measurement pushes it, in a fresh subprocess, into a fresh, empty ``docker-registry`` (CNCF
distribution 2.8, plain HTTP, filesystem storage, on 127.0.0.1), so every blob is sent:

- kitmlflow: ``python -c`` that imports ``kitmlflow_tui.core.registry`` and calls ``push_modelkit(SRC, DEST)``
  (there is no ``kitmlflow push`` command: ``import --push`` calls this after packing);
- kit: ``kit push SRC DEST --plain-http --config HOME --progress none``.

The blob files are dropped from the page cache before each push (``--warm`` keeps them), the order of the
two tools alternates from one round to the next, and the registry's manifest digest is checked to be the
local one after every push.

Part 2, a whole import into a registry, on a real proxied ``mlflow server`` with one run (a README and a
1 GB ``weights/model.safetensors`` written straight into its artifact folder; ``--import-size``):

- ``kitmlflow import mlflow://127.0.0.1:PORT/runs/RUN -t HOST/bench/import:v1 --yes --packer native --push``;
- the manual pipeline, stage by stage: ``mlflow artifacts download -r RUN -d DIR``, ``kit init DIR``,
  ``kit pack DIR -t HOST/bench/import:v1``, ``kit push HOST/bench/import:v1 --plain-http``.

Memory: psutil's summed RSS of the process tree, sampled every 50 ms, and the kernel's VmHWM of each
process (see ``_common``). Targets: kitmlflow's push no slower than ``kit push`` (median); its peak RSS
under 300 MB for the 2 GB layer.

Run: ``.venv/bin/python bench/push_vs_kit.py [--quick] [--runs N] [--workdir DIR] [--warm] [--size BYTES]``
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import _common as c
import pack_vs_kit as pk

from kitmlflow_tui.core.modelkit_reference import parse_modelkit_reference
from tests.support.registry_servers import registry_available, registry_server

PUSH_SIZE = 2_000 * c.MB
IMPORT_SIZE = 1_000 * c.MB
RSS_TARGET = 300 * c.MB
SOURCE = "bench/push:v1"  # the local ModelKit (kit's localhost/bench/push)
README = b"# bench-push\n\nA ModelKit pushed by kitmlflow and by kit push.\n"
KITFILE = {
    "manifestVersion": "1.0.0",
    "package": {"name": "bench-push", "version": "v1"},
    "model": {"name": "bench-push", "path": "weights/model.safetensors"},
    "docs": [{"path": "README.md"}],
}
MANUAL_STAGES = ("download", "kit init", "kit pack", "kit push")

PUSH_DRIVER = """
import json, sys, time
start = time.perf_counter()
from pathlib import Path
from kitmlflow_tui.core.modelkit_reference import parse_modelkit_reference, parse_push_reference
from kitmlflow_tui.core.registry import RegistryOptions, push_modelkit
imported = time.perf_counter()
home, source, destination = sys.argv[1:4]
result = push_modelkit(parse_modelkit_reference(source), parse_push_reference(destination), RegistryOptions(plain_http=True), storage_root=Path(home))
done = time.perf_counter()
print(json.dumps({"import_s": imported - start, "push_s": done - imported, "digest": result.digest,
                  "uploaded_bytes": result.uploaded_bytes}))
"""


def registry_digest(host: str, repository: str, tag: str) -> str:
    from kitmlflow_tui.core.registry import RegistryClient, RegistryOptions

    with RegistryClient(host, RegistryOptions(plain_http=True)) as client:
        client.ping()
        manifest = client.get_manifest(repository, tag)
    return manifest.digest if manifest else "(none)"


def summary_row(title: str, values: list[c.Measurement]) -> dict:
    walls = [m.wall for m in values]
    return {
        "case": title,
        "best_s": round(c.best(walls), 3),
        "median_s": round(c.median(walls), 3),
        "peak_rss_tree_bytes": max(m.rss_tree for m in values),
        "vmhwm_bytes": max(m.maxrss for m in values),
        "cpu_s": round(c.median([m.cpu for m in values]), 2),
    }


def part_push(args, work: Path, kit: str | None, report: c.Report) -> None:
    from kitmlflow_tui.core.packing.native import pack_native

    folder = work / "push-folder"
    c.write_file(folder / "weights" / "model.safetensors", args.size)
    (folder / "README.md").write_bytes(README)
    home = pk.kit_home(work / "push-home")
    version = pk.kit_version(kit, pk.kit_home(work / "version-home")) if kit else None
    packed = pack_native(
        folder,
        KITFILE,
        parse_modelkit_reference(SOURCE),
        storage_root=home,
        **({"cli_version": version} if version else {}),
    )
    c.remove(folder)
    print(
        f"\npart 1: {SOURCE} {packed.digest[:19]}, {c.fmt_mb(packed.size)} in {packed.layer_count} layers", flush=True
    )
    cases = ["kitmlflow", *(["kit"] if kit else [])]
    results: dict[str, list[c.Measurement]] = {name: [] for name in cases}
    env = c.client_env({"KITOPS_HOME": str(home), "DOCKER_CONFIG": str(work / "docker")})
    for r in range(c.runs_of(args)):
        for name in cases if r % 2 == 0 else list(reversed(cases)):
            with registry_server(work / f"registry-{name}-{r}") as registry:
                destination = f"{registry.host}/bench/push:v1"
                if args.warm:
                    c.settle()
                else:
                    pk.evict(home / "storage" / "blobs")
                if name == "kitmlflow":
                    cmd = [c.PYTHON, "-c", PUSH_DRIVER, str(home), SOURCE, destination]
                else:
                    cmd = [
                        kit,
                        "push",
                        SOURCE,
                        destination,
                        "--plain-http",
                        "--config",
                        str(home),
                        "--progress",
                        "none",
                    ]
                m = c.measure(f"push-{name}-{r}", cmd, env=env, logs=work / "logs")
                digest = registry_digest(registry.host, "bench/push", "v1")
                if digest != packed.digest:
                    raise RuntimeError(f"{name}: the registry holds {digest}, not {packed.digest}")
                if name == "kitmlflow":
                    doc = c.last_json(m.stdout)
                    m.extra.update(import_s=doc["import_s"], push_s=doc["push_s"])
                results[name].append(m)
                report.measurements.append(m.json())
                print(
                    f"  round {r + 1} {name:<10} {c.fmt_s(m.wall):>9}  peak RSS {c.fmt_mb(m.rss_tree):>9} "
                    f"(VmHWM {c.fmt_mb(m.maxrss)})  CPU {m.cpu:.1f} s",
                    flush=True,
                )
            c.remove(work / f"registry-{name}-{r}")
    rows = [summary_row("kitmlflow push_modelkit", results["kitmlflow"])]
    if kit:
        rows.append(summary_row(f"kit push ({version})", results["kit"]))
    report.rows.extend(rows)
    print()
    print(
        c.table(
            ["push of the 2 GB ModelKit", "best", "median", "peak RSS", "VmHWM", "CPU"],
            [
                [
                    r["case"],
                    c.fmt_s(r["best_s"]),
                    c.fmt_s(r["median_s"]),
                    c.fmt_mb(r["peak_rss_tree_bytes"]),
                    c.fmt_mb(r["vmhwm_bytes"]),
                    f"{r['cpu_s']:.1f} s",
                ]
                for r in rows
            ],
        )
    )
    ours = rows[0]
    print(
        f"kitmlflow: Python start-up and imports median {c.median([m.extra['import_s'] for m in results['kitmlflow']]):.2f} s "
        "of its wall time. Both pushes send every blob into an empty registry; its manifest digest is the local one."
    )
    if kit:
        report.target(
            "kitmlflow push no slower than kit push",
            ours["median_s"] <= rows[1]["median_s"],
            f"median {c.fmt_s(ours['median_s'])} vs {c.fmt_s(rows[1]['median_s'])} "
            f"({c.fmt_ratio(ours['median_s'] / rows[1]['median_s'])})",
        )
    peak = max(ours["peak_rss_tree_bytes"], ours["vmhwm_bytes"])
    report.target(
        f"kitmlflow push peak RSS < 300 MB for a {c.fmt_mb(args.size)} layer",
        peak < RSS_TARGET,
        f"peak {c.fmt_mb(ours['peak_rss_tree_bytes'])} (psutil tree, 50 ms), VmHWM {c.fmt_mb(ours['vmhwm_bytes'])}",
    )
    c.remove(home)


def part_import(args, work: Path, kit: str, report: c.Report) -> None:
    with c.server(work) as srv:
        _, run_id, art = c.seeded_run(srv, "bench-push")
        c.write_file(art / "weights" / "model.safetensors", args.import_size)
        (art / "README.md").write_bytes(README)
        uri = f"mlflow://127.0.0.1:{srv.port}/runs/{run_id}"
        print(f"\npart 2: run {run_id}, {c.fmt_mb(args.import_size)} model file", flush=True)
        base = c.client_env({"MLFLOW_TRACKING_URI": srv.url, "DOCKER_CONFIG": str(work / "docker")})
        results: dict[str, list[float]] = {"kitmlflow": [], "manual": []}
        memory: dict[str, list[c.Measurement]] = {"kitmlflow": [], "manual": []}
        for r in range(c.runs_of(args)):
            for name in ("kitmlflow", "manual") if r % 2 == 0 else ("manual", "kitmlflow"):
                home, data = pk.kit_home(work / f"import-home-{name}"), work / f"import-data-{name}"
                env = {**base, "KITOPS_HOME": str(home), "KITMLFLOW_CACHE_DIR": str(data)}
                with registry_server(work / f"import-registry-{name}-{r}") as registry:
                    reference = f"{registry.host}/bench/import:v1"
                    if args.warm:
                        c.settle()
                    else:
                        pk.evict(art)
                    if name == "kitmlflow":
                        commands = [
                            [
                                *c.KITMLFLOW_CLI,
                                "import",
                                uri,
                                "-t",
                                reference,
                                "--yes",
                                "--packer",
                                "native",
                                "--push",
                                "--json",
                            ]
                        ]
                    else:
                        kit_args = ["--config", str(home)]
                        commands = [
                            [*c.MLFLOW_CLI, "artifacts", "download", "-r", run_id, "-d", str(data)],
                            [kit, "init", str(data), "--name", "bench-import", "--force", *kit_args],
                            [kit, "pack", str(data), "-t", reference, *kit_args, "--progress", "none"],
                            [kit, "push", reference, "--plain-http", *kit_args, "--progress", "none"],
                        ]
                    stages = [
                        c.measure(f"import-{name}-{i}-{r}", cmd, env=env, logs=work / "logs")
                        for i, cmd in enumerate(commands)
                    ]
                    if registry_digest(registry.host, "bench/import", "v1") == "(none)":
                        raise RuntimeError(f"{name}: nothing in the registry")
                results[name].append(sum(m.wall for m in stages))
                memory[name].extend(stages)
                report.measurements.extend(m.json() for m in stages)
                detail = " = " + " + ".join(f"{m.wall:.1f}" for m in stages) if len(stages) > 1 else ""
                print(
                    f"  round {r + 1} {name:<10} {c.fmt_s(results[name][-1]):>9}{detail:<30} "
                    f"peak RSS {c.fmt_mb(max(m.rss_tree for m in stages)):>9}",
                    flush=True,
                )
                for path in (home, data, work / f"import-registry-{name}-{r}"):
                    c.remove(path)
    rows = []
    for name, title in (("kitmlflow", "kitmlflow import --push"), ("manual", "download + kit init/pack/push")):
        rows.append(
            {
                "case": title,
                "best_s": round(c.best(results[name]), 3),
                "median_s": round(c.median(results[name]), 3),
                "peak_rss_tree_bytes": max(m.rss_tree for m in memory[name]),
            }
        )
    report.rows.extend(rows)
    print()
    print(
        c.table(
            ["import into a registry", "best", "median", "/ manual", "peak RSS"],
            [
                [
                    r["case"],
                    c.fmt_s(r["best_s"]),
                    c.fmt_s(r["median_s"]),
                    c.fmt_ratio(r["median_s"] / rows[1]["median_s"]),
                    c.fmt_mb(r["peak_rss_tree_bytes"]),
                ]
                for r in rows
            ],
        )
    )
    print("times: wall of each process, start-up included; the manual total is the sum of its four stages.")


def main() -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--warm", action="store_true", help="leave the blob files in the page cache between pushes")
    p.add_argument("--size", type=int, default=PUSH_SIZE, help="bytes of the model layer of part 1")
    p.add_argument("--import-size", type=int, default=IMPORT_SIZE, help="bytes of the model file of part 2")
    p.add_argument("--skip-import", action="store_true", help="only part 1")
    args = p.parse_args()
    report = c.Report("push_vs_kit", args)
    if registry_available():
        print(f"skipped: {registry_available()}")
        report.notes.append("skipped: no registry")
        report.finish()
        return 0
    kit = pk.find_kit()
    if kit is None:
        print("kit not found (set KIT_BIN): measuring kitmlflow's push alone, no part 2")
        report.notes.append("kit not found")
    os.environ.setdefault("DOCKER_CONFIG", "/nonexistent")
    with c.workdir(args, "push") as work:
        part_push(args, work, kit, report)
        if kit and not args.skip_import:
            part_import(args, work, kit, report)
    report.notes.append(json.dumps({"size": args.size, "import_size": args.import_size}))
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
