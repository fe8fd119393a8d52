"""`make demo`: start the sandbox and print the connection values that point Airflow at it."""

from __future__ import annotations

import json

from airflow_provider_linkmsg.sandbox import Sandbox


def main() -> int:
    with Sandbox(seed=0) as sandbox:
        print(json.dumps({"base_url": sandbox.base_url, "connections": sandbox.env()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
