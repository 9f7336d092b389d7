"""XLA's CPU scheduler flag: added to XLA_FLAGS when importing the package, unless the user set it."""

import os
import subprocess
import sys

from multifield.xla_flags import SCHEDULER_FLAG, set_xla_cpu_flags


def test_adds_the_flag_and_keeps_the_users_flags(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    set_xla_cpu_flags()
    assert os.environ["XLA_FLAGS"] == f"--xla_force_host_platform_device_count=2 {SCHEDULER_FLAG}=false"
    set_xla_cpu_flags()  # once only
    assert os.environ["XLA_FLAGS"].count(SCHEDULER_FLAG) == 1


def test_a_users_own_setting_wins(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", f"{SCHEDULER_FLAG}=true")
    set_xla_cpu_flags()
    assert os.environ["XLA_FLAGS"] == f"{SCHEDULER_FLAG}=true"


def test_importing_the_package_sets_it_before_jax_starts():
    script = "import os, multifield, jax; jax.numpy.ones(1).block_until_ready(); print(os.environ['XLA_FLAGS'])"
    env = {key: value for key, value in os.environ.items() if key != "XLA_FLAGS"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{SCHEDULER_FLAG}=false"
