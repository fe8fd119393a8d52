"""Benchmarks: each measures ratios side by side in one run (this machine is noisy) and prints them."""
