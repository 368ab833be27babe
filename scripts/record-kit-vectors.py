#!/usr/bin/env python3
"""Record what the real kit makes of the corpus in tests/kit_vectors/ (see tests/kit_vectors/README.md).

    KIT_BIN=/path/to/kit .venv/bin/python scripts/record-kit-vectors.py            # everything
    KIT_BIN=/path/to/kit .venv/bin/python scripts/record-kit-vectors.py scalars    # one part
    .venv/bin/python scripts/record-kit-vectors.py --harvest-licenses [DIR ...]    # grow the license corpus

Parts (each rewrites only its own files):
  init        `cd FOLDER && kit init --force .` for every folder of inputs/folders.yaml and every case of
              tests/kitinit_corpus -> recorded/init.json, kitinit_corpus/*/expected-kitfile.yaml
  packs       `kit pack` (+ `kit inspect`) for inputs/packs.yaml, inputs/kitfiles.yaml and every folder
              with kit init's Kitfile -> recorded/packs/*.json (manifest bytes, config bytes or digest,
              layer digests, diffIds, sizes, media types, tar entries)
  scalars     every spelling of every string of inputs/scalars.yaml as a parameter (and, plain, as a
              string field) -> recorded/scalars.json
  references  `kit pack -t` for inputs/references.yaml, then `kit list`, and kit inspect / unpack /
              tag / push on each name -> recorded/references.json
  licenses    kit init on each text of licenses/texts (as LICENSE beside a model) -> licenses/index.json
  generated   seeded random folders (the recorded twins of the Hypothesis tests that need kit)
              -> recorded/generated-packs.json, recorded/generated-inits.json
  (always)    kit.json: `kit version` of the binary used

Only what the kit binary produced is written: none of kit's source. The run is deterministic: the
same kit and the same inputs give byte-identical files (check with `git diff --exit-code tests/`).
Kit runs in private homes under a temporary folder (with disable-update-notifications, so it makes
no network request); paths of that folder are replaced by `<tmp>` in recorded error messages.
`--harvest-licenses` adds license files found in the given folders (default: this project's .venv
site-packages and /usr/share/common-licenses) to licenses/texts, once per text, then run `licenses`.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a file: the repository root makes `tests` importable

from tests.support import kitvectors as kv  # noqa: E402

PARTS = ("init", "packs", "scalars", "references", "licenses", "generated")
PUSH_PROBE = "127.0.0.1:1/kitvectors/probe:v1"  # nothing listens on port 1: kit fails after resolving the source
LICENSE_MAX_BYTES = 48 * 1024
LICENSE_NAMES = ("license", "licence", "copying", "notice")
GENERATED_COUNT = 40


class Kit:
    """The kit binary, run with a private home per call site; every call's output is returned."""

    def __init__(self, binary: str, scratch: Path) -> None:
        self.binary = binary
        self.scratch = scratch

    def home(self, name: str | Path) -> Path:
        home = self.scratch / "homes" / name
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        (home / "disable-update-notifications").touch()
        return home

    def run(self, home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KITOPS_HOME": str(home), "NO_COLOR": "1"}
        return subprocess.run(
            [self.binary, *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def error(self, done: subprocess.CompletedProcess[str]) -> str:
        """kit's error message: from its first [ERROR] line on (a few lines), with the scratch path hidden."""
        lines = (done.stderr + done.stdout).splitlines()
        first = next((i for i, line in enumerate(lines) if line.startswith("[ERROR]")), None)
        kept = lines[first : first + 8] if first is not None else lines[-3:]
        text = "\n".join(line.rstrip() for line in kept) or f"exit {done.returncode}"
        return text.replace(str(self.scratch), "<tmp>")

    def version(self) -> kv.KitVersion:
        out = subprocess.run([self.binary, "version"], capture_output=True, text=True, timeout=60).stdout
        fields = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
        return kv.KitVersion(version=fields["Version"], commit=fields["Commit"], built=fields["Built"])


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def safe(name: str) -> str:
    return name.replace("/", "__")


# -- init --------------------------------------------------------------------------------------------
def kit_init(kit: Kit, description: dict[str, Any], where: Path) -> str:
    folder = kv.build_folder(description, fresh(where))
    done = kit.run(kit.home(where.relative_to(kit.scratch)), "init", "--force", ".", cwd=folder)
    if done.returncode != 0:
        raise SystemExit(f"kit init failed in {folder}: {kit.error(done)}")
    return (folder / "Kitfile").read_text(encoding="utf-8")


def record_init(kit: Kit, version: kv.KitVersion) -> None:
    recorded: dict[str, str] = {}
    for name, description in kv.folders().items():
        text = kit_init(kit, description, kit.scratch / "init" / safe(name))
        if name.startswith(kv.KITINIT_PREFIX):
            header = (
                "# Recorded from the real `kit init --force .` run inside the folder that case.yaml describes\n"
                f"# ({version.describe()}). Do not edit: re-record with\n"
                "# KIT_BIN=/path/to/kit python scripts/record-kit-vectors.py init\n"
            )
            case = name.removeprefix(kv.KITINIT_PREFIX)
            write(kv.KITINIT_CORPUS / case / kv.KITINIT_EXPECTED, header + text)
        else:
            recorded[name] = text
    write(kv.RECORDED / "init.json", kv.dump_json(recorded))


# -- packs -------------------------------------------------------------------------------------------
def tagged_manifest(home: Path, registry_repo: str, tag: str) -> str:
    stem = base64.urlsafe_b64encode(registry_repo.encode()).decode()
    tags = json.loads((home / "storage" / f"{stem}-tags.json").read_text())
    return tags[tag]["digest"]


def storage_name(tag: str) -> tuple[str, str]:
    """The repository key and tag kit stores a pack -t value under (only for the corpus's plain tags)."""
    first, slash, rest = tag.partition("/")
    name = tag if slash and ("." in first or ":" in first) else f"localhost/{tag}"
    repo, _, tag_part = name.rpartition(":")
    return repo, tag_part


def pack(kit: Kit, case: kv.PackCase, where: Path) -> tuple[dict[str, Any], Path | None]:
    """Pack one case; the record and the kit home holding the result (None when kit refused)."""
    folder = kv.build_folder(kv.folders()[case.folder], fresh(where / "ctx"))
    kitfile = where / "Kitfile"
    kitfile.write_bytes(case.text_for_kit().encode("utf-8"))
    home = kit.home("pack")
    args = ["pack", str(folder), "-f", str(kitfile), f"--tag={case.tag}", "--compression", case.compression]
    done = kit.run(home, *args, "--progress", "none")
    if done.returncode != 0:
        return {"error": kit.error(done)}, None
    manifest_digest = tagged_manifest(home, *storage_name(case.tag))
    manifest = kv.storage_blob(home, manifest_digest)
    parsed = json.loads(manifest)
    config = kv.storage_blob(home, parsed["config"]["digest"])
    layers = []
    for layer in parsed["layers"] or []:
        data = kv.storage_blob(home, layer["digest"])
        tar = gzip.decompress(data) if layer["mediaType"].endswith("+gzip") else data
        layers.append(
            {
                "mediaType": layer["mediaType"],
                "digest": layer["digest"],
                "size": layer["size"],
                "diffId": "sha256:" + hashlib.sha256(tar).hexdigest(),
                "entries": kv.tar_entries(tar),
            }
        )
    config_value = json.loads(config)
    entries = [
        *([config_value["model"]] if "model" in config_value else []),
        *config_value.get("model", {}).get("parts", []),
        *config_value.get("code", []),
        *config_value.get("datasets", []),
        *config_value.get("docs", []),
    ]
    assert [e["diffId"] for e in entries] == [layer["diffId"] for layer in layers], case.name
    inspected = kit.run(home, "inspect", "--", case.tag)
    if inspected.returncode != 0:
        raise SystemExit(f"kit inspect {case.tag} failed: {kit.error(inspected)}")
    report = json.loads(inspected.stdout)
    inspect = {
        "digest": report["digest"],
        "cliVersion": report["cliVersion"],
        "kitfile": "= config" if report["kitfile"] == config_value else report["kitfile"],
        "manifest": "= manifest" if report["manifest"] == parsed else report["manifest"],
    }
    record = {
        "manifest_digest": manifest_digest,
        "manifest": manifest.decode("utf-8"),
        "config_digest": parsed["config"]["digest"],
        "config_size": len(config),
        "config": config.decode("utf-8") if len(config) <= 4096 else None,
        "layers": layers,
        "inspect": inspect,
    }
    return record, home


def record_packs(kit: Kit) -> None:
    target = kv.RECORDED / "packs"
    shutil.rmtree(target, ignore_errors=True)
    for name, case in kv.pack_cases().items():
        record, _ = pack(kit, case, kit.scratch / "pack" / safe(name))
        header = {"case": name, "folder": case.folder, "tag": case.tag, "compression": case.compression}
        write(kv.pack_record_path(name), kv.dump_json({**header, **record}))


# -- scalars -----------------------------------------------------------------------------------------
def record_scalars(kit: Kit) -> None:
    values = kv._yaml(kv.INPUTS / "scalars.yaml")["scalars"]
    where = kit.scratch / "scalars"
    folder = kv.build_folder(kv.folders()[kv.SCALAR_FOLDER], fresh(where / "ctx"))
    home = kit.home("scalars")
    records = []
    for value in values:
        spellings = []
        for style, text in kv.yaml_spellings(value).items():
            for context in kv.SCALAR_CONTEXTS if style == "plain" else ("param",):
                kitfile = where / "Kitfile"
                kitfile.write_bytes(kv.scalar_kitfile(text, context).encode("utf-8"))
                args = ["pack", str(folder), "-f", str(kitfile), "--tag=kitvectors/scalar:v1", "--progress", "none"]
                done = kit.run(home, *args)
                entry: dict[str, Any] = {"style": style, "text": text, "context": context}
                if done.returncode != 0:
                    entry.update(error=kit.error(done), config_digest="", present=False, value=None)
                else:
                    manifest = json.loads(
                        kv.storage_blob(home, tagged_manifest(home, "localhost/kitvectors/scalar", "v1"))
                    )
                    config = json.loads(kv.storage_blob(home, manifest["config"]["digest"]))
                    if context == "param":
                        holder = config["model"].get("parameters")
                        present = isinstance(holder, dict) and "v" in holder
                        found = holder.get("v") if present else None
                    else:
                        holder = config.get("package", {})
                        present = "description" in holder
                        found = holder.get("description")
                    entry.update(error=None, config_digest=manifest["config"]["digest"], present=present, value=found)
                spellings.append(entry)
        records.append({"value": value, "spellings": spellings})
    write(kv.RECORDED / "scalars.json", kv.dump_json(records))


# -- references --------------------------------------------------------------------------------------
def resolves(kit: Kit, home: Path, name: str, digest: str, out: Path) -> dict[str, bool]:
    inspected = kit.run(home, "inspect", "--", name)
    found_inspect = inspected.returncode == 0 and json.loads(inspected.stdout)["digest"] == digest
    unpacked = kit.run(home, "unpack", "-d", str(fresh(out)), "--", name).returncode == 0
    pushed = kit.run(home, "push", "--plain-http", "--", name, PUSH_PROBE)
    message = pushed.stderr + pushed.stdout
    if "connection refused" in message:
        push_source = True
    elif any(
        words in message.lower()
        for words in ("not found", "could not find", "missing reference", "invalid reference", "invalid arguments")
    ):
        push_source = False
    else:
        raise SystemExit(f"kit push {name}: cannot tell whether the source resolved: {message!r}")
    tagged = kit.run(home, "tag", "--", name, "kitvectors-probe/tagged:v1").returncode == 0
    return {"inspect": found_inspect, "unpack": unpacked, "tag_source": tagged, "push_source": push_source}


def stored_tags(home: Path) -> dict[str, list[str]]:
    """registry/repository -> tags, from the names of kit's per-repository files (kit list reads these)."""
    found: dict[str, list[str]] = {}
    for path in sorted((home / "storage").glob("*-tags.json")):
        repo = base64.urlsafe_b64decode(path.name.removesuffix("-tags.json")).decode()
        found[repo] = sorted(json.loads(path.read_text()))
    return found


def record_references(kit: Kit) -> None:
    tags = kv._yaml(kv.INPUTS / "references.yaml")["references"]
    where = kit.scratch / "references"
    folder = kv.build_folder(kv.folders()[kv.SCALAR_FOLDER], fresh(where / "ctx"))
    kitfile = where / "Kitfile"
    kitfile.write_text("manifestVersion: 1.0.0\nmodel:\n  path: m.bin\n", encoding="utf-8")
    records = []
    for tag in tags:
        home = kit.home("references")
        done = kit.run(home, "pack", str(folder), "-f", str(kitfile), f"--tag={tag}", "--progress", "none")
        record: dict[str, Any] = {"tag": tag, "packed": done.returncode == 0}
        if done.returncode != 0:
            record["error"] = kit.error(done)
            records.append(record)
            continue
        listed_entries = json.loads(kit.run(home, "list", "--format", "json").stdout)
        listed = sorted(
            entry["repo"] if t is None else f"{entry['repo']}:{t}"
            for entry in listed_entries
            for t in entry["tags"] or [None]
        )
        digest = listed_entries[0]["digest"]
        candidates = list(dict.fromkeys([tag, tag.strip(), *listed, *(f"localhost/{name}" for name in listed)]))
        record["listed"] = listed
        record["storage"] = stored_tags(home)
        record["resolves"] = {name: resolves(kit, home, name, digest, where / "out") for name in candidates}
        records.append(record)
    write(kv.RECORDED / "references.json", kv.dump_json(records))


# -- licenses ----------------------------------------------------------------------------------------
def license_index() -> list[dict[str, Any]]:
    path = kv.LICENSES / "index.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []


def write_license_index(items: list[dict[str, Any]]) -> None:
    items.sort(key=lambda item: (item["sources"][0].lower(), item["sha256"]))
    write(kv.LICENSES / "index.json", kv.dump_json(items))


def record_licenses(kit: Kit) -> None:
    items = license_index()

    def detect(item: dict[str, Any]) -> None:
        description = {"files": {"LICENSE": {"license_sha256": item["sha256"]}, "model.safetensors": 1}}
        kitfile = yaml.safe_load(kit_init(kit, description, kit.scratch / "licenses" / item["sha256"][:16]))
        item["kit"] = kitfile.get("model", {}).get("license", "")
        assert "license" not in kitfile.get("package", {}), item

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # licensecheck takes ~1 s a text
        list(pool.map(detect, items))
    write_license_index(items)


def is_license_file(path: Path, root: Path) -> bool:
    """In site-packages, the license files of the .dist-info folders; elsewhere (a folder of license
    texts such as /usr/share/common-licenses) every regular file."""
    if not path.is_file() or path.is_symlink():
        return False
    if root.name != "site-packages":
        return True
    return ".dist-info/" in path.as_posix() and path.name.lower().startswith(LICENSE_NAMES)


def harvest_licenses(folders: Iterable[Path]) -> None:
    items = {item["sha256"]: item for item in license_index()}
    for root in folders:
        for path in sorted(root.rglob("*")):
            if not is_license_file(path, root) or path.stat().st_size > LICENSE_MAX_BYTES:
                continue
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            source = path.relative_to(root).as_posix() if root.name == "site-packages" else path.as_posix()
            item = items.setdefault(digest, {"sha256": digest, "file": f"{digest[:16]}.txt", "sources": []})
            if source not in item["sources"]:
                item["sources"] = sorted([*item["sources"], source])
            write_bytes = kv.LICENSES / "texts" / item["file"]
            write_bytes.parent.mkdir(parents=True, exist_ok=True)
            write_bytes.write_bytes(data)
    write_license_index(list(items.values()))


# -- generated examples ------------------------------------------------------------------------------
PACK_NAMES = ["data", "database.py", "model.pkl", "model.pkl.bak", "a..b", ".hidden", "ünï", "x" * 110, "sub",
              "Kitfile", "c d"]  # fmt: skip
IGNORE_LINES = ["*.bak", "**/x*", "!sub/keep", "sub", ".hidden", "/data", "# note", "**/a..b", "!model.pkl.bak"]
INIT_NAMES = ["model.safetensors", "w.pt", "pytorch_model.bin", "x.onnx", "config.json", "params.yaml", "notes.txt",
              "README.md", "guide.md", "train.csv", "data.parquet", "run.py", "MLmodel", "LICENSE", "a.zip",
              "Kitfile", "b.pkl", "schema.xml", "report.html"]  # fmt: skip
INIT_DIRS = ["docs", "src", "data", "model", "weights", "misc", "lib", "eval", "x"]


def generated_pack_case(rng: random.Random, index: int) -> dict[str, Any]:
    """A folder and Kitfile like tests/test_packing.py's `folder_and_kitfile` strategy draws."""
    tree: dict[str, dict[str, Any] | None] = {}  # path -> file spec, None for a folder
    for step in range(rng.randint(1, 10)):
        parts = [rng.choice(PACK_NAMES) for _ in range(rng.randint(1, 3))]
        path = "/".join(parts)
        if any(path.startswith(p + "/") for p, spec in tree.items() if spec is not None):
            continue
        if any(p.startswith(path + "/") for p in tree) or path in tree:
            continue
        for depth in range(1, len(parts)):
            tree.setdefault("/".join(parts[:depth]), None)
        tree[path] = None if rng.random() < 0.3 else {"size": rng.randint(0, 700), "seed": f"gen{index}-{step}"}
    files = {p: spec for p, spec in sorted(tree.items()) if spec is not None}
    dirs = {p: "755" for p, spec in sorted(tree.items()) if spec is None}
    ignores = [rng.choice(IGNORE_LINES) for _ in range(rng.randint(0, 3))]
    if ignores:
        files[".kitignore"] = {"text": "\n".join(ignores) + "\n"}
    candidates = sorted(p for p in tree if p != "Kitfile")
    chosen = rng.sample([".", *candidates], k=min(rng.randint(0, 4), len(candidates) + 1)) if candidates else []
    kitfile: dict[str, Any] = {"manifestVersion": "1.0.0", "package": {"name": "diff", "authors": ["prop"]}}
    roles = ["model", "code", "datasets", "docs"]
    rng.shuffle(roles)
    for path, role in zip(chosen, roles, strict=False):
        if role == "model":
            kitfile["model"] = {"name": "m", "path": path, "parameters": {"seed": rng.randint(0, 9)}}
        else:
            kitfile.setdefault(role, []).append({"path": path})
    return {"name": f"pack-{index:02d}", "folder": {"files": files, "dirs": dirs}, "kitfile": kitfile}


def generated_init_case(rng: random.Random, index: int) -> dict[str, Any]:
    """A tree like tests/test_kitfile.py's `_TREES` strategy draws (LICENSE: MIT or a custom text)."""
    files: dict[str, Any] = {}
    for _ in range(rng.randint(0, 9)):
        path = "/".join([*(rng.choice(INIT_DIRS) for _ in range(rng.randint(0, 2))), rng.choice(INIT_NAMES)])
        if path in files or any(path.startswith(p + "/") or p.startswith(path + "/") for p in files):
            continue  # a name used both as a file and as a folder
        size = rng.randint(0, 3000)
        if path.rsplit("/", 1)[-1] == "LICENSE":
            files[path] = {"license": "MIT" if size % 2 else "custom"}
        elif path.rsplit("/", 1)[-1] != "Kitfile":
            files[path] = size
    return {"name": f"init-{index:02d}", "folder": {"files": dict(sorted(files.items()))}}


def record_generated(kit: Kit) -> None:
    packs = []
    for index in range(GENERATED_COUNT):
        case = generated_pack_case(random.Random(f"kitvectors-pack-{index}"), index)
        pack_case = kv.PackCase(
            name=case["name"], folder="", tag="diff:v1", compression="none", kitfile=case["kitfile"]
        )
        where = kit.scratch / "generated" / case["name"]
        folder = kv.build_folder(case["folder"], fresh(where / "ctx"))
        kitfile = where / "Kitfile"
        kitfile.write_text(pack_case.text_for_kit(), encoding="utf-8")
        home = kit.home("generated")
        done = kit.run(home, "pack", str(folder), "-f", str(kitfile), "--tag=diff:v1", "--progress", "none")
        if done.returncode != 0:
            case["error"] = kit.error(done)
        else:
            digest = tagged_manifest(home, "localhost/diff", "v1")
            manifest = json.loads(kv.storage_blob(home, digest))
            case.update(digest=digest, config_digest=manifest["config"]["digest"],
                        layers=[layer["digest"] for layer in manifest["layers"] or []])  # fmt: skip
        packs.append(case)
    write(kv.RECORDED / "generated-packs.json", kv.dump_json(packs))
    inits = []
    for index in range(GENERATED_COUNT):
        case = generated_init_case(random.Random(f"kitvectors-init-{index}"), index)
        case["kitfile"] = kit_init(kit, case["folder"], kit.scratch / "generated-init" / case["name"])
        inits.append(case)
    write(kv.RECORDED / "generated-inits.json", kv.dump_json(inits))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("parts", nargs="*", metavar="PART", help=f"what to record: {', '.join(PARTS)} (default: all)")
    parser.add_argument("--harvest-licenses", nargs="*", type=Path, metavar="DIR", help="grow the license corpus")
    options = parser.parse_args()
    if options.harvest_licenses is not None:
        default = [REPO / ".venv" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages",
                   Path("/usr/share/common-licenses")]  # fmt: skip
        harvest_licenses(options.harvest_licenses or [d for d in default if d.is_dir()])
        return 0
    binary = os.environ.get("KIT_BIN")
    if not binary or not os.access(binary, os.X_OK):
        print("Set KIT_BIN to the kit binary to record with.", file=sys.stderr)
        return 2
    parts = options.parts or list(PARTS)
    if unknown := sorted(set(parts) - set(PARTS)):
        parser.error(f"unknown part(s) {', '.join(unknown)}: choose from {', '.join(PARTS)}")
    recorders: dict[str, Callable[[Kit], None]] = {
        "packs": record_packs,
        "scalars": record_scalars,
        "references": record_references,
        "licenses": record_licenses,
        "generated": record_generated,
    }
    with tempfile.TemporaryDirectory(prefix="kitvectors-") as scratch:
        kit = Kit(binary, Path(scratch))
        version = kit.version()
        write(kv.VECTORS / "kit.json", kv.dump_json(version.__dict__))
        for part in parts:
            print(f"recording {part} with {version.describe()}", file=sys.stderr)
            if part == "init":
                record_init(kit, version)
            else:
                recorders[part](kit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
