"""One 1 GB file from each artifact store, read directly: kitmlflow download vs ``mlflow artifacts download``.

The stores are the emulators of the test suite (tests/support/emulators.py), each on 127.0.0.1: moto (S3),
fake-gcs-server (GCS), Azurite (Azure Blob), OpenSSH's sshd (SFTP), plus a local folder. One real
``mlflow server`` holds one run per store, in an experiment whose ``artifact_location`` is that store, so both
tools read the bytes straight from the store with its own client library and the same environment. The
emulators are slow, single servers, so the ratio between the tools is the result, not the speed.

``s3-proxied``: a second server proxies the same moto bucket (``--artifacts-destination s3://``), which MLflow
≥ 3.9 answers with presigned URLs (server-info ``multipart_downloads_enabled``): both tools then read the file's
ranges from the store itself; the extra row ``kitmlflow, proxy only`` (``MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD
=false``) is the single stream through the server that kitmlflow used before.

Each measurement is a fresh subprocess with an empty destination (tools alternate from round to round): wall
time, peak RSS of the process tree and VmHWM (see _common.py). Emulators that are not installed are skipped
with the reason (``scripts/install-test-tools.sh`` installs them).

Run: ``.venv/bin/python bench/stores.py [--quick] [--runs N] [--size-mb N] [--workdir DIR] [--json-out F]``
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from pathlib import Path

import _common as c

FILE = "model/weights.bin"
RSS_TARGET = 300 * c.MB


def seed_stores(
    root: Path, stack: contextlib.ExitStack, size: int, wanted: set[str]
) -> dict[str, tuple[str, str, dict[str, str]]]:
    """Start the emulators and a server; one run per store holding one file of ``size`` bytes.
    Returns store → (tracking URL, run id, client environment)."""
    from tests.support.emulators import MissingEmulator, azurite, fake_gcs, sftp_server
    from tests.support.servers import moto_s3

    s3 = stack.enter_context(moto_s3(root / "moto"))
    stores: dict[str, tuple[str | None, dict[str, str]]] = {
        "s3": (f"s3://{s3.bucket}/bench", s3.env()),
        "s3-proxied": (None, {}),  # the server's own artifact destination, on the same moto
        "local": (str(root / "local-store"), {}),
    }
    for name, start in (("gcs", fake_gcs), ("azure", azurite), ("sftp", sftp_server)):
        try:
            emulator = stack.enter_context(start(root / name))
        except MissingEmulator as exc:
            print(f"skipping {name}: {exc}", flush=True)
            continue
        if name == "gcs":
            stores[name] = (f"gs://{emulator.bucket}/bench", emulator.env())
        elif name == "azure":
            stores[name] = (emulator.uri("bench"), emulator.env())
        else:
            stores[name] = (emulator.uri("bench"), {"HOME": str(emulator.home(root / "sftp-home"))})
    allow = {"MLFLOW_ALLOWED_HOST_ADDRESSED_ARTIFACT_SCHEMES": "sftp"}
    srv = stack.enter_context(c.mlflow_server(root / "server", env=allow))
    print(f"mlflow server {srv.url} ready in {srv.ready_seconds:.1f} s", flush=True)
    proxied = srv
    if "s3-proxied" in wanted:
        proxied = stack.enter_context(c.mlflow_server(root / "proxied", artifacts="proxied-s3", s3=s3))
        print(f"mlflow server {proxied.url} (proxying s3) ready in {proxied.ready_seconds:.1f} s", flush=True)
    source = root / "source"
    c.write_file(source / FILE, size)
    seeded = {}
    for name, (location, env) in stores.items():
        if name not in wanted:
            continue
        print(f"uploading {c.fmt_mb(size)} into {name} ...", flush=True)
        url = proxied.url if name == "s3-proxied" else srv.url
        run_id = _log_run(url, name, location, env, source)
        seeded[name] = (url, run_id, env)
    c.remove(source)
    c.settle()
    return seeded


def _log_run(url: str, name: str, location: str | None, env: dict[str, str], folder: Path) -> str:
    from mlflow import MlflowClient

    from tests.support.servers import temp_env

    with temp_env(env):
        client = MlflowClient(url)
        experiment = client.create_experiment(f"bench-{name}", artifact_location=location)
        run_id = client.create_run(experiment).info.run_id
        client.log_artifacts(run_id, str(folder))
        client.set_terminated(run_id)
    return run_id


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 * c.MiB):
            h.update(block)
    return h.hexdigest()


def main() -> int:
    args = c.parser(__doc__.splitlines()[0])
    args.add_argument("--size-mb", type=int, default=1000, help="size of the one file (MB, default 1000)")
    args.add_argument("--stores", default="s3,s3-proxied,local,gcs,azure,sftp", help="which stores (comma-separated)")
    args = args.parse_args()
    size = args.size_mb * c.MB
    report = c.Report("stores", args)
    with c.workdir(args, "stores") as root, contextlib.ExitStack() as stack:
        wanted = set(args.stores.split(","))
        seeded = {k: v for k, v in seed_stores(root, stack, size, wanted).items() if k in wanted}
        expected: str | None = None
        rows = []
        for name, (url, run_id, env) in seeded.items():
            child_env = c.client_env({**env, "MLFLOW_TRACKING_URI": url})
            uri = f"mlflow://{url.removeprefix('http://')}/runs/{run_id}"
            kitmlflow = [*c.KITMLFLOW_CLI, "download", uri, "--yes", "--dest"]
            tools = {
                "kitmlflow": lambda dest, cmd=kitmlflow: [*cmd, str(dest)],
                "mlflow": lambda dest, run_id=run_id: [
                    *c.MLFLOW_CLI,
                    "artifacts",
                    "download",
                    "-r",
                    run_id,
                    "-d",
                    str(dest),
                ],
            }
            tool_env = {tool: child_env for tool in tools}
            if name == "s3-proxied":
                tools["kitmlflow, proxy only"] = tools["kitmlflow"]
                tool_env["kitmlflow, proxy only"] = {**child_env, "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false"}
            results: dict[str, list[c.Measurement]] = {tool: [] for tool in tools}
            for round_ in range(c.runs_of(args)):
                order = list(tools) if round_ % 2 == 0 else list(reversed(tools))
                for tool in order:
                    dest = root / f"dest-{name}-{tool}"
                    m = c.measure(
                        f"{name} {tool} #{round_ + 1}", tools[tool](dest), env=tool_env[tool], logs=root / "logs"
                    )
                    got = digest(dest / FILE)
                    expected = expected or got
                    m.extra["complete"] = got == expected and (dest / FILE).stat().st_size == size
                    results[tool].append(m)
                    report.measurements.append(m.json())
                    print(f"  {m.label}: {c.fmt_s(m.wall)}, peak RSS {c.fmt_mb(m.rss_tree)}", flush=True)
                    c.remove(dest)
                    c.settle()
            kit, peer = results["kitmlflow"], results["mlflow"]
            row = {
                "store": name,
                "kitmlflow_s": round(c.median([m.wall for m in kit]), 2),
                "mlflow_s": round(c.median([m.wall for m in peer]), 2),
                "ratio": round(c.median([m.wall for m in kit]) / c.median([m.wall for m in peer]), 2),
                "kitmlflow_peak_rss": max(max(m.rss_tree, m.maxrss) for m in kit),
                "mlflow_peak_rss": max(max(m.rss_tree, m.maxrss) for m in peer),
                "complete": all(m.extra["complete"] for m in kit + peer),
            }
            rows.append(row)
            if only_proxy := results.get("kitmlflow, proxy only"):
                rows.append(
                    {
                        "store": f"{name}, kitmlflow through the proxy only",
                        "kitmlflow_s": round(c.median([m.wall for m in only_proxy]), 2),
                        "mlflow_s": row["mlflow_s"],
                        "ratio": round(c.median([m.wall for m in only_proxy]) / row["mlflow_s"], 2),
                        "kitmlflow_peak_rss": max(max(m.rss_tree, m.maxrss) for m in only_proxy),
                        "mlflow_peak_rss": row["mlflow_peak_rss"],
                        "complete": all(m.extra["complete"] for m in only_proxy),
                    }
                )
        report.rows = rows
        print()
        print(
            c.table(
                [
                    "store",
                    "kitmlflow",
                    "mlflow",
                    "kitmlflow / mlflow",
                    "kitmlflow peak RSS",
                    "mlflow peak RSS",
                    "complete",
                ],
                [
                    [
                        r["store"],
                        c.fmt_s(r["kitmlflow_s"]),
                        c.fmt_s(r["mlflow_s"]),
                        c.fmt_ratio(r["ratio"]),
                        c.fmt_mb(r["kitmlflow_peak_rss"]),
                        c.fmt_mb(r["mlflow_peak_rss"]),
                        "yes" if r["complete"] else "NO",
                    ]
                    for r in rows
                ],
            )
        )
        print(
            f"One {c.fmt_mb(size)} file per store; medians of wall time; peak RSS = max(tree RSS, VmHWM) of the runs."
        )
        print()
        worst = max(rows, key=lambda r: r["kitmlflow_peak_rss"])
        report.target(
            f"peak RSS under {c.fmt_mb(RSS_TARGET)} reading one {c.fmt_mb(size)} file from every store",
            worst["kitmlflow_peak_rss"] < RSS_TARGET and all(r["complete"] for r in rows),
            f"highest: {worst['store']} {c.fmt_mb(worst['kitmlflow_peak_rss'])}",
        )
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
