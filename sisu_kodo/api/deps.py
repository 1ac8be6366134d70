"""Request dependencies: the shared resources a route needs, as Annotated aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, Request

from sisu_kodo.api.gateway import WorkflowGateway
from sisu_kodo.config import Settings


@dataclass(frozen=True)
class ApiState:
    settings: Settings
    engine: sa.Engine
    gateway: WorkflowGateway


def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


StateDep = Annotated[ApiState, Depends(get_state)]
