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

# Allocates 50 MB in 100 KiB blocks, writes them, frees them, 20 times over, and prints the page faults it made.
PROBE = textwrap.dedent("""
    import ctypes, resource, sys
    from multifield.allocator import keep_freed_memory
    if sys.argv[1] == "keep":
        assert keep_freed_memory()
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        blocks = [libc.malloc(100 * 1024) for _ in range(500)]
        for block in blocks:
            ctypes.memset(block, 1, 100 * 1024)
        for block in reversed(blocks):
            libc.free(block)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def _page_faults(mode: str) -> int:
    env = {"PATH": "/usr/bin:/bin"}  # no MALLOC_* variables from the caller
    result = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, env=env)
    return int(result.stdout.strip())


@glibc_only
def test_kept_memory_is_reused_without_faulting_its_pages_in_again():
    default, kept = _page_faults("default"), _page_faults("keep")
    # 20 rounds of 50 MB: by default every round faults its ~12,000 pages in again; kept, only the first does.
    assert default > 100_000
    assert kept < default / 4


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
