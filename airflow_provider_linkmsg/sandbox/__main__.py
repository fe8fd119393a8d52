"""``linkmsg-sandbox``: run the sandbox until interrupted, printing its base URL and connections first."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from airflow_provider_linkmsg.sandbox.core import Sandbox


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="linkmsg-sandbox", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: loopback)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic world and fault draws")
    parser.add_argument(
        "--sizes",
        default="{}",
        help='per-vendor sizes as JSON, e.g. \'{"connectsafely": {"conversations": 50}}\'',
    )
    args = parser.parse_args(argv)
    try:
        sizes = json.loads(args.sizes)
    except ValueError as exc:
        parser.error(f"--sizes is not JSON: {exc}")
    if not isinstance(sizes, dict) or not all(isinstance(v, dict) for v in sizes.values()):
        parser.error('--sizes must be a JSON object of objects, e.g. \'{"linkup": {"conversations": 5}}\'')
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before the first line, so a caller may stop us right after
        signal.signal(sig, lambda *_: stop.set())
    sandbox = Sandbox(seed=args.seed, sizes=sizes, host=args.host, port=args.port).start()
    print(
        json.dumps({"base_url": sandbox.base_url, "seed": args.seed, "connections": sandbox.env()}),
        flush=True,
    )
    stop.wait()
    sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
