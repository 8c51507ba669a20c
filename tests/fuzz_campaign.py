"""The long fuzz campaign, run by hand: structure-aware mutations of real checkpoints, judged by
the contract (fuzz_harness) and by TensorFlow's own reader.

Run from the repository root (about 3-6 cases a second on one core; TensorFlow loads once)::

    PYTHONPATH=src /work/venv/bin/python tests/fuzz_campaign.py --cases 10000 --out /tmp/fuzz-run
    PYTHONPATH=src /work/venv/bin/python tests/fuzz_campaign.py --replay 4711 --out /tmp/fuzz-run

Seeds: checkpoints written by real TF1 code (Saver V2 and V1, a partitioned variable, Adam slots,
state file, .meta), ``tf.train.Checkpoint`` of a Keras model, a Keras 3 ``.weights.h5`` (built once
into ``--seeds``), and the small checkpoints of ``--corpus`` folders, read in place. Case ``i`` of
``--seed s`` is reproducible (``--replay i``). Each new class of finding is kept under
``OUT/findings/`` with the mutated files and ``case.json``; ``OUT/summary.json`` holds the figures.
Classes: ``signal``, ``hang``, ``blowup``, ``foreign <Type>``, ``cli contract``, ``wrong value``
(breaches) and ``note: ...`` (TensorFlow rejects a file ckptbridge reads, or the reverse: for review).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fuzz_harness as fh  # noqa: E402
from fuzz_mutate import Case, mutate  # noqa: E402
from fuzz_seeds import Seed, build_seeds, corpus_seeds  # noqa: E402

OPS = ["inspect", "load", "verify"]  # + the command lines on one case in 8, the graph for TF2
KIND_WEIGHTS = {"bundle": 6, "v1": 2, "dir": 1.5, "keras": 1}
BREACHES = ("signal", "hang", "blowup", "foreign", "cli contract", "wrong value", "empty message")


def load_seeds(seeds_dir: Path, corpora: list[Path]) -> list[Seed]:
    if not (seeds_dir / "seeds.json").is_file():  # TensorFlow in a child, not in this process
        code = f"import sys; sys.path.insert(0, {str(HERE)!r}); import fuzz_seeds, pathlib; fuzz_seeds.build_seeds(pathlib.Path({str(seeds_dir)!r}))"
        subprocess.run([sys.executable, "-c", code], check=True, env=fh._env({}))
    return build_seeds(seeds_dir) + corpus_seeds(corpora)


def ops_for(seed: Seed, rng: random.Random) -> list[str]:
    extra = ["state"] if seed.kind == "dir" else []
    extra += ["graph"] if seed.kind == "bundle" else []
    return OPS + extra + (["cli_inspect", "cli_verify"] if rng.random() < 0.125 else [])


class Campaign:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = Path(args.out)
        (self.out / "findings").mkdir(parents=True, exist_ok=True)
        self.seeds = load_seeds(Path(args.seeds), [Path(c) for c in args.corpus])
        self.worker = fh.Worker()
        self.tf = fh.TFOracle() if args.tf else None
        self.baseline: dict[str, dict[str, list[Any]]] = {}
        self.classes: Counter[str] = Counter()
        self.examples: dict[str, str] = {}
        self.stats: Counter[str] = Counter()
        self.tmp = Path(tempfile.mkdtemp(prefix="ckptbridge-fuzz-"))

    def base(self, seed: Seed) -> dict[str, list[Any]] | None:
        if seed.name not in self.baseline:
            case = Case.from_seed(seed, self.tmp / "base")
            result = self.worker.run(case.path, ["load"], timeout=120)
            shutil.rmtree(self.tmp / "base")
            values = fh.loaded(result)
            self.baseline[seed.name] = values or {}
            if values is None:
                self.record("note: seed unreadable", seed.name, None, {})
        return self.baseline[seed.name]

    def pick(self, rng: random.Random) -> Seed:
        kinds = [k for k in KIND_WEIGHTS if any(s.kind == k for s in self.seeds)]
        kind = rng.choices(kinds, [KIND_WEIGHTS[k] for k in kinds])[0]
        generated = [s for s in self.seeds if s.kind == kind and "~" not in s.name]
        pool = (
            generated
            if generated and rng.random() < 0.5
            else [s for s in self.seeds if s.kind == kind]
        )
        return rng.choice(pool)

    def record(self, klass: str, detail: str, case: Case | None, info: dict[str, Any]) -> None:
        key = klass + " | " + re.sub(r"\d+", "N", detail)[:140]
        self.classes[key] += 1
        if key in self.examples or case is None:
            return
        folder = (
            self.out
            / "findings"
            / f"{len(self.examples):03d}-{re.sub(r'[^a-z0-9]+', '-', klass.lower())[:40]}"
        )
        folder.mkdir(parents=True, exist_ok=True)
        for path in case.folder.iterdir():
            if path.is_file() and not path.is_symlink() and path.stat().st_size < 1 << 20:
                shutil.copyfile(path, folder / path.name)
        (folder / "case.json").write_text(
            json.dumps({"class": klass, "detail": detail, **info}, indent=1, default=str)
        )
        self.examples[key] = str(folder)
        print(f"  NEW {key}  ->  {folder.name}", flush=True)

    def run_one(self, index: int) -> None:
        rng = random.Random(f"{self.args.seed}-{index}")
        seed = self.pick(rng)
        baseline = self.base(seed)
        folder = self.tmp / f"case{index}"
        case = Case.from_seed(seed, folder)
        try:
            try:
                steps = mutate(case, rng)
            except Exception as exc:  # a mutator bug must not end a long run: count it, go on
                self.stats[f"harness error {type(exc).__name__}"] += 1
                return
            result = self.worker.run(case.path, ops_for(seed, rng), timeout=self.args.timeout)
            info = {"case": index, "seed": self.args.seed, "seed_name": seed.name, "mutations": steps,
                    "preserving": case.preserving, "result": result}  # fmt: skip
            self.stats["cases"] += 1
            self.stats[f"status {result['status']}"] += 1
            for op in result.get("results", []):
                if op["op"] == "load":
                    self.stats[f"load {op['outcome']}"] += 1
            for klass, detail in fh.problems(result):
                self.record(klass, detail + " via " + _first(steps), case, info)
            ours = fh.loaded(result)
            if ours is not None:
                self.judge_values(case, seed, ours, baseline or {}, result, info, steps)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def judge_values(self, case: Case, seed: Seed, ours: dict[str, list[Any]], baseline: dict[str, list[Any]],
                     result: dict[str, Any], info: dict[str, Any], steps: list[str]) -> None:  # fmt: skip
        prefix = next((op["value"]["prefix"] for op in result["results"]
                       if op["op"] == "inspect" and op["outcome"] == "ok"), str(case.path))  # fmt: skip
        readable_by_tf = seed.kind in ("bundle", "v1", "dir")
        diffs = fh.compare(ours, baseline) if case.preserving and baseline else []
        if case.preserving and not diffs:
            self.stats["values equal to seed"] += 1
            return
        if self.tf is None or not readable_by_tf:
            if diffs:
                self.record("wrong value", f"vs seed: {diffs[0]} via {_first(steps)}", case, info)
            return
        tf = self.tf.read(prefix)
        self.stats["tf consulted"] += 1
        if not tf.get("ok"):
            self.stats["tf rejects, ckptbridge reads"] += 1
            self.record(
                "note: TF rejects, ckptbridge reads",
                f"{tf.get('error', '')[:60]} via {_first(steps)}",
                case,
                {**info, "tf": tf},
            )
            return
        tf_diffs = fh.compare(ours, tf["values"], skip=set(tf["errors"]))
        extra = [d for d in tf_diffs if d.startswith("extra ")]
        if extra and len(extra) == len(tf_diffs):  # damage TF's table seek trips on; the
            # records are intact (their CRCs pass) and TF's has_tensor is False for them
            self.record(
                "note: ckptbridge lists keys TF misses",
                f"{extra[0]} via {_first(steps)}",
                case,
                {**info, "tf": tf},
            )
        elif tf_diffs:
            self.record(
                "wrong value", f"vs TF: {tf_diffs[0]} via {_first(steps)}", case, {**info, "tf": tf}
            )
        else:
            self.stats["values equal to TF"] += 1
            if tf["errors"]:
                self.stats["TF fails some keys ckptbridge reads"] += 1

    def summary(self, seconds: float) -> dict[str, Any]:
        breaches = {k: n for k, n in self.classes.items() if k.startswith(BREACHES)}
        return {"cases": self.stats["cases"], "seconds": round(seconds), "seeds": len(self.seeds),
                "stats": dict(self.stats), "breach_classes": len(breaches), "breaches": breaches,
                "notes": {k: n for k, n in self.classes.items() if k not in breaches},
                "findings": self.examples, "worker_restarts": self.worker.restarts}  # fmt: skip

    def close(self) -> None:
        self.worker.kill()
        if self.tf is not None:
            self.tf.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _first(steps: list[str]) -> str:
    return steps[0].split(":")[0] if steps else "none"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--start", type=int, default=0, help="first case index")
    parser.add_argument("--seed", default="0", help="campaign seed (case i is reproducible)")
    parser.add_argument("--replay", type=int, help="run only case REPLAY, print what happened")
    parser.add_argument("--out", default="/tmp/ckptbridge-fuzz")
    parser.add_argument(
        "--seeds", default=str(Path(tempfile.gettempdir()) / "ckptbridge-fuzz-seeds")
    )
    parser.add_argument(
        "--corpus", nargs="*", default=["/work/shared/corpus", "/work/shared/corpus2"]
    )
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds per case = a hang")
    parser.add_argument("--no-tf", dest="tf", action="store_false", help="no TensorFlow oracle")
    args = parser.parse_args(argv)
    import resource

    limit = 6 << 30  # this process only mutates small files: a safety net for the machine
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    campaign = Campaign(args)
    start = time.monotonic()
    try:
        if args.replay is not None:
            campaign.run_one(args.replay)
            print(json.dumps(campaign.summary(time.monotonic() - start), indent=1))
            return 0
        for n, index in enumerate(range(args.start, args.start + args.cases), 1):
            campaign.run_one(index)
            if n % 200 == 0:
                summary = campaign.summary(time.monotonic() - start)
                print(f"{n} cases, {summary['seconds']} s, breach classes {summary['breach_classes']}, "
                      f"stats {dict(campaign.stats)}", flush=True)  # fmt: skip
                (campaign.out / "summary.json").write_text(json.dumps(summary, indent=1))
    finally:
        summary = campaign.summary(time.monotonic() - start)
        (campaign.out / "summary.json").write_text(json.dumps(summary, indent=1))
        campaign.close()
    print(json.dumps(summary, indent=1))
    return 1 if summary["breach_classes"] else 0


if __name__ == "__main__":
    sys.exit(main())
