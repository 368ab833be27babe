"""Mutation check of the test suite: does it fail when a promised behaviour breaks?

Run: ``make mutate`` or ``.venv/bin/python scripts/mutate.py [--only ID,ID] [--list] [--keep]``.

``tests/mutations.yaml`` lists one-line mutations of what the command-line contract promises (filters, sizes, statuses,
exit codes, secrets, atomic storage, byte-compatibility, bounded input). Each names its file, the text of
the line it changes (not its number, so the list survives edits), the replacement, and the tests that
should catch it. The script copies the package and the tests into a temporary folder (the work tree is
never touched), checks that Python imports the copy, runs every listed test once unmutated (they must
pass, or a "caught" would mean nothing), then for each mutation edits the copy, runs its tests there and
restores the file. A mutation is *caught* when its tests fail, *missed* when they pass.

It fails loudly, before running anything, when a listed line is not found exactly once in its file (after
``after`` when given) or a listed test file is gone: the list must follow the code. A mutation with ``needs: kit`` runs only where the
real kit is found (``KIT_BIN`` or the PATH); elsewhere it is reported as not checkable here.
Exit status: 0 when every checkable mutation is caught, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
MUTATIONS = REPO / "tests" / "mutations.yaml"
COPIED = ("kitmlflow_tui", "tests", "pyproject.toml")
PER_MUTATION_TIMEOUT = 1800


@dataclass(frozen=True)
class Mutation:
    id: str
    promise: str
    file: str
    line: str  # the original line's text, without its indentation
    replace: str  # what it becomes (indented like the original)
    tests: tuple[str, ...]
    k: str | None = None
    after: str | None = None  # search for ``line`` after the first line containing this text
    needs: tuple[str, ...] = ()
    why: str = ""


@dataclass
class Outcome:
    mutation: Mutation
    result: str  # caught | missed | not checkable here | error
    seconds: float = 0.0
    detail: str = ""
    failed: list[str] = field(default_factory=list)


def load_mutations(path: Path) -> list[Mutation]:
    entries = yaml.safe_load(path.read_text(encoding="utf-8"))
    mutations = []
    for entry in entries:
        entry = dict(entry)
        entry["tests"] = tuple(entry["tests"])
        entry["needs"] = tuple(entry.get("needs", ()))
        mutations.append(Mutation(**entry))
    ids = [m.id for m in mutations]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise SystemExit(f"{path}: duplicate mutation ids: {', '.join(sorted(duplicates))}")
    return mutations


def locate(mutation: Mutation, text: str) -> int:
    """The index of the one line the mutation changes; SystemExit naming the mutation when there is none
    or more than one."""
    lines = text.splitlines()
    start = 0
    if mutation.after is not None:
        anchors = [i for i, line in enumerate(lines) if mutation.after in line]
        if not anchors:
            raise SystemExit(f"mutation {mutation.id}: no line containing {mutation.after!r} in {mutation.file}")
        start = anchors[0] + 1
    found = [i for i in range(start, len(lines)) if lines[i].strip() == mutation.line.strip()]
    if mutation.after is not None:
        found = found[:1]
    if len(found) != 1:
        where = f" after {mutation.after!r}" if mutation.after else ""
        problem = "not found" if not found else f"found {len(found)} times (add 'after:' to say which)"
        raise SystemExit(f"mutation {mutation.id}: the line {mutation.line!r}{where} is {problem} in {mutation.file}")
    return found[0]


def mutated(mutation: Mutation, text: str) -> str:
    lines = text.splitlines(keepends=True)
    index = locate(mutation, text)
    original = lines[index]
    indent = original[: len(original) - len(original.lstrip())]
    ending = "\n" if original.endswith("\n") else ""
    lines[index] = indent + mutation.replace + ending
    return "".join(lines)


def kit_available() -> bool:
    configured = os.environ.get("KIT_BIN")
    return bool(configured and Path(configured).is_file()) or shutil.which("kit") is not None


def copy_project(into: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache")
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=ignore, symlinks=True)
        else:
            shutil.copy2(source, into / name)


def environment(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(copy) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a restored file must never be shadowed by a mutant's bytecode
    return env


def check_the_copy_is_imported(copy: Path, env: dict[str, str]) -> None:
    code = "import kitmlflow_tui; print(kitmlflow_tui.__file__)"
    done = subprocess.run([sys.executable, "-c", code], cwd=copy, env=env, capture_output=True, text=True)
    imported = Path(done.stdout.strip()).resolve()
    if done.returncode != 0 or not imported.is_relative_to(copy.resolve()):
        raise SystemExit(f"the copy is not what Python imports (got {imported or done.stderr.strip()})")


def pytest_command(tests: tuple[str, ...], k: str | None) -> list[str]:
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header", "-rf", *tests]
    return command + (["-k", k] if k else [])


def run_tests(copy: Path, env: dict[str, str], tests: tuple[str, ...], k: str | None) -> tuple[int, str]:
    try:
        done = subprocess.run(
            pytest_command(tests, k), cwd=copy, env=env, capture_output=True, text=True, timeout=PER_MUTATION_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        return -1, f"no result after {PER_MUTATION_TIMEOUT} s"
    return done.returncode, done.stdout + done.stderr


def failed_tests(output: str) -> list[str]:
    return [line.split(" ", 2)[1] for line in output.splitlines() if line.startswith("FAILED ")]


def mutate_one(mutation: Mutation, copy: Path, env: dict[str, str]) -> Outcome:
    target = copy / mutation.file
    original = target.read_text(encoding="utf-8")
    started = time.monotonic()
    target.write_text(mutated(mutation, original), encoding="utf-8")
    try:
        code, output = run_tests(copy, env, mutation.tests, mutation.k)
    finally:
        target.write_text(original, encoding="utf-8")
    seconds = time.monotonic() - started
    if code == 1:
        return Outcome(mutation, "caught", seconds, failed=failed_tests(output))
    if code == 0:
        return Outcome(mutation, "missed", seconds)
    tail = "\n".join(output.strip().splitlines()[-15:])
    return Outcome(mutation, "error", seconds, detail=f"pytest exit {code}:\n{tail}")


def report(outcomes: list[Outcome]) -> int:
    width = max(len(o.mutation.id) for o in outcomes)
    for o in outcomes:
        print(f"{o.result:>20}  {o.mutation.id:<{width}}  {o.mutation.promise:<18} {o.seconds:6.0f} s")
        if o.failed:
            print(f"{'':>22}{o.failed[0]}")
        if o.detail:
            print("\n".join(" " * 22 + line for line in o.detail.splitlines()))
    counts = {result: sum(o.result == result for o in outcomes) for result in ("caught", "missed", "error")}
    unchecked = sum(o.result.startswith("not checkable") for o in outcomes)
    scored = counts["caught"] + counts["missed"]
    score = counts["caught"] / scored if scored else 0.0
    print(
        f"\n{counts['caught']} caught, {counts['missed']} missed, {counts['error']} errors, "
        f"{unchecked} not checkable here; mutation score {counts['caught']}/{scored} = {score:.0%}"
    )
    return 0 if counts["missed"] == counts["error"] == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated mutation ids")
    parser.add_argument("--list", action="store_true", help="list the mutations and check their lines, run nothing")
    parser.add_argument("--keep", action="store_true", help="keep the copy (its path is printed)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of the tests")
    args = parser.parse_args()

    mutations = load_mutations(MUTATIONS)
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {m.id for m in mutations}
        if unknown:
            raise SystemExit(f"unknown mutation ids: {', '.join(sorted(unknown))}")
        mutations = [m for m in mutations if m.id in wanted]
    for mutation in mutations:  # every line and test must be where the list says, before anything runs
        if not (REPO / mutation.file).is_file():
            raise SystemExit(f"mutation {mutation.id}: no file {mutation.file}")
        locate(mutation, (REPO / mutation.file).read_text(encoding="utf-8"))
        missing = [t for t in mutation.tests if not (REPO / t.split("::")[0]).exists()]
        if missing:
            raise SystemExit(f"mutation {mutation.id}: no test file {', '.join(missing)}")
    if args.list:
        for m in mutations:
            print(f"{m.id:<34} {m.promise:<18} {m.file}: {m.line.strip()!r} -> {m.replace!r}")
        print(f"{len(mutations)} mutations, every line found")
        return 0

    has_kit = kit_available()
    checkable = [m for m in mutations if "kit" not in m.needs or has_kit]
    copy = Path(tempfile.mkdtemp(prefix="kitmlflow-mutate-"))
    try:
        copy_project(copy)
        env = environment(copy)
        check_the_copy_is_imported(copy, env)
        print(f"copy: {copy}; {len(checkable)} of {len(mutations)} mutations checkable here", flush=True)
        if not args.no_baseline:
            for tests, k in sorted({(m.tests, m.k or "") for m in checkable}):
                code, output = run_tests(copy, env, tests, k or None)
                if code != 0:
                    print(output[-4000:])
                    raise SystemExit(f"{' '.join(tests)} -k {k!r} does not pass unmutated: fix that first")
            print("baseline: the listed tests pass unmutated", flush=True)
        outcomes = []
        for mutation in mutations:
            if mutation not in checkable:
                outcomes.append(Outcome(mutation, "not checkable here", detail="needs the real kit (KIT_BIN)"))
                continue
            outcome = mutate_one(mutation, copy, env)
            print(f"{outcome.result:>8}  {mutation.id} ({outcome.seconds:.0f} s)", flush=True)
            outcomes.append(outcome)
        print()
        return report(outcomes)
    finally:
        if args.keep:
            print(f"kept {copy}")
        else:
            shutil.rmtree(copy, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
