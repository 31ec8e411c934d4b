"""Mutation testing of the modules whose promises matter most, each against its targeted tests only (mutmut 3).

    python scripts/mutate.py                      # every group, in order, each within its own budget
    python scripts/mutate.py policy checkpoint    # some groups
    python scripts/mutate.py policy --only 'rec_es/policy/rules/*.py' --minutes 30
    python scripts/mutate.py per_user --survivors   # after adding tests: re-check what the last run left alive
    python scripts/mutate.py per_user --rerun NAME [NAME ...]   # re-check named mutants (or 'module.x_func*')
    python scripts/mutate.py policy --plant 'rec_es.policy.policy.x__hooked*'   # plant by hand, in a new process
    python scripts/mutate.py --report             # the kill-rate table of docs/benchmarks.md, from the results

``make mutate`` runs the first form. It is not part of ``make test``: run it before closing an issue that touches
one of these modules, then triage every survivor in docs/mutation.md (killed by a new test, or equivalent with the
reason). A group is copied (``git ls-files``: tracked and new files, not ignored ones) into ``.mutate/GROUP/`` with a
``[tool.mutmut]`` section naming its files and tests; mutmut copies that into ``mutants/`` and runs each mutant in
a forked process with only the selected tests that executed the mutated function (``-x``, fastest first). One
worker, ``nice -n 10``, ``OMP_NUM_THREADS=1``: the machine is shared. A run cut by its budget keeps what it did;
the same command continues it (``--fresh`` starts over). Results go to ``docs/results/mutation/GROUP.json``
(every mutant's status); ``--report`` turns them and the equivalent-mutant table of docs/mutation.md into kill
rates per module. mutmut mutates inside functions and methods only: module-level constants (a verdict threshold)
need tests at literal boundary values instead (docs/mutation.md).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from fnmatch import fnmatchcase
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: mutmut's copies (``REC_ES_MUTATE_WORK``: another directory, to run two passes of one group side by side)
WORK = Path(os.environ.get("REC_ES_MUTATE_WORK", REPO / ".mutate"))
RESULTS = REPO / "docs" / "results" / "mutation"
TRIAGE = REPO / "docs" / "mutation.md"
#: what the tests read besides rec_es/ and tests/ (the tiny dataset, recorded results, scripts they import)
ALSO_COPY = ["docs", "datasets", "scripts", "properties", "README.md"]
MUTMUT = str(Path(sys.executable).with_name("mutmut"))


@dataclass(frozen=True)
class Group:
    """Files to mutate (globs under the repo), the tests that guard them (pytest arguments) and a budget.

    ``slow``: tests left out of a first pass (their node ids); the mutants that pass survive it go through a second
    pass with every test. A surviving mutant runs every test that executed its function, so one slow test paid per
    survivor dominates a run; most mutants die on the fast tests."""

    mutate: tuple[str, ...]
    tests: tuple[str, ...]
    minutes: int
    slow: tuple[str, ...] = ()


#: Each group's tests run in seconds to a minute unmutated. ``resume``'s first pass takes apart one run and resumes
#: another, both trained once per mutmut run (REC_ES_TEST_RUN_CACHE); its second pass, for what survives that,
#: trains runs in every fork (a minute or more per mutant), so the group runs last. Only tests that train in the
#: test process count: mutmut's switched-on mutant does not reach a subprocess (test_run.py's kill-and-resume).
GROUPS = {
    "policy": Group(("rec_es/policy/*.py", "rec_es/policy/rules/*.py"),
                    ("tests/policy", "tests/test_schedule.py", "tests/test_target_ce_rows.py",
                     # the property-file reference table (schema.main, with_table) is checked against docs/
                     "tests/test_readme.py::test_reference_table_lists_every_key_with_type_and_default",
                     "tests/test_readme.py::test_reference_table_is_the_generated_one",
                     "tests/test_readme.py::test_table_regenerates_from_a_stale_copy",
                     "tests/test_readme.py::test_policy_tables_are_copies_of_the_generated_one"), 150,
                    slow=("tests/policy/test_invariants.py::test_strategy_reaches_every_path",
                          "tests/policy/test_invariants.py::test_state_roundtrip_changes_nothing",
                          "tests/policy/test_invariants.py::test_reuse_after_reset_equals_fresh",
                          "tests/policy/test_invariants.py::test_held_stops_roundtrip_and_reset",
                          "tests/policy/test_invariants.py::test_held_stops_are_reached",
                          "tests/policy/test_learning.py::test_recorded_runs_end_level_is_covered_near_nominal",
                          "tests/policy/test_references.py::test_recbole_legacy_matches_recbole")),
    "checkpoint": Group(("rec_es/rundir/checkpoint.py",),
                        ("tests/test_checkpoint.py",
                         "tests/security/test_planted_pickles.py::test_checkpoint_load_refuses_a_planted_pickle"), 15),
    "per_user": Group(("rec_es/rundir/per_user.py",), ("tests/test_per_user.py",), 20),
    "replay": Group(("rec_es/replay.py",), ("tests/test_replay.py", "tests/test_hostile_traces.py"), 20),
    "verdict": Group(("rec_es/explain/verdict.py",), ("tests/test_explain_verdict.py",), 30),
    "resume": Group(("rec_es/training/resume.py", "rec_es/training/resume_check.py"),
                    ("tests/test_resume_check.py", "tests/test_resume_apply.py", "tests/test_resume_read.py",
                     "tests/test_resume_save.py",
                     "tests/security/test_refused_resume.py",
                     "tests/integration/test_resume_repeats.py",
                     "tests/security/test_planted_links.py", "tests/security/test_planted_pickles.py",
                     "tests/integration/test_run.py::test_resume_finished_run_under_another_policy",
                     "tests/integration/test_run.py::test_resume_under_another_policy_reports_one_best_epoch",
                     "tests/integration/test_restore_average.py::test_a_resumed_run_restores_the_same_average"), 120,
                    slow=("tests/security/test_planted_links.py", "tests/security/test_planted_pickles.py",
                          "tests/integration/test_run.py", "tests/integration/test_restore_average.py")),
}
#: mutmut's exit-code statuses counted as killed (a test failed, the mutant hung, or it crashed the interpreter)
KILLED = {"killed", "timeout", "segfault", "caught by type check"}
#: the status of a mutant no run has reached yet (a budget cut the run, or its file was not selected)
NOT_RUN = "not checked"


def sources() -> list[str]:
    """The repository's files as git sees them: tracked, plus new files that are not ignored."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if (REPO / line).is_file()]


def copy_tree(dest: Path) -> None:
    """Copy (or refresh) the repository's files into ``dest``; ``dest/mutants`` (mutmut's state) is kept."""
    for rel in sources():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target)


def prepare(dest: Path, group: Group, only: list[str] | None = None, deselect: tuple[str, ...] = ()) -> None:
    """Copy today's tree into ``dest`` (``copy_tree``) and give it the group's ``[tool.mutmut]`` section."""
    copy_tree(dest)
    (dest / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text() + mutmut_section(group, only, deselect))


def environment(**extra: str) -> dict[str, str]:
    """This process's environment for a test run: one thread per library, no inherited PYTHONPATH (mutmut puts
    mutants/ first on sys.path itself, and an inherited one could shadow it), plus ``extra``."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra}


def mutmut_section(group: Group, only: list[str] | None, deselect: tuple[str, ...] = ()) -> str:
    """The ``[tool.mutmut]`` section of the group's copy (``deselect``: node ids pytest leaves out)."""
    def toml_list(items: list[str] | tuple[str, ...]) -> str:
        return "[" + ", ".join(json.dumps(x) for x in items) + "]"

    return (f"\n[tool.mutmut]\nsource_paths = [\"rec_es\"]\nalso_copy = {toml_list(ALSO_COPY)}\n"
            f"only_mutate = {toml_list(only or group.mutate)}\n"
            f"pytest_add_cli_args_test_selection = {toml_list(group.tests)}\n"
            f"pytest_add_cli_args = {toml_list(['-p', 'no:cacheprovider', *(f'--deselect={d}' for d in deselect)])}\n")


def mutmut(dest: Path, *args: str, timeout: float | None = None) -> int:
    """Run mutmut in ``dest`` with one worker, niced, one thread per library; output to ``dest/mutmut.log``.
    Past ``timeout`` seconds its whole process group (the forked mutants too) is stopped; its results so far stay.
    ``REC_ES_TEST_RUN_CACHE`` (``dest/test-cache``, emptied first) lets a test module that trains a run to take
    apart train it once per mutmut run instead of once per forked mutant (tests/conftest.py: ``trained_once``)."""
    cache = dest / "test-cache"
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir()
    env = environment(REC_ES_TEST_RUN_CACHE=str(cache))
    command = ["nice", "-n", "10", MUTMUT, *args]
    with open(dest / "mutmut.log", "a") as log:
        proc = subprocess.Popen(command, cwd=dest, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            print(f"  budget reached after {(timeout or 0) / 60:.0f} minutes: results so far kept", flush=True)
            return -1


def statuses(dest: Path) -> dict[str, str]:
    """mutant name -> status, from ``mutmut results --all true``."""
    out = subprocess.run([MUTMUT, "results", "--all", "true"], cwd=dest,
                         capture_output=True, text=True, check=True).stdout
    found = (re.match(r"\s+(\S+): (.+)$", line) for line in out.splitlines())
    return {m.group(1): m.group(2).strip() for m in found if m}


def mutated_lines(dest: Path, names: list[str]) -> dict[str, str]:
    """mutant name -> the line(s) it puts in place (the ``+`` lines of ``mutmut show``), one line."""
    lines = {}
    for name in names:
        out = subprocess.run([MUTMUT, "show", name], cwd=dest, capture_output=True, text=True, check=True).stdout
        plus = [line[1:].strip() for line in out.splitlines() if line.startswith("+") and not line.startswith("+++")]
        lines[name] = " / ".join(plus)
    return lines


def run_group(name: str, *, only: list[str] | None, minutes: float | None, fresh: bool, rerun: list[str]) -> None:
    """Run one group: a first pass without its slow tests (if it has any), then its survivors with every test."""
    group = GROUPS[name]
    start = time.monotonic()
    budget = (minutes if minutes is not None else group.minutes) * 60
    passes = [(WORK / name, group.slow), (WORK / f"{name}.all", ())] if group.slow else [(WORK / name, ())]
    named = set(rerun)
    for i, (dest, deselect) in enumerate(passes):
        if i > 0:  # the second pass: what survived the first, of the named mutants or the files mutated
            mutants = json.loads((RESULTS / f"{name}.json").read_text())["mutants"]
            rerun = [m for m, status in mutants.items() if status not in KILLED and status != NOT_RUN
                     and (not named or any(fnmatchcase(m, n) for n in named))
                     and any(fnmatchcase(module_of(m), glob) for glob in only or group.mutate)]
            if not rerun:
                break
        if fresh and dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True, exist_ok=True)
        prepare(dest, group, only, deselect)
        left = budget - (time.monotonic() - start)
        what = f"{len(rerun)} mutants" if rerun else ", ".join(only or group.mutate)
        print(f"{name}: mutating {what} against {' '.join(group.tests)}"
              f"{f' without {len(deselect)} slow tests' if deselect else ''}; {left / 60:.0f} min left of the "
              f"budget; log {dest / 'mutmut.log'}", flush=True)
        if left <= 0:
            break
        mutmut(dest, "run", "--max-children", "1", *rerun, timeout=left)
        write_results(name, group, dest, time.monotonic() - start, keep=rerun or None)


def write_results(name: str, group: Group, dest: Path, seconds: float, keep: list[str] | None = None) -> None:
    """Merge ``dest``'s statuses into ``docs/results/mutation/NAME.json`` (``keep``: take only the mutants these
    names or ``fnmatch`` patterns match); a mutant not reached this time keeps the status an earlier run gave it. A
    pattern (``rec_es.policy.stats.x_wilcoxon*``: a changed function, whose mutants mutmut renumbers) first drops
    the recorded mutants it matches."""
    found = statuses(dest)
    if keep is not None:
        found = {m: s for m, s in found.items() if any(fnmatchcase(m, k) for k in keep)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    before = json.loads(path.read_text()) if path.exists() else {}
    mutants, lines = before.get("mutants", {}), before.get("survivor_lines", {})
    patterns = [k for k in keep or () if "*" in k]
    mutants = {m: s for m, s in mutants.items() if not any(fnmatchcase(m, k) for k in patterns)}
    for mutant, status in found.items():
        if status != NOT_RUN or mutant not in mutants:
            mutants[mutant] = status
    # a changed function renumbers its mutants: a listed survivor whose mutation is not the one recorded under its
    # name has a triage row (docs/mutation.md) written for another mutant. Only listed ones are shown (a second
    # each): a first pass leaves hundreds of survivors no row describes yet
    listed = equivalents()
    now = mutated_lines(dest, [m for m, s in found.items() if s not in KILLED and s != NOT_RUN and m in listed])
    for mutant, line in now.items():
        if lines.get(mutant, line) != line:
            print(f"  {mutant} is now `{line}`, recorded as `{lines[mutant]}`: its row in docs/mutation.md was "
                  "written for another mutant", flush=True)
    lines = {m: l for m, l in {**lines, **now}.items() if mutants.get(m) not in KILLED | {None}}
    path.write_text(json.dumps({"tool": f"mutmut {version('mutmut')}", "mutate": list(group.mutate),
                                "tests": list(group.tests), "slow_in_second_pass": list(group.slow),
                                "mutants": dict(sorted(mutants.items())),
                                "survivor_lines": dict(sorted(lines.items()))}, indent=1) + "\n")
    counts: dict[str, int] = {}
    for status in found.values():
        counts[status] = counts.get(status, 0) + 1
    print(f"{name}: {counts} after {seconds / 60:.1f} min -> {path.relative_to(REPO)}", flush=True)


def plant(name: str, patterns: list[str]) -> int:
    """Plant each recorded mutant of group ``name`` matching ``patterns`` in the group's copy (``mutmut apply``), run
    the group's fast tests on it in a new process (``-x``), put the file back; print killed or survived for each.

    For what mutmut cannot see: code that runs when a module is imported (a class body, a validator built at import)
    runs before mutmut switches a mutant on, so mutmut reports it survived or reached by no test. A new process
    imports the planted code. A killed one gets a ``killed: ... (planted by hand)`` row in docs/mutation.md."""
    group, dest = GROUPS[name], WORK / name
    if not (dest / "mutants").is_dir():
        raise SystemExit(f"{name}: no mutmut state in {dest}: run the group first")
    prepare(dest, group)  # today's tests and sources (the copy may predate them)
    mutants = sorted(m for m in statuses(dest) if any(fnmatchcase(m, p) for p in patterns))
    env = environment(PYTHONPATH=str(dest))
    survived = 0
    for mutant in mutants:
        source = module_of(mutant)
        try:
            subprocess.run([MUTMUT, "apply", mutant], cwd=dest, check=True,
                           capture_output=True)
            run = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                                  *(f"--deselect={d}" for d in group.slow), *group.tests],
                                 cwd=dest, env=env, capture_output=True, text=True)
        finally:
            shutil.copy2(REPO / source, dest / source)
        failed = next((line for line in run.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))), "")
        survived += run.returncode == 0
        print(f"{'survived' if run.returncode == 0 else 'killed'}: {mutant} {failed}", flush=True)
    return 1 if survived else 0


def equivalents() -> dict[str, str]:
    """Mutant name -> reason, from the rows of docs/mutation.md's tables (``| `name` | ...``); a reason that starts
    with ``killed`` names the test that kills a mutant mutmut's stale record did not run it against."""
    if not TRIAGE.exists():
        return {}
    rows = (re.match(r"\|\s*`([^`]+__mutmut_\d+)`\s*\|(.*)\|\s*$", line) for line in TRIAGE.read_text().splitlines())
    return {m.group(1): m.group(2).strip() for m in rows if m}


def module_of(mutant: str) -> str:
    """``rec_es.policy.monitor.x_metric_mode__mutmut_3`` -> ``rec_es/policy/monitor.py`` (a package: its
    ``__init__.py``)."""
    base = "/".join(p for p in mutant.split(".") if not p.startswith("x"))
    return f"{base}/__init__.py" if (REPO / base).is_dir() else f"{base}.py"


def report() -> int:
    """Print the kill-rate table per module; list survivors that docs/mutation.md does not explain. Exit 1 if any.
    Mutants a budget cut before they ran (``not checked``) are counted apart, outside the rate."""
    equivalent = equivalents()
    print("| module | mutants | run | killed | equivalent | not killed | killed of non-equivalent |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    untriaged: list[str] = []
    total = {"all": 0, "run": 0, "killed": 0, "eq": 0}
    for path in sorted(RESULTS.glob("*.json")):
        mutants = json.loads(path.read_text())["mutants"]
        by_module: dict[str, list[tuple[str, str]]] = {}
        for mutant, status in mutants.items():
            by_module.setdefault(module_of(mutant), []).append((mutant, status))
        for module, rows in sorted(by_module.items()):
            ran = [(m, "killed" if equivalent.get(m, "").startswith("killed") else s) for m, s in rows if s != NOT_RUN]
            killed = sum(s in KILLED for _, s in ran)
            eq = sum(s not in KILLED and m in equivalent for m, s in ran)
            left = [m for m, s in ran if s not in KILLED and m not in equivalent]
            untriaged += [f"{m}: {mutants[m]}" for m in left]
            rate = f"{100 * killed / (len(ran) - eq):.1f} %" if len(ran) > eq else "-"
            print(f"| {module} | {len(rows)} | {len(ran)} | {killed} | {eq} | {len(left)} | {rate} |")
            for key, n in (("all", len(rows)), ("run", len(ran)), ("killed", killed), ("eq", eq)):
                total[key] += n
    if total["run"] > total["eq"]:
        rate = total["killed"] / (total["run"] - total["eq"])
        print(f"| all | {total['all']} | {total['run']} | {total['killed']} | {total['eq']} | {len(untriaged)} | "
              f"{100 * rate:.1f} % |")
    if untriaged:
        print(f"\n{len(untriaged)} mutants neither killed nor explained in docs/mutation.md:", file=sys.stderr)
        print("\n".join(f"  {u}" for u in untriaged), file=sys.stderr)
    return 1 if untriaged else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("groups", nargs="*", metavar="GROUP", help=f"groups to run, in order (default all: {', '.join(GROUPS)})")
    ap.add_argument("--only", action="append", help="mutate only files matching this glob (repeatable)")
    ap.add_argument("--minutes", type=float, help="budget of each group in minutes (default: the group's own)")
    ap.add_argument("--fresh", action="store_true", help="discard the group's earlier mutmut state")
    ap.add_argument("--rerun", nargs="+", default=[], metavar="MUTANT",
                    help="re-check these mutants only (names or fnmatch patterns: 'rec_es.policy.stats.x_wilcoxon*' "
                         "re-checks a changed function, whose mutants are renumbered)")
    ap.add_argument("--survivors", action="store_true",
                    help="re-check the mutants the group's results record as not killed (after adding tests)")
    ap.add_argument("--plant", nargs="+", default=[], metavar="MUTANT",
                    help="plant these mutants (names or fnmatch patterns) one at a time and run the group's fast "
                         "tests in a new process: for code mutmut cannot see, which runs at import")
    ap.add_argument("--report", action="store_true", help="print kill rates from docs/results/mutation")
    args = ap.parse_args(argv)
    unknown = [g for g in args.groups if g not in GROUPS]
    if unknown:
        ap.error(f"unknown group {', '.join(unknown)} (choose from {', '.join(GROUPS)})")
    if args.report:
        return report()
    if args.plant:
        return max([plant(name, args.plant) for name in args.groups or list(GROUPS)] or [0])
    for name in args.groups or list(GROUPS):
        rerun = list(args.rerun)
        if args.survivors:
            done = RESULTS / f"{name}.json"
            mutants = json.loads(done.read_text())["mutants"] if done.exists() else {}
            rerun += [m for m, status in mutants.items() if status not in KILLED and status != NOT_RUN]
            if not rerun:
                print(f"{name}: no survivors to re-check")
                continue
        run_group(name, only=args.only, minutes=args.minutes, fresh=args.fresh, rerun=rerun)
    return report()


if __name__ == "__main__":
    sys.exit(main())
