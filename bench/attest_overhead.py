"""What a signed attestation costs a direct import: the same import with and without ``--sign-key``.

The run, on a real proxied ``mlflow server`` on 127.0.0.1 (local artifact store): ``weights/model.safetensors``
(``--size``, default 2 GiB of incompressible bytes), 100 small files and a README, written straight into the server's
artifact folder. Each case is a fresh ``kitmlflow import URI -t bench:v1 --yes --json --packer native`` subprocess
into a fresh kit home (the direct import: bytes straight into the layer blobs), the server's files dropped from the
page cache before each; the cases alternate (with, without, without, with, ...):

- ``import``: as is;
- ``import --sign-key``: signed with an ECDSA P-256 key; every file's sha256 is taken in the pass that hashes the
  layers (``packing/file_digests.py``), the statement signed and written with ``--attestation-output``.

Target: with / without ≤ 1.05 (median wall). The push is left out on purpose: it does not change with signing
except for the attestation's few kilobytes.

Run: ``.venv/bin/python bench/attest_overhead.py [--quick] [--runs N] [--size BYTES] [--workdir DIR]``
"""

from __future__ import annotations

import sys
from pathlib import Path

import _common as c
import pack_vs_kit as pk

TAG = "bench:v1"
TARGET = 1.05
CASES = ("import", "import --sign-key")


def signing_key(folder: Path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    path = folder / "sign.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


def main() -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=2048 * c.MiB, help="bytes of the large file (default 2 GiB)")
    p.add_argument("--small", type=int, default=100, help="small files (10-12 kB, in data/)")
    args = p.parse_args()
    runs = c.runs_of(args)
    report = c.Report("attest_overhead", args)
    with c.workdir(args, "attest") as work, c.server(work) as srv:
        _, run_id, folder = c.seeded_run(srv, "bench-attest")
        c.write_file(folder / "weights" / "model.safetensors", args.size)
        for i in range(args.small):
            c.write_file(folder / "data" / f"part-{i:04d}.csv", 10_000 + i)
        files, total = c.tree_bytes(folder)
        uri = f"mlflow://127.0.0.1:{srv.port}/runs/{run_id}"
        print(f"run {run_id}: {files} files, {c.fmt_mb(total)}; {runs} round(s) of each case", flush=True)
        key = signing_key(work)
        base_env = c.client_env({"MLFLOW_TRACKING_URI": srv.url})
        results: dict[str, list[dict]] = {name: [] for name in CASES}
        order = [CASES if r % 2 == 0 else tuple(reversed(CASES)) for r in range(runs)]
        for r, cases in enumerate(order):
            for name in cases:
                home = pk.kit_home(work / "home")
                cache = work / "cache"
                c.remove(cache)
                env = {**base_env, "KITOPS_HOME": str(home), "KITMLFLOW_CACHE_DIR": str(cache)}
                cmd = [*c.KITMLFLOW_CLI, "import", uri, "-t", TAG, "--yes", "--json", "--packer", "native"]
                if name == "import --sign-key":
                    cmd += ["--sign-key", str(key), "--attestation-output", str(work / "attestation.json")]
                pk.evict(folder)
                c.settle()
                measured = c.measure(f"{name}-{r}", cmd, env=env, logs=work / "logs")
                results[name].append({"wall": measured.wall, "cpu": measured.cpu, "rss": measured.rss_tree})
                report.measurements.append({**measured.json(), "case": name})
                print(
                    f"  round {r + 1}/{runs} {name:<18} {c.fmt_s(measured.wall):>9}  CPU {c.fmt_s(measured.cpu):>9}  "
                    f"peak RSS {c.fmt_mb(measured.rss_tree):>9}",
                    flush=True,
                )
        for old in work / "home", work / "cache":
            c.remove(old)

    def med(name: str, key: str = "wall") -> float:
        return c.median([x[key] for x in results[name]])

    rows = [
        [name, c.fmt_s(c.best([x["wall"] for x in results[name]])), c.fmt_s(med(name)), c.fmt_s(med(name, "cpu"))]
        for name in CASES
    ]
    print("\n" + c.table(["case", "best", "median", "median CPU"], rows))
    for name in CASES:
        report.rows.append({"case": name, **{k: med(name, k) for k in ("wall", "cpu", "rss")}})
    ratio = med("import --sign-key") / med("import")
    report.target("signed / unsigned import", ratio <= TARGET, f"{c.fmt_ratio(ratio)} (target ≤ {TARGET}x)")
    cpu = med("import --sign-key", "cpu") / med("import", "cpu")
    report.notes.append(f"CPU signed / unsigned {cpu:.2f}x")
    print(f"CPU time: signed / unsigned {cpu:.2f}x")
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
