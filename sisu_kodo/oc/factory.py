"""Choose the planner from settings: an adapter per OC_MODE, always behind the call ledger."""

from __future__ import annotations

import sqlalchemy as sa

from sisu_kodo.config import OcMode, Settings
from sisu_kodo.oc.fixtures import FixtureStore
from sisu_kodo.oc.health import check_credentials, client_for
from sisu_kodo.oc.ledger import LedgerPlanner
from sisu_kodo.oc.opencode import OpenCodePlanner
from sisu_kodo.oc.port import Answerer, Planner
from sisu_kodo.oc.replay import ReplayPlanner


def create_planner(settings: Settings, engine: sa.Engine) -> Planner:
    """Builds without I/O; `oc.health.await_opencode` is the start-up check of the server."""
    check_credentials(settings)
    fixtures = FixtureStore(settings.planner.oc_fixtures_dir)
    inner: Answerer
    if settings.planner.oc_mode is OcMode.REPLAY:
        inner = ReplayPlanner(fixtures)
    else:
        inner = OpenCodePlanner(
            client_for(settings),
            mode=settings.planner.oc_mode.value,
            provider_id=settings.planner.oc_provider,
            model_id=settings.planner.oc_model,
            strict=settings.planner.oc_strict_mode,
            fixtures=fixtures if settings.planner.oc_mode is OcMode.RECORD else None,
        )
    return LedgerPlanner(inner, engine)
