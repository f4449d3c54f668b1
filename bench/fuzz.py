"""The long fuzz run: many mutated payloads per channel (tests/fuzzing.py), each checked as
the in-suite fuzz test checks it (ingress's dedupe key, the normaliser's events or reason,
`gateway normalize`), counting failures by kind instead of stopping at the first.

    python bench/fuzz.py [--examples 100000] [--channel whatsapp ...] [--save DIR]

Prints, per channel, the examples run, how many were read into events and how many refused,
the failures by kind (with one body of each saved under --save) and the time taken; exits 1
when anything failed.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypothesis import HealthCheck, Phase, given, settings

from gateway.logs import configure_logging
from tests.fuzzing import CHANNELS, adapter_for, check_body, mutated_bodies


def kind_of(exc: BaseException) -> str:
    """A failure's kind: where it was raised and the first line of what it says."""
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    first = (str(exc).splitlines() or [""])[0][:120]
    return f"{type(exc).__name__} at {Path(frame.filename).name}:{frame.lineno}: {first}"


def fuzz(channel: str, examples: int, save: Path | None) -> tuple[Counter[str], Counter[str]]:
    adapter = adapter_for(channel)
    outcomes: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as scratch:
        body_file = Path(scratch) / f"{channel}.body"

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            phases=[Phase.generate],  # count every failure; shrinking is the test's job
            suppress_health_check=list(HealthCheck),
        )
        @given(body=mutated_bodies(channel))
        def run(body: bytes) -> None:
            try:
                outcome = check_body(adapter, body, body_file)
            except Exception as exc:
                kind = kind_of(exc)
                if save is not None and kind not in failures:
                    save.mkdir(parents=True, exist_ok=True)
                    (save / f"{channel}-{len(failures)}.body").write_bytes(body)
                failures[kind] += 1
                return
            outcomes["read" if outcome.reason is None else "refused"] += 1

        run()
    return outcomes, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000, help="per channel")
    parser.add_argument("--channel", action="append", choices=CHANNELS, help="default: all")
    parser.add_argument("--save", type=Path, help="a folder for one body of each failure kind")
    args = parser.parse_args()
    # An adapter's failure is counted by its kind below: its logged traceback would bury them.
    configure_logging("critical", stream=io.StringIO())
    failed = 0
    for channel in args.channel or CHANNELS:
        started = time.perf_counter()
        outcomes, failures = fuzz(channel, args.examples, args.save)
        seconds = time.perf_counter() - started
        total = sum(outcomes.values()) + sum(failures.values())
        print(
            f"{channel}: {total} examples in {seconds:.0f} s ({total / seconds:.0f}/s): "
            f"{outcomes['read']} read, {outcomes['refused']} refused, "
            f"{sum(failures.values())} failed",
            flush=True,
        )
        for kind, count in failures.most_common():
            print(f"  {count:6d}  {kind}", flush=True)
        failed += sum(failures.values())
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
