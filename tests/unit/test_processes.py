"""Stopping processes: SIGTERM first, SIGKILL after the grace period, for a Popen and a pid."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator

import pytest

from sisu_kodo.processes import pid_alive, stop_pid, terminate_pid, terminate_processes

# A shell that ignores SIGTERM and says so only once the trap is set.
STUBBORN = ["/bin/sh", "-c", "trap '' TERM; echo ready; exec sleep 600"]
POLITE = ["/bin/sh", "-c", "echo ready; exec sleep 600"]


def started(argv: list[str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    return process


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()
        assert process.stdout is not None
        process.stdout.close()


def test_terminate_processes_sigterms_then_sigkills_the_stubborn(
    spawned: list[subprocess.Popen[bytes]],
) -> None:
    polite, stubborn = started(POLITE), started(STUBBORN)
    spawned += [polite, stubborn]
    terminate_processes([polite, stubborn], grace=0.5)
    assert polite.returncode == -signal.SIGTERM
    assert stubborn.returncode == -signal.SIGKILL


def test_terminate_processes_leaves_exited_children_alone(
    spawned: list[subprocess.Popen[bytes]],
) -> None:
    done = subprocess.Popen(["/bin/true"], stdout=subprocess.PIPE)
    spawned.append(done)
    done.wait()
    terminate_processes([done], grace=0.5)
    assert done.returncode == 0


def test_stop_pid_reports_a_process_that_outlives_the_grace(
    spawned: list[subprocess.Popen[bytes]],
) -> None:
    stubborn = started(STUBBORN)
    spawned.append(stubborn)
    assert stop_pid(stubborn.pid, grace=0.3) is False
    assert pid_alive(stubborn.pid)


def test_terminate_pid_ends_polite_and_stubborn_processes(
    spawned: list[subprocess.Popen[bytes]],
) -> None:
    polite, stubborn = started(POLITE), started(STUBBORN)
    spawned += [polite, stubborn]
    assert stop_pid(polite.pid, grace=30) is True
    terminate_pid(stubborn.pid, grace=0.3)
    assert not pid_alive(polite.pid) and not pid_alive(stubborn.pid)


def test_stop_pid_can_wait_on_another_sign_of_the_end(
    spawned: list[subprocess.Popen[bytes]],
) -> None:
    polite = started(POLITE)
    spawned.append(polite)
    # As for a process that is not our child: its exit shows only in what it leaves behind.
    assert stop_pid(polite.pid, grace=30, stopped=lambda: polite.poll() is not None) is True
    assert polite.returncode == -signal.SIGTERM
