"""Coverage-guided fuzzing of every parser that reads outside input.

    python bench/fuzz.py [--cases 100000] [--parser NAME|all] [--jobs 2]

Each parser target (``bench/fuzz_targets.py``) runs in its own process, ``--jobs`` at a
time, under atheris (libFuzzer) when it is installed (``pip install -e '.[fuzz]'``), else
under hypothesis with ``max_examples = --cases``. Seeds come from ``tests/fuzz_corpus/<parser>/``
(excerpts of the real switch captures and of test fixtures); inputs the fuzzer finds are kept
in a temporary directory, never in the seed corpus. Every input that makes a target raise is
saved under ``tests/fuzz_regressions/<parser>/`` (at most three per distinct crash site), where
``tests/test_fuzz_regressions.py`` replays it. Prints one row per parser: cases, crashes,
distinct crash sites, seconds. Exit status 1 when anything crashed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CORPUS = ROOT / "tests" / "fuzz_corpus"
REGRESSIONS = ROOT / "tests" / "fuzz_regressions"
MAX_SAVED_PER_SITE = 3
PROJECT_PACKAGES = ["hotdesk", "hotdesk_agi", "hotdesk_pnp", "esl_handlers", "webadmin"]
# Modules the targets exercise, imported under atheris instrumentation.
INSTRUMENTED = ["hotdesk_agi.protocol", "esl_handlers.wire", "hotdesk_pnp.sip", "hotdesk.mac",
                "hotdesk.admin.inventory", "hotdesk.hashing", "hotdesk.admin.importers",
                "webadmin.provisioning", "webadmin.app", "hotdesk.settings",
                "hotdesk.provisioning.render", "hotdesk.provisioning.vendors"]


# -- worker side ----------------------------------------------------------------------------


class Recorder:
    """Counts crashes, saves their inputs by crash site, logs one traceback per site."""

    def __init__(self, parser: str, log_path: Path) -> None:
        self.parser = parser
        self.log_path = log_path
        self.crashes = 0
        self.saved: dict[str, int] = {}
        self.cases = 0

    def site(self, exc: BaseException) -> str:
        frames = traceback.extract_tb(exc.__traceback__)
        # the deepest frame in the project (not the harness): that is where to fix it
        ours = [f for f in frames if f.filename.startswith(str(ROOT))
                and "/.venv/" not in f.filename
                and not f.filename.endswith(("fuzz.py", "fuzz_targets.py"))] or frames
        last = ours[-1] if ours else None
        where = f"{Path(last.filename).name}:{last.lineno}" if last else "?"
        return f"{type(exc).__name__}@{where}"

    def record(self, data: bytes, exc: BaseException) -> None:
        self.crashes += 1
        self.write_stats(self.log_path.with_suffix(".stats"))
        site = self.site(exc)
        count = self.saved.get(site, 0)
        if count >= MAX_SAVED_PER_SITE:
            return
        self.saved[site] = count + 1
        folder = REGRESSIONS / self.parser
        folder.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^A-Za-z0-9]+", "-", site).strip("-")
        name = f"{slug}-{hashlib.sha1(data).hexdigest()[:10]}"  # noqa: S324 - a file name
        if (folder / name).exists():  # the same input found again
            return
        (folder / name).write_bytes(data)
        with self.log_path.open("a") as fh:
            fh.write(json.dumps({"site": site, "file": f"tests/fuzz_regressions/{self.parser}/"
                                 f"{name}", "error": f"{type(exc).__name__}: {exc}"[:300],
                                 "traceback": "".join(traceback.format_exception(exc))[-3000:]})
                     + "\n")

    def write_stats(self, path: Path) -> None:
        path.write_text(json.dumps({"cases": self.cases, "crashes": self.crashes,
                                    "sites": sorted(self.saved)}))


def _guard(target, recorder: Recorder):  # type: ignore[no-untyped-def]
    def run(data: bytes) -> None:
        recorder.cases += 1
        try:
            target(data)
        except Exception as exc:  # every exception is a finding, recorded and survived
            recorder.record(data, exc)
        if recorder.cases % 2000 == 0:
            recorder.write_stats(recorder.log_path.with_suffix(".stats"))
    return run


def _seeds(parser: str) -> list[bytes]:
    folder = CORPUS / parser
    return [p.read_bytes() for p in sorted(folder.iterdir())] if folder.is_dir() else []


def worker(parser: str, cases: int, engine: str, out: Path, max_len: int) -> None:
    import logging

    logging.disable(logging.CRITICAL)  # targets log refusals; the fuzzer's output is the table
    recorder = Recorder(parser, out / f"{parser}.crashes")
    if engine == "atheris":
        import atheris

        with atheris.instrument_imports(include=PROJECT_PACKAGES):
            import importlib

            for name in INSTRUMENTED:
                importlib.import_module(name)
        from bench.fuzz_targets import TARGETS

        target = _guard(TARGETS[parser], recorder)
        work = Path(tempfile.mkdtemp(prefix=f"fuzz-{parser}-", dir=out))
        args = [sys.argv[0], f"-runs={cases}", f"-max_len={max_len}", "-timeout=30",
                f"-artifact_prefix={out}/{parser}-", "-print_final_stats=1", str(work)]
        if (CORPUS / parser).is_dir():
            args.append(str(CORPUS / parser))
        atheris.Setup(args, target)
        atheris.Fuzz()  # exits the process when the runs are done
        return
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    from bench.fuzz_targets import TARGETS

    target = _guard(TARGETS[parser], recorder)
    seeds = _seeds(parser)
    strategy = st.binary(max_size=max_len)
    if seeds:
        strategy = st.one_of(strategy, st.sampled_from(seeds).flatmap(mutations))

    @settings(max_examples=cases, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(data: bytes) -> None:
        target(data)

    run()
    recorder.write_stats(out / f"{parser}.stats")


def mutations(seed: bytes):  # type: ignore[no-untyped-def]
    """Hypothesis stand-in for libFuzzer's mutators: flip, insert, delete, truncate."""
    from hypothesis import strategies as st

    edit = st.tuples(st.sampled_from("fidt"), st.integers(0, max(len(seed), 1)),
                     st.integers(0, 255))

    def apply(edits: list[tuple[str, int, int]]) -> bytes:
        data = bytearray(seed)
        for kind, pos, byte in edits:
            pos = min(pos, len(data))
            if kind == "f" and pos < len(data):
                data[pos] = byte
            elif kind == "i":
                data[pos:pos] = bytes([byte])
            elif kind == "d":
                del data[pos:pos + 1 + byte % 8]
            elif kind == "t":
                del data[pos:]
        return bytes(data)

    return st.lists(edit, max_size=8).map(apply)


# -- parent side ----------------------------------------------------------------------------


def _engine(choice: str) -> str:
    if choice != "auto":
        return choice
    try:
        import atheris  # noqa: F401
    except ImportError:
        return "hypothesis"
    return "atheris"


def run_one(parser: str, cases: int, engine: str, out: Path, max_len: int) -> dict:
    started = time.monotonic()
    log = out / f"{parser}.log"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with log.open("w") as fh:
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", parser,
                               "--cases", str(cases), "--engine", engine, "--out", str(out),
                               "--max-len", str(max_len)], cwd=ROOT, env=env, stdout=fh,
                              stderr=subprocess.STDOUT, check=False)
    seconds = time.monotonic() - started
    text = log.read_text(errors="replace")
    stats_file = out / f"{parser}.stats"
    stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
    done = re.search(r"Done (\d+) runs in", text)
    ran = int(done.group(1)) if done else stats.get("cases", 0)
    crashes = stats.get("crashes", 0)
    sites = list(stats.get("sites", []))
    # libFuzzer itself stops on timeouts, out-of-memory and deadly signals: keep those too.
    for artifact in out.glob(f"{parser}-*"):
        if artifact.is_file() and artifact.suffix not in (".log", ".stats", ".crashes"):
            kind = artifact.name[len(parser) + 1:].split("-")[0]
            folder = REGRESSIONS / parser
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(artifact, folder / f"libfuzzer-{artifact.name[len(parser) + 1:]}")
            crashes += 1
            sites.append(f"libfuzzer-{kind}")
    if proc.returncode != 0 and not sites:
        sites.append(f"worker exit {proc.returncode} (see {log.name})")
    details = []
    crash_log = out / f"{parser}.crashes"
    if crash_log.exists():
        details = [json.loads(line) for line in crash_log.read_text().splitlines()]
    return {"parser": parser, "engine": engine, "cases": ran, "crashes": crashes,
            "sites": sites, "seconds": seconds, "details": details,
            "returncode": proc.returncode}


def main(argv: list[str] | None = None) -> int:
    from bench.fuzz_targets import TARGETS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=100_000, help="cases per parser")
    ap.add_argument("--parser", default="all", help=f"one of {', '.join(TARGETS)} or all")
    ap.add_argument("--jobs", type=int, default=2, help="parsers fuzzed in parallel")
    ap.add_argument("--engine", choices=["auto", "atheris", "hypothesis"], default="auto")
    ap.add_argument("--max-len", type=int, default=8192, help="largest input in bytes")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker, args.cases, args.engine, Path(args.out), args.max_len)
        return 0
    names = list(TARGETS) if args.parser == "all" else args.parser.split(",")
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        ap.error(f"unknown parser {', '.join(unknown)}; choose from {', '.join(TARGETS)}")
    engine = _engine(args.engine)
    out = Path(tempfile.mkdtemp(prefix="hotdesk-fuzz-"))
    print(f"fuzzing {len(names)} parser(s), {args.cases} cases each, engine {engine}, "
          f"{args.jobs} at a time (logs in {out})", flush=True)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        results = list(pool.map(lambda n: run_one(n, args.cases, engine, out, args.max_len),
                                names))
    print()
    print(f"| {'parser':<18} | {'cases':>8} | {'crashes':>7} | {'sites':>5} | {'seconds':>7} |")
    print(f"|{'-' * 20}|{'-' * 10}|{'-' * 9}|{'-' * 7}|{'-' * 9}|")
    for r in results:
        print(f"| {r['parser']:<18} | {r['cases']:>8} | {r['crashes']:>7} | "
              f"{len(r['sites']):>5} | {r['seconds']:>7.1f} |")
    print(f"\nwall time {time.monotonic() - started:.1f} s")
    for r in results:
        for d in r["details"]:
            print(f"\n{r['parser']}: {d['site']} -> {d['file']}\n  {d['error']}")
        for site in r["sites"]:
            if site.startswith(("libfuzzer", "worker")):
                print(f"\n{r['parser']}: {site}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 1 if any(r["crashes"] or r["returncode"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
