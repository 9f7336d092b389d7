"""``multifield.allocator``: freed memory kept at the top of glibc's heap, so that reusing it does not fault
its pages in again."""

import platform
import subprocess
import sys
import textwrap

import pytest

from multifield.allocator import keep_freed_memory

glibc_only = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="mallopt is glibc's")

# Allocates 50 MB in 100 KiB blocks, writes them, frees them, 20 times over; prints the page faults of the first
# round and of the 19 after it.
PROBE = textwrap.dedent("""
    import ctypes, resource, sys
    from multifield.allocator import keep_freed_memory
    if sys.argv[1] == "keep":
        assert keep_freed_memory()
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    faults = []
    for _ in range(20):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        blocks = [libc.malloc(100 * 1024) for _ in range(500)]
        for block in blocks:
            ctypes.memset(block, 1, 100 * 1024)
        for block in reversed(blocks):
            libc.free(block)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(faults[0], sum(faults[1:]))
""")


def _page_faults(mode: str) -> tuple[int, int]:
    env = {"PATH": "/usr/bin:/bin"}  # no MALLOC_* variables from the caller
    result = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, env=env)
    first, later = result.stdout.split()
    return int(first), int(later)


@glibc_only
def test_kept_memory_is_reused_without_faulting_its_pages_in_again():
    (first, later), (kept_first, kept_later) = _page_faults("default"), _page_faults("keep")
    # The first round faults its ~12,800 pages in either way. By default the 19 rounds after it fault pages in
    # again (how many depends on glibc's sliding thresholds); kept, they reuse what the first one faulted in.
    assert first > 10_000 and kept_first > 10_000
    assert later > first
    assert kept_later < kept_first / 10


@glibc_only
def test_a_padding_the_user_set_in_the_environment_is_left_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_TOP_PAD_", "0")
    assert keep_freed_memory() is False
    monkeypatch.delenv("MALLOC_TOP_PAD_")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.top_pad=0")
    assert keep_freed_memory() is False


def test_nothing_changes_without_glibc(monkeypatch):
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    assert keep_freed_memory() is False
