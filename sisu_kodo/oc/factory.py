"""Choose the planner from settings."""

from __future__ import annotations

from sisu_kodo.config import ConfigError, OcMode, Settings
from sisu_kodo.oc.port import Planner
from sisu_kodo.oc.replay import ReplayPlanner


def create_planner(settings: Settings) -> Planner:
    if settings.oc_mode is OcMode.REPLAY:
        return ReplayPlanner()
    raise ConfigError(
        f"invalid OC_MODE={settings.oc_mode.value!r}: this build plans in replay mode only;"
        " set OC_MODE=replay"
    )
