"""The CPU training allocator tuning: freed tensor memory is reused instead of page-faulted back in."""

import platform
import subprocess
import sys

import pytest

# A training step's pattern: allocate activation-sized tensors (4 x 64 MiB, above the 32 MiB that glibc's dynamic mmap threshold can reach), free them, repeat; prints the
# minor page faults of the repeats after three warm-up cycles.
PROBE = """
import resource, sys, torch
from mtnet.engine.allocator import retain_freed_memory
if sys.argv[1] == "tuned":
    assert retain_freed_memory()
def cycle():
    xs = [torch.ones(16 << 20) for _ in range(4)]
    del xs
for _ in range(3):
    cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    cycle()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc malloc tuning")
def test_retained_memory_is_reused_without_page_faults():
    pages = 3 * (256 << 20) // 4096  # touched by the three measured cycles
    default, tuned = _faults("default"), _faults("tuned")
    assert default > pages // 2  # glibc mmaps fresh blocks: every page faults again
    assert tuned < default // 2  # the freed heap blocks are reused (measured: 0, at most one cycle's pages)
