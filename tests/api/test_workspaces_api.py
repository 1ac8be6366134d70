"""POST /workspaces and `inputs.workspace` on a real ledger, in-process (no worker):
good uploads become snapshots; every malicious archive is refused with its code and
leaves no row (not even an audit row) and no blob behind."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from sisu_kodo.blobs import FilesystemBlobStore
from sisu_kodo.blobs.port import Spill
from sisu_kodo.db import artifacts
from sisu_kodo.db.engine import create_engine
from tests.fixtures.archives import symlink_member, tar_of, tar_with, tiny_files_tar, zip_bomb
from tests.fixtures.auth import api_client
from tests.fixtures.postgres import TestDatabases
from tests.fixtures.runs import rows, scalar

pytestmark = pytest.mark.postgres

TAR = {"Content-Type": "application/x-tar"}
MAX_BYTES = 4 << 20


@pytest.fixture(scope="module")
def blob_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("blobs")


@pytest.fixture(scope="module")
def engine_url(databases: TestDatabases) -> str:
    return databases.create()


@pytest.fixture(scope="module")
def client(engine_url: str, blob_dir: Path) -> Iterator[TestClient]:
    with api_client(
        engine_url,
        SISU_BLOB_DIR=str(blob_dir),
        SISU_WORKSPACE_MAX_BYTES=str(MAX_BYTES),
        SISU_WORKSPACE_MAX_UPLOAD_BYTES=str(2 << 20),
    ) as api:
        yield api


@pytest.fixture(scope="module")
def engine(engine_url: str, client: TestClient) -> Iterator[sa.Engine]:
    made = create_engine(engine_url, pool_size=1)
    yield made
    made.dispose()


def writes(engine: sa.Engine, blob_dir: Path) -> tuple[int, int, int, int]:
    """Rows that a request could have written, and blobs on disk."""
    counted = tuple(
        int(scalar(engine, f"SELECT COUNT(*) FROM app.{table}"))
        for table in ("workspaces", "audit_log", "intents")
    )
    blobs = sum(1 for path in blob_dir.rglob("*") if path.is_file())
    return (*counted, blobs)  # type: ignore[return-value]


def test_an_upload_becomes_a_snapshot(
    client: TestClient, engine: sa.Engine, blob_dir: Path
) -> None:
    answer = client.post("/workspaces", content=tar_of({"README.md": b"# hi\n"}), headers=TAR)
    assert answer.status_code == 201, answer.text
    view = answer.json()
    assert (view["fileCount"], view["size"]) == (1, 5)
    sha = view["snapshotSha256"]
    assert (blob_dir / sha[:2] / sha).is_file()
    assert client.get(f"/workspaces/{view['workspaceId']}").json() == view
    multipart = client.post(
        "/workspaces", files={"file": ("ws.tar", tar_of({"README.md": b"# hi\n"}))}
    )
    assert multipart.status_code == 201, multipart.text
    assert multipart.json()["snapshotSha256"] == sha, "the same tree, the same snapshot"


MALICIOUS = {
    "dot-dot": (tar_of({"../x": b"x"}), "archive_unsafe_path", "../x"),
    "absolute": (tar_of({"/etc/passwd": b"x"}), "archive_unsafe_path", "/etc/passwd"),
    "symlink-to-etc": (tar_with(symlink_member("etc", "/etc")), "archive_link_escape", "etc"),
    "many-tiny-files": (tiny_files_tar(100_000), "archive_too_many_entries", None),
    "zip-bomb": (zip_bomb(64 << 20), "archive_too_large", "bomb.bin"),
}


@pytest.mark.parametrize("name", sorted(MALICIOUS))
def test_malicious_archives_write_nothing(
    client: TestClient, engine: sa.Engine, blob_dir: Path, name: str
) -> None:
    raw, code, entry = MALICIOUS[name]
    before = writes(engine, blob_dir)
    answer = client.post("/workspaces", content=raw, headers={"Content-Type": "application/gzip"})
    assert (answer.status_code, answer.json()["code"]) == (400, code), answer.text
    if entry is not None:
        assert answer.json()["details"]["entry"] == entry
    assert writes(engine, blob_dir) == before


def test_uploads_have_their_own_cap_and_media_types(
    client: TestClient, engine: sa.Engine, blob_dir: Path
) -> None:
    before = writes(engine, blob_dir)
    too_big = client.post("/workspaces", content=b"x" * (3 << 20), headers=TAR)
    assert (too_big.status_code, too_big.json()["code"]) == (413, "payload_too_large")
    assert "SISU_WORKSPACE_MAX_UPLOAD_BYTES" in too_big.json()["message"]
    as_json = client.post("/workspaces", json={"not": "an archive"})
    assert (as_json.status_code, as_json.json()["code"]) == (400, "workspace_unsupported_type")
    garbage = client.post("/workspaces", content=b"garbage", headers=TAR)
    assert (garbage.status_code, garbage.json()["code"]) == (400, "archive_unreadable")
    assert writes(engine, blob_dir) == before


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repo")
    script = (
        "git init -q -b main && echo hi > f && git add f"
        " && git -c user.email=t@t -c user.name=t commit -qm one"
    )
    subprocess.run(script, shell=True, cwd=root, check=True)
    return root


def intent(workspace: object) -> dict[str, object]:
    return {"goal": "work on files", "inputs": {"workspace": workspace}}


def test_intents_check_their_workspace(
    client: TestClient, engine: sa.Engine, blob_dir: Path, repo: Path
) -> None:
    ok = client.post("/intents", json=intent({"git": {"url": str(repo), "ref": "main"}}))
    assert ok.status_code == 201, ok.text
    before = writes(engine, blob_dir)
    cases = [
        ({"git": {"url": str(repo), "ref": "nope"}}, 400, "workspace_unknown_ref"),
        ({"git": {"url": str(repo / "missing")}}, 400, "workspace_unreadable"),
        ({"git": {"url": "ext::sh -c touch% /tmp/pwned"}}, 400, "workspace_unreadable"),
        ({"upload": "ws_0123"}, 404, "not_found"),
        ({"git": {"url": str(repo)}, "upload": "ws_1"}, 400, "validation_error"),
    ]
    for workspace, status, code in cases:
        answer = client.post("/intents", json=intent(workspace))
        assert (answer.status_code, answer.json()["code"]) == (status, code), workspace
    assert writes(engine, blob_dir) == before


def test_a_spilled_artifact_reads_the_same(
    client: TestClient, engine: sa.Engine, blob_dir: Path
) -> None:
    """Above the inline threshold the row keeps only metadata; GET /artifacts is the same."""
    intent_id = client.post("/intents", json={"goal": "spill"}).json()["intentId"]
    start = {"queuePartitionKey": "tenant-spill", "workload": {"concurrency": 1, "steps": 1}}
    run_id = client.post(f"/intents/{intent_id}/run", json=start).json()["runId"]
    uri = f"artifact://run/{run_id}/step/ExecuteST/task/t1/attempt/1/stdout"
    content = b"large output\n" * 100
    with engine.begin() as conn:
        meta = artifacts.put_artifact(
            conn,
            uri=uri,
            run_id=run_id,
            step_id="ExecuteST",
            task_key="t1",
            kind="stdout",
            content=content,
            spill=Spill(FilesystemBlobStore(blob_dir), inline_max_bytes=64),
        )
    stored = rows(
        engine, "SELECT content IS NULL, blob_sha256 FROM app.artifacts WHERE uri = :u", u=uri
    )
    assert stored == [(True, meta.sha256)]
    answer = client.get(f"/artifacts/{quote(uri, safe='')}")
    assert (answer.status_code, answer.content) == (200, content)
    assert answer.headers["x-content-sha256"] == meta.sha256
