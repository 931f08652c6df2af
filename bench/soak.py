"""Fault soak: the real daemon against the loopback fakes under faults, for N minutes.

Runs the scripted organisation of ``tests/reliability/soak_rig.py`` twice side by side, on
fresh PostgreSQL databases: a clean run and one with faults injected in every step (429
storms with and without Retry-After, 5xx bursts, answers slower than the 30 s timeout,
connection resets, truncated JSON, expired sync tokens, a revoked credential, duplicated
and reordered webhooks, the database taken away, ``kill -9`` of the daemon and a restart).
Steps go on until N minutes have passed (the step in hand and the final catching-up come on
top); then the faults stop, every source is polled once more, and the two end states are
compared. Prints deliveries, changes, faults injected by
kind, differences (target: zero), lost deliveries (target: zero) and secrets found in the
daemon's log (target: none). Exits 1 when any of those is not zero.

    .venv/bin/python bench/soak.py [--minutes 10] [--seed 1] [--changes 12]
        [--applications 300] [--no-slow] [--keep DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.reliability.soak_rig import FAULT_KINDS, RunResult, compare, run_pair  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--changes", type=int, default=12, help="changes per step")
    parser.add_argument("--applications", type=int, default=300, help="at the start")
    parser.add_argument("--steps", type=int, default=None, help="instead of --minutes")
    parser.add_argument("--faults-per-step", type=int, default=1)
    parser.add_argument("--extra-faults", type=float, default=0.5,
                        help="chance of each further random fault in a step")
    parser.add_argument("--no-slow", action="store_true", help="no answers past the timeout")
    parser.add_argument("--keep", type=Path, default=None, help="keep logs in this directory")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="taskplanner-soak-") as scratch:
        workdir = args.keep or Path(scratch)
        started = time.monotonic()
        clean, faulted = run_pair(
            workdir, seed=args.seed, steps=args.steps,
            minutes=None if args.steps else args.minutes, changes_per_step=args.changes,
            applications=args.applications, slow=not args.no_slow,
            faults_per_step=args.faults_per_step, extra_faults=args.extra_faults,
            say=lambda line: print(f"  [{time.monotonic() - started:6.1f}s] {line}", flush=True),
        )
        differences = compare(clean, faulted)
        report(clean, faulted, differences, time.monotonic() - started)
    bad = any([differences, faulted.lost_deliveries, clean.lost_deliveries,
               faulted.leaked_secrets, clean.leaked_secrets,
               faulted.crashed_polls, clean.crashed_polls])
    return 1 if bad else 0


def report(clean: RunResult, faulted: RunResult, differences: list[str], seconds: float
           ) -> None:
    print(f"soak: {faulted.steps} steps, {seconds / 60:.1f} min "
          f"(clean run {clean.seconds:.0f}s, faulted run {faulted.seconds:.0f}s)")
    print(f"changes to the organisation: {sum(faulted.changes.values())} "
          + ", ".join(f"{k}={v}" for k, v in sorted(faulted.changes.items())))
    print(f"mirror rows: {sum(len(rows) for rows in faulted.mirror.values())}, "
          f"tasks: {sum(faulted.tasks.values())} ({len(faulted.open_tasks)} open)")
    for name, run in (("clean", clean), ("faulted", faulted)):
        d = run.deliveries
        print(f"webhook deliveries ({name}): sent={d['sent']} acknowledged={d['acknowledged']} "
              f"not_acknowledged={d['not_acknowledged']} redelivered={d['redelivered']}")
    print(f"daemon starts (faulted): {faulted.daemon_starts}, exits by itself: "
          f"{faulted.daemon_crashes}; steps that did not settle: {faulted.unsettled_steps}; "
          f"polls that crashed (sync_crashed): {faulted.crashed_polls + clean.crashed_polls}")
    print("faults injected by kind:")
    for kind in FAULT_KINDS:
        print(f"  {kind:32} {faulted.faults[kind]}")
    print(f"faults injected: {sum(faulted.faults.values())}")
    print(f"differences: {len(differences)}")
    for line in differences[:200]:
        print(f"  {line}")
    print(f"lost deliveries: {len(faulted.lost_deliveries) + len(clean.lost_deliveries)}")
    leaked = sorted({*faulted.leaked_secrets, *clean.leaked_secrets})
    print(f"secrets in the daemon logs: {len(leaked)}" + (f" ({', '.join(leaked)})" if leaked
                                                         else ""))


if __name__ == "__main__":
    sys.exit(main())
