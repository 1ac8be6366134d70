"""Canonical JSON and content hashes: the one definition every identity and sha256 uses.

Canonical JSON here is sorted keys, compact separators, UTF-8 without ASCII
escaping; identical inputs give identical bytes across processes and restarts.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_hex(data: bytes | str) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


def content_hash(value: Any) -> str:
    """sha256 of a JSON value's canonical form."""
    return sha256_hex(canonical_json(value))
