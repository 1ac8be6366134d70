"""Git sources: check that a repository and ref are readable, and clone one shallowly.

Only local paths, `file://` and `https://` URLs are accepted, and git is told to allow
only those protocols (`ext::` and friends would run commands). The git CLI runs with a
fixed PATH, an empty HOME and no prompt, so no host configuration or credential helper
decides what is read.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sisu_kodo.workspaces.archives import TreeBuilder
from sisu_kodo.workspaces.errors import RepositoryUnreadableError, UnknownRefError
from sisu_kodo.workspaces.snapshot import Caps, Entry

GIT_TIMEOUT_S = 120.0
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SAFE_PROTOCOLS = ("-c", "protocol.allow=never", "-c", "protocol.file.allow=always")
_HTTPS = ("-c", "protocol.https.allow=always")
# What git says when the repository is readable but the ref is not in it.
_UNKNOWN_REF_HINTS = ("not found in upstream", "did not match", "reference is not a tree")


@dataclass(frozen=True)
class Clone:
    commit: str
    entries: list[Entry]


def normalised_url(url: str) -> str:
    """The URL git is given: an absolute local path becomes `file://`; others are refused."""
    if url.startswith("/"):
        return Path(url).as_uri()
    if url.startswith(("file://", "https://")):
        return url
    raise RepositoryUnreadableError(
        f"workspace git url {url!r}: only absolute paths, file:// and https:// are accepted",
        {"url": url},
    )


def check_ref(url: str, ref: str | None) -> None:
    """Refuse an unreadable repository, or a branch or tag it does not have.

    A full commit id cannot be checked without fetching; it is accepted here and the
    capture at run start fails the run when the repository lacks it.
    """
    listed = _git(["ls-remote", "--", normalised_url(url)], what=url)
    names = {line.split("\t", 1)[1] for line in listed.splitlines() if "\t" in line}
    wanted = {ref, f"refs/heads/{ref}", f"refs/tags/{ref}"} if ref else set()
    if ref is not None and not names & wanted and not _COMMIT.match(ref):
        raise UnknownRefError(
            f"workspace git ref {ref!r} is not a branch or tag of {url}", {"url": url, "ref": ref}
        )


def clone(url: str, ref: str | None, caps: Caps, *, include_git: bool = False) -> Clone:
    """A shallow clone of `url` at `ref`: the commit it resolved to and the tree's entries."""
    with tempfile.TemporaryDirectory(prefix="sisu-clone-") as scratch:
        target = Path(scratch) / "tree"
        source = normalised_url(url)
        if ref is not None and _COMMIT.match(ref):
            _git(["clone", "--no-checkout", "--", source, str(target)], what=url)
            _git(["-C", str(target), "checkout", "--quiet", ref], what=ref, ref=ref)
        else:
            branch = ["--branch", ref] if ref else []
            _git(
                ["clone", "--depth", "1", *branch, "--no-tags", "--", source, str(target)],
                what=url,
                ref=ref,
            )
        commit = _git(["-C", str(target), "rev-parse", "HEAD"], what=url).strip()
        return Clone(commit=commit, entries=read_tree(target, caps, include_git=include_git))


def read_tree(root: Path, caps: Caps, *, include_git: bool = False) -> list[Entry]:
    """The entries of a folder on disk, checked as an archive's are (links not followed)."""
    tree = TreeBuilder(caps, include_git)
    for folder, subdirs, names in os.walk(root):
        base = Path(folder)
        descend = set()
        for name in sorted(subdirs + names):
            path = base / name
            rel = path.relative_to(root).as_posix()
            checked = tree.path_of(rel)
            if checked is None:  # .git, unless asked for
                continue
            tree.count(rel)
            if path.is_symlink():
                tree.add_symlink(rel, checked, os.readlink(path))
            elif path.is_dir():
                tree.add_dir(checked)
                descend.add(name)
            elif path.is_file():
                tree.add_file(rel, checked, path.read_bytes(), os.access(path, os.X_OK))
        subdirs[:] = sorted(descend)
    return tree.result()


def _git(args: list[str], *, what: str, ref: str | None = None) -> str:
    protocols = (*_SAFE_PROTOCOLS, *_HTTPS)
    with tempfile.TemporaryDirectory(prefix="sisu-git-home-") as home:
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": home,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "LANG": "C",
        }
        try:
            done = subprocess.run(
                ["git", *protocols, *args],
                capture_output=True,
                env=env,
                timeout=GIT_TIMEOUT_S,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RepositoryUnreadableError(
                f"git could not read {what}: {exc}", {"url": what}
            ) from exc
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines() or ["no output"]
        if ref is not None and any(hint in said[-1] for hint in _UNKNOWN_REF_HINTS):
            raise UnknownRefError(f"git ref {ref!r} not found: {said[-1]}", {"ref": ref})
        raise RepositoryUnreadableError(f"git could not read {what}: {said[-1]}", {"url": what})
    return done.stdout.decode(errors="replace")
