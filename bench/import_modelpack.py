"""A ModelPack direct import against a ModelKit direct import of the same run.

The run, on a real proxied ``mlflow server`` on 127.0.0.1 (local artifact store): an MLflow model folder
``model/`` holding ``model.safetensors`` (``--size``, default 2 GiB of incompressible bytes behind a valid
safetensors header), ``config.json``, ``tokenizer.json`` and ``MLmodel``, plus 100 small files in ``data/`` and
``src/`` and a README; written straight into the server's artifact folder (as ``import_direct.py`` does).

Cases, each a fresh subprocess into a fresh kit home, the server's files dropped from the page cache before
each, the order alternating between rounds:

- ``modelkit``: ``kitmlflow import URI -t bench:v1 --yes --json --packer native`` (one tar layer per Kitfile
  entry; the safetensors file inside the model folder's tar);
- ``modelpack``: the same with ``--format modelpack`` (the safetensors file its own raw layer, the rest of the
  model folder a tar, the small files' folders tars).

Both go direct (no download folder): the same transfer engine writes each file's bytes at its offset in its
layer blob. Reported: wall time, peak RSS of the process tree, peak disk of the kit home, cache and ``TMPDIR``
(polled every 50 ms) and the artifact's size in kit's storage. Target: ModelPack / ModelKit ≤ 1.10x (median
wall) and the same peak disk ratio to the artifact (≤ 1.05x).

Run: ``.venv/bin/python bench/import_modelpack.py [--quick] [--runs N] [--size BYTES] [--workdir DIR]``
"""

from __future__ import annotations

import json
import struct
import sys

import _common as c
import pack_vs_kit as pk

TAG = "bench:v1"
TIME_TARGET = 1.10
DISK_TARGET = 1.05
CASES = ("modelkit", "modelpack")
MLMODEL = "artifact_path: model\nflavors:\n  transformers:\n    transformers_version: 4.44.0\n"


def safetensors_head(size: int) -> bytes:
    """The first bytes of a ``size``-byte safetensors file holding one tensor of bytes: length, then the header."""
    header = b""
    for _ in range(3):  # the header's length changes the data's, which the header names
        data = size - 8 - len(header)
        header = json.dumps({"w": {"dtype": "U8", "shape": [data], "data_offsets": [0, data]}}).encode()
    return struct.pack("<Q", len(header)) + header


def main() -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=2048 * c.MiB, help="bytes of model.safetensors (default 2 GiB)")
    args = p.parse_args()
    runs = c.runs_of(args)
    report = c.Report("import_modelpack", args)
    with c.workdir(args, "modelpack") as work, c.server(work) as srv:
        _, run_id, folder = c.seeded_run(srv, "bench-modelpack")
        c.write_file(folder / "model" / "model.safetensors", args.size, safetensors_head(args.size))
        (folder / "model" / "MLmodel").write_text(MLMODEL)
        (folder / "model" / "config.json").write_text(json.dumps({"model_type": "llama", "torch_dtype": "float16"}))
        c.write_file(folder / "model" / "tokenizer.json", 2_000_000)
        for i in range(50):
            c.write_file(folder / "data" / f"part-{i:04d}.csv", 10_000 + i)
            c.write_file(folder / "src" / f"module_{i:04d}.py", 2_000 + i)
        files, total = c.tree_bytes(folder)
        uri = f"mlflow://127.0.0.1:{srv.port}/runs/{run_id}"
        print(f"run {run_id}: {files} files, {c.fmt_mb(total)}; {runs} round(s)", flush=True)
        base_env = c.client_env({"MLFLOW_TRACKING_URI": srv.url})
        results: dict[str, list[dict]] = {name: [] for name in CASES}
        for r in range(runs):
            for name in CASES if r % 2 == 0 else tuple(reversed(CASES)):
                home = pk.kit_home(work / "home")
                cache, tmp = work / "cache", work / "tmp"
                for old in cache, tmp:
                    c.remove(old)
                tmp.mkdir()
                env = {**base_env, "KITOPS_HOME": str(home), "KITMLFLOW_CACHE_DIR": str(cache), "TMPDIR": str(tmp)}
                cmd = [*c.KITMLFLOW_CLI, "import", uri, "-t", TAG, "--yes", "--json", "--packer", "native"]
                if name == "modelpack":
                    cmd += ["--format", "modelpack"]
                pk.evict(folder)
                measured = pk.measure_disk(f"{name}-{r}", cmd, env=env, logs=work / "logs", watch=[home, cache, tmp])
                storage = pk.disk_usage([home / "storage"])
                row = {"wall": measured.m.wall, "rss": measured.m.rss_tree, "disk_peak": measured.disk_peak}
                row["storage"] = storage
                results[name].append(row)
                report.measurements.append({**measured.m.json(), "disk_peak": measured.disk_peak, "case": name})
                print(
                    f"  round {r + 1}/{runs} {name:<10} {c.fmt_s(measured.m.wall):>9}  peak RSS "
                    f"{c.fmt_mb(measured.m.rss_tree):>9}  disk peak {c.fmt_mb(measured.disk_peak):>10}  "
                    f"in storage {c.fmt_mb(storage):>10}",
                    flush=True,
                )
        for old in work / "home", work / "cache":
            c.remove(old)

    def med(name: str, key: str = "wall") -> float:
        return c.median([x[key] for x in results[name]])

    rows = [
        [
            name,
            c.fmt_s(c.best([x["wall"] for x in results[name]])),
            c.fmt_s(med(name)),
            c.fmt_mb(med(name, "rss")),
            c.fmt_mb(med(name, "disk_peak")),
            c.fmt_mb(med(name, "storage")),
        ]
        for name in CASES
    ]
    print("\n" + c.table(["case", "best", "median", "peak RSS", "peak disk", "in storage"], rows))
    for name in CASES:
        report.rows.append({"case": name, **{k: med(name, k) for k in ("wall", "rss", "disk_peak", "storage")}})
    ratio = med("modelpack") / med("modelkit")
    report.target("modelpack / modelkit", ratio <= TIME_TARGET, f"{c.fmt_ratio(ratio)} (target ≤ {TIME_TARGET}x)")
    disk = med("modelpack", "disk_peak") / med("modelpack", "storage")
    report.target("modelpack peak disk / size", disk <= DISK_TARGET, f"{c.fmt_ratio(disk)} (target ≤ {DISK_TARGET}x)")
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
