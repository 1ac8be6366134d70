"""Workspaces on the wire: the `inputs.workspace` of an intent, uploads, and diffs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sisu_kodo.contracts.artifacts import artifact_uri
from sisu_kodo.contracts.text import Text

WORKSPACE_INPUT = "workspace"
# ExecuteST's step id (contracts.runs.StepId.EXECUTE), spelled out: runs imports this module.
_EXECUTE = "ExecuteST"


def diff_patch_uri(run_id: str, task_key: str, attempt: int) -> str:
    """The unified diff of one attempt (`git apply`-ready)."""
    return artifact_uri(run_id, _EXECUTE, f"attempt/{attempt}/diff.patch", task_key)


def diff_index_uri(run_id: str, task_key: str, attempt: int) -> str:
    """Every file one attempt changed (binary ones included), as a WorkspaceDiff without patch."""
    return artifact_uri(run_id, _EXECUTE, f"attempt/{attempt}/diff.json", task_key)


class GitSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Text = Field(min_length=1, max_length=2000)
    ref: Text | None = Field(
        None, min_length=1, max_length=255, description="Branch, tag or commit; default HEAD."
    )
    includeGit: bool = Field(False, description="Keep the `.git` folder in the snapshot.")


class WorkspaceInput(BaseModel):
    """`inputs.workspace`: exactly one of a git repository or an uploaded archive."""

    model_config = ConfigDict(extra="forbid")

    git: GitSource | None = None
    upload: Text | None = Field(None, min_length=1, max_length=200, pattern=r"^ws_[0-9a-f]+$")

    @model_validator(mode="after")
    def _exactly_one(self) -> WorkspaceInput:
        if (self.git is None) == (self.upload is None):
            raise ValueError("give exactly one of `git` or `upload`")
        return self


class WorkspaceView(BaseModel):
    """An uploaded workspace: its id and the snapshot it was turned into."""

    workspaceId: str
    snapshotSha256: str
    fileCount: int
    size: int
    createdAt: str


class RunWorkspace(BaseModel):
    """The workspace a run captured at its start (shown in the RunView)."""

    source: Literal["git", "upload"]
    url: str | None = None
    ref: str | None = None
    commit: str | None = None
    workspaceId: str | None = None
    snapshotSha256: str
    fileCount: int
    size: int


class ChangedFile(BaseModel):
    path: str
    status: Literal["added", "modified", "deleted"]
    binary: bool = False
    sha256: str | None = Field(
        None, description="The file's sha256 after the task; none if deleted."
    )
    size: int = 0


class WorkspaceDiff(BaseModel):
    """What one task changed: a unified diff of its text files (for `git apply`), and every
    changed file, binary ones (absent from the patch) by path and sha256."""

    patch: str = ""
    files: list[ChangedFile] = Field(default_factory=list)

    @property
    def binary(self) -> list[ChangedFile]:
        return [file for file in self.files if file.binary]


class TaskDiff(WorkspaceDiff):
    taskKey: str
    name: str
    attempt: int
    artifactUri: str | None = None


class RunDiff(BaseModel):
    """Every task's diff; `conflicts` are paths more than one task changed."""

    runId: str
    patch: str
    tasks: list[TaskDiff]
    conflicts: list[str]
