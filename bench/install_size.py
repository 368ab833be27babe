"""What ``pip install kitmlflow`` costs: a plain install (MLflow's client, ``mlflow-skinny``) against the full MLflow
that the package depended on before (today's ``kitmlflow[local]`` is exactly that set).

For each, in a fresh venv (``python -m venv``), the working tree's package is installed with pip (pip's own cache
is used as a user's would be: the install time is that of a warm cache, not of the network). Then:

- size: the bytes of the venv's files (``du`` of the folder, apparent sizes), and the packages ``pip list`` shows
  (pip and setuptools not counted);
- the server-side packages present among pandas, scipy, scikit-learn, pyarrow, Flask, gunicorn, docker;
- ``kitmlflow --help`` (wall time of the command, the median of the rounds), and the first import a user pays
  for: ``python -c "from kitmlflow_tui import import_modelkit; import mlflow"``.

Targets: the plain install at most 250 MB and none of the server-side packages.

Run: ``.venv/bin/python bench/install_size.py [--quick] [--runs N] [--workdir DIR] [--json-out FILE]``
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import _common as c

SERVER_SIDE = ("pandas", "scipy", "scikit-learn", "pyarrow", "flask", "gunicorn", "docker")
TARGET_BYTES = 250 * c.MB
VARIANTS = (("plain (mlflow-skinny)", ""), ("full MLflow ([local], the former dependency)", "[local]"))
FIRST_IMPORT = "from kitmlflow_tui import import_modelkit; import mlflow"


def source_copy(dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(c.REPO / name, dest / name)
    shutil.copytree(c.REPO / "kitmlflow_tui", dest / "kitmlflow_tui", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def folder_bytes(folder: Path) -> int:
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def packages(python: Path) -> set[str]:
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format", "json"], capture_output=True, text=True)
    return {e["name"].lower().replace("_", "-") for e in json.loads(listed.stdout)} - {"pip", "setuptools"}


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, capture_output=True, check=True, env=env, timeout=300)
    return time.perf_counter() - started


def main() -> int:
    args = c.parser(__doc__.split("\n\n", 1)[0]).parse_args()
    report = c.Report("install_size", args)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    results = []
    with c.workdir(args, "install") as work:
        source = source_copy(work / "src")
        for label, extra in VARIANTS:
            venv = work / f"venv{extra.strip('[]') or '-plain'}"
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            python, bin_dir = venv / "bin" / "python", venv / "bin"
            started = time.perf_counter()
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", f"{source}{extra}"], check=True, env=env, timeout=1800
            )
            install_s = time.perf_counter() - started
            names = packages(python)
            helps, imports = [], []
            for _ in range(c.runs_of(args)):
                c.settle()
                helps.append(timed([str(bin_dir / "kitmlflow"), "--help"], env))
                imports.append(timed([str(python), "-c", FIRST_IMPORT], env))
            row = {
                "install": label,
                "bytes": folder_bytes(venv),
                "packages": len(names),
                "server_side": sorted(names & set(SERVER_SIDE)),
                "install_s": round(install_s, 1),
                "help_s": round(c.median(helps), 3),
                "first_import_s": round(c.median(imports), 3),
            }
            results.append(row)
            report.rows.append(row)
            print(
                f"{label}: {c.fmt_mb(row['bytes'])}, {row['packages']} packages, installed in {row['install_s']} s",
                flush=True,
            )
    print()
    print(
        c.table(
            ["install", "size", "packages", "server-side packages", "pip install", "--help", "first import"],
            [
                (
                    r["install"],
                    c.fmt_mb(r["bytes"]),
                    r["packages"],
                    ", ".join(r["server_side"]) or "none",
                    c.fmt_s(r["install_s"]),
                    c.fmt_s(r["help_s"]),
                    c.fmt_s(r["first_import_s"]),
                )
                for r in results
            ],
        )
    )
    plain, full = results
    report.target(
        "plain install ≤ 250 MB",
        plain["bytes"] <= TARGET_BYTES,
        f"{c.fmt_mb(plain['bytes'])} (full MLflow: {c.fmt_mb(full['bytes'])}, {full['bytes'] / plain['bytes']:.1f}x)",
    )
    report.target(
        "plain install has no server-side package",
        not plain["server_side"],
        ", ".join(plain["server_side"]) or f"none of {', '.join(SERVER_SIDE)}",
    )
    report.notes.append("pip's cache was warm: install times are those of a cached install, not of the network")
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
