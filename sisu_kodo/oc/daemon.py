"""The OpenCode daemon: install the pinned `opencode-ai`, start and stop `opencode serve`.

The server runs bound to 127.0.0.1:OC_SERVER_PORT with a generated basic-auth password,
a private HOME under SISU_DATA_DIR/opencode, no self-update, no model-catalog fetch, no
default plugins, no LSP downloads, a minimal environment (no inherited *_API_KEY), and
only the provider our settings name.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sisu_kodo.config import APP_NAME, Settings
from sisu_kodo.deadlines import WaitTimeout, wait_until
from sisu_kodo.oc import providers
from sisu_kodo.processes import read_live_pid, terminate_pid

OPENCODE_VERSION = "1.18.33"
LISTENING = re.compile(r"opencode server listening on (http://\S+)")
NPM_TIMEOUT_SECONDS = 600.0
STOP_GRACE_SECONDS = 10.0
_OFFLINE_FLAGS = {
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_MODELS_FETCH": "1",
    "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
    "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
    "OPENCODE_DISABLE_PROJECT_CONFIG": "1",
    "OPENCODE_DISABLE_CLAUDE_CODE": "1",
}


class DaemonError(Exception):
    """The daemon could not be installed, started or stopped; the message says why."""


@dataclass(frozen=True)
class DaemonPaths:
    root: Path

    @classmethod
    def of(cls, settings: Settings) -> DaemonPaths:
        return cls(settings.topology.resolved_data_dir / "opencode")

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def pid_file(self) -> Path:
        return self.root / "opencode.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "opencode.log"

    @property
    def password_file(self) -> Path:
        return self.root / "server-password"


@dataclass(frozen=True)
class DaemonStatus:
    pid: int
    url: str
    log_path: Path
    started: bool


# ---- the binary ---------------------------------------------------------------------------


def cache_dir(settings: Settings) -> Path:
    if settings.planner.oc_cache_dir is not None:
        return settings.planner.oc_cache_dir
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME)) / "opencode"


def _platform_package() -> str:
    system = {"Linux": "linux", "Darwin": "darwin", "Windows": "windows"}.get(platform.system())
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower()
    )
    if system is None or arch is None:
        raise DaemonError(f"no opencode build for {platform.system()}/{platform.machine()}")
    return f"opencode-{system}-{arch}"


def installed_binary(settings: Settings) -> Path:
    """Where the pinned opencode binary is (or would be after `install_opencode`)."""
    if settings.planner.oc_bin is not None:
        return settings.planner.oc_bin
    # The platform package's own binary: it works without opencode-ai's postinstall.
    prefix = cache_dir(settings) / OPENCODE_VERSION
    return prefix / "node_modules" / _platform_package() / "bin" / "opencode"


def install_opencode(settings: Settings) -> Path:
    """The pinned binary, npm-installing `opencode-ai@OPENCODE_VERSION` into the cache first
    when it is not there yet."""
    binary = installed_binary(settings)
    if binary.is_file():
        return binary
    if settings.planner.oc_bin is not None:
        raise DaemonError(f"OC_BIN={binary} does not exist")
    npm = shutil.which("npm")
    if npm is None:
        raise DaemonError("npm is not installed; it is needed to install opencode-ai")
    prefix = cache_dir(settings) / OPENCODE_VERSION
    prefix.mkdir(parents=True, exist_ok=True)
    # Several processes may start at once (workers, parallel test sessions): one installs,
    # the others wait for it and find the binary there.
    with (prefix / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.is_file():
            return binary
        return _npm_install(npm, prefix, binary)


def _npm_install(npm: str, prefix: Path, binary: Path) -> Path:
    command = [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund"]
    try:
        done = subprocess.run(
            [*command, f"opencode-ai@{OPENCODE_VERSION}"],
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise DaemonError(
            f"npm install opencode-ai@{OPENCODE_VERSION} timed out after"
            f" {NPM_TIMEOUT_SECONDS:.0f}s: is the npm registry reachable?"
        ) from exc
    if done.returncode != 0 or not binary.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise DaemonError(
            f"npm install opencode-ai@{OPENCODE_VERSION} into {prefix} failed"
            f" (exit {done.returncode}; is the npm registry reachable?): {' | '.join(tail)}"
        )
    return binary


# ---- configuration ------------------------------------------------------------------------


def opencode_config(settings: Settings) -> dict[str, Any]:
    """The whole server config (passed as OPENCODE_CONFIG_CONTENT)."""
    model = f"{settings.planner.oc_provider}/{settings.planner.oc_model}"
    return {
        "$schema": "https://opencode.ai/config.json",
        "model": model,
        "small_model": model,
        "autoupdate": False,
        "share": "disabled",
        "snapshot": False,
        # Only our provider exists: no catalog default that needs the internet, no leaks.
        "enabled_providers": [settings.planner.oc_provider],
        "provider": providers.provider_config(settings.planner),
    }


def server_password(settings: Settings) -> str | None:
    """OC_SERVER_PASSWORD, else the one the daemon generated; None when neither exists."""
    if settings.planner.oc_server_password is not None:
        return settings.planner.oc_server_password.get_secret_value()
    path = DaemonPaths.of(settings).password_file
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def _private_home(paths: DaemonPaths) -> dict[str, str]:
    """A HOME of the daemon's own; its config dir is pre-seeded so OpenCode does not npm
    install its plugin package at start (no flag disables that)."""
    config = paths.home / ".config"
    seeded = config / "opencode"
    (seeded / "node_modules").mkdir(parents=True, exist_ok=True)
    dependency = {"@opencode-ai/plugin": OPENCODE_VERSION}
    (seeded / "package.json").write_text(json.dumps({"dependencies": dependency}))
    (seeded / "package-lock.json").write_text(
        json.dumps({"lockfileVersion": 3, "packages": {"": {"dependencies": dependency}}})
    )
    homes = {
        "HOME": paths.home,
        "XDG_CONFIG_HOME": config,
        "XDG_DATA_HOME": paths.home / ".local" / "share",
        "XDG_CACHE_HOME": paths.home / ".cache",
        "XDG_STATE_HOME": paths.home / ".local" / "state",
    }
    for folder in homes.values():
        folder.mkdir(parents=True, exist_ok=True)
    return {name: str(folder) for name, folder in homes.items()}


def _ensure_password(settings: Settings, paths: DaemonPaths) -> str:
    password = (
        settings.planner.oc_server_password.get_secret_value()
        if settings.planner.oc_server_password is not None
        else secrets.token_urlsafe(24)
    )
    paths.root.mkdir(parents=True, exist_ok=True)
    fd = os.open(paths.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(password)
    return password


# ---- process management -------------------------------------------------------------------


def live_pid(settings: Settings) -> int | None:
    """The daemon's pid from its pid file, if that process still runs."""
    return read_live_pid(DaemonPaths.of(settings).pid_file)


def start_daemon(settings: Settings) -> DaemonStatus:
    """Start `opencode serve` (or report the one already running) and wait until it listens."""
    paths = DaemonPaths.of(settings)
    url = f"http://127.0.0.1:{settings.planner.oc_server_port}"
    running = live_pid(settings)
    if running is not None:
        return DaemonStatus(running, url, paths.log_file, started=False)
    binary = install_opencode(settings)
    config = opencode_config(settings)
    paths.work.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **_private_home(paths),
        **_OFFLINE_FLAGS,
        "OPENCODE_CONFIG_CONTENT": json.dumps(config),
        "OPENCODE_SERVER_PASSWORD": _ensure_password(settings, paths),
    }
    key = providers.api_key(settings.planner)
    if key is not None:
        env[providers.KEY_ENV] = key
    with paths.log_file.open("wb") as log:
        process = subprocess.Popen(
            [
                str(binary),
                "serve",
                "--hostname",
                "127.0.0.1",
                "--port",
                str(settings.planner.oc_server_port),
            ],
            cwd=paths.work,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    paths.pid_file.write_text(str(process.pid))
    try:
        _wait_listening(process, paths.log_file, settings.planner.oc_startup_timeout_seconds)
    except DaemonError:
        stop_daemon(settings)
        raise
    return DaemonStatus(process.pid, url, paths.log_file, started=True)


def _wait_listening(process: subprocess.Popen[bytes], log_path: Path, timeout: float) -> str:
    """Block until the server prints its listening line: the port opens about a second
    before the HTTP layer answers, and a request in that window can hang forever."""

    def listening_url() -> str | None:
        text = log_path.read_text(errors="replace")
        found = LISTENING.search(text)
        if found:
            return found.group(1)
        if process.poll() is not None:
            tail = " | ".join(text.strip().splitlines()[-3:])
            raise DaemonError(
                f"opencode serve exited with {process.returncode} before listening: {tail}"
                f" (log {log_path})"
            )
        return None

    try:
        return wait_until(listening_url, timeout=timeout, interval=0.1, what="opencode serve")
    except WaitTimeout as exc:
        raise DaemonError(
            f"opencode serve not listening after {timeout:.0f}s (log {log_path})"
        ) from exc


def stop_daemon(settings: Settings, grace: float = STOP_GRACE_SECONDS) -> int | None:
    """SIGTERM the daemon by its pid file (SIGKILL after `grace`); returns its pid or None."""
    paths = DaemonPaths.of(settings)
    pid = live_pid(settings)
    if pid is None:
        paths.pid_file.unlink(missing_ok=True)
        return None
    terminate_pid(pid, grace=grace)
    paths.pid_file.unlink(missing_ok=True)
    return pid
