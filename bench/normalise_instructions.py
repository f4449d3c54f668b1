"""Instructions per webhook the normaliser spends (parse and store), counted by callgrind.

bench/instructions.py counts a whole server under wrk, so its "acknowledged and normalised"
figure also counts what the idle event loop does while the backlog drains, which moves with
the host's load. This drains a fixed backlog of the ingress benchmark's WhatsApp webhooks
(bench/ingress.py) through the normaliser alone, without pauses, and counts only that: the
figure repeats to within a percent whatever else the host is doing.

    python bench/normalise_instructions.py [--webhooks 400]

Compare two trees by running it with `PYTHONPATH=<tree>` from each. Needs valgrind.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ingress import webhook

WARM_UP = 64


def instrument(switch: str) -> None:
    """Start or stop counting this process's instructions (callgrind_control --instr=on|off)."""
    subprocess.run(["callgrind_control", f"--instr={switch}", str(os.getpid())], check=True)


async def drain(count: int, work: Path, counting: bool) -> None:
    from adapters.whatsapp import WhatsAppAdapter, WhatsAppConfig
    from gateway.pipeline.normaliser import Normaliser
    from gateway.store import Store, sqlite_database

    store = Store(sqlite_database(work / "normalise.db"))
    store.start()
    config = WhatsAppConfig(
        id="wa",
        type="whatsapp",
        phone_number_id="106540352242922",
        access_token="bench-token",
        app_secret="bench-secret",
        verify_token="bench-verify",
    )
    adapter = WhatsAppAdapter(config)
    normaliser = Normaliser(store, {"wa": adapter}, lambda _t: ["backend"], 0.1)
    for i in range(WARM_UP + count):
        body = webhook(i)
        await store.append_inbox("wa", adapter.dedupe_key(body), "u", "{}", body, time.time())
    warm_up = await store.claim_inbox(WARM_UP, time.time(), 30)
    await normaliser._normalise(warm_up, time.time())  # imports and caches: not counted
    if counting:
        instrument("on")
    while await normaliser.run_once():
        pass
    if counting:
        instrument("off")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--webhooks", type=int, default=400)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gateway-normalise-"))
    try:
        if args.child:
            asyncio.run(drain(args.webhooks, work, counting=True))
            return
        if shutil.which("valgrind") is None:
            raise SystemExit("valgrind is not installed (apt-get install valgrind)")
        out = work / "callgrind.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out}.%p",
                sys.executable,
                __file__,
                "--child",
                "--webhooks",
                str(args.webhooks),
            ],
            check=True,
            capture_output=True,
        )
        total = sum(
            int(m.group(1))
            for dump in work.glob("callgrind.out.*")
            if (m := re.search(r"^totals:\s+(\d+)", dump.read_text(errors="replace"), re.M))
        )
        print(f"normaliser: {total / args.webhooks / 1e3:.0f}k instructions per webhook")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
