"""`make bench`: run every benchmark and print one table of figures, ratios and targets."""

from __future__ import annotations

import platform

from bench import bench_sandbox
from bench.common import print_table


def main() -> int:
    rows = [bench_sandbox.run()]
    print_table(
        f"linkmsg benchmarks on {platform.node()} ({platform.machine()}, Python {platform.python_version()})",
        rows,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
