"""The model provider OpenCode plans with, from settings: its key and its config block.

`anthropic` and `openai` are OpenCode's built-in providers; any other OC_PROVIDER id is an
OpenAI-compatible endpoint at OC_PROVIDER_BASE_URL (a hosted gateway, vLLM, Ollama, or the
tests' stub model).
"""

from __future__ import annotations

from typing import Any

from sisu_kodo.config import ConfigError, PlannerSettings

BUILTIN_PROVIDERS = frozenset({"anthropic", "openai"})
# The only variable the daemon passes the key in: one source, never an inherited *_API_KEY.
KEY_ENV = "SISU_OC_PROVIDER_KEY"
CUSTOM_MODEL_LIMITS = {"context": 128_000, "output": 8_000}


def api_key(planner: PlannerSettings) -> str | None:
    """OC_PROVIDER_API_KEY, else the built-in provider's own variable; None when unset."""
    secret = planner.oc_provider_api_key
    if secret is None and planner.oc_provider == "anthropic":
        secret = planner.anthropic_api_key
    if secret is None and planner.oc_provider == "openai":
        secret = planner.openai_api_key
    value = secret.get_secret_value().strip() if secret is not None else ""
    return value or None


def key_variable(planner: PlannerSettings) -> str:
    """The variable an operator sets to give OC_PROVIDER its key (for error messages)."""
    builtin = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}
    own = builtin.get(planner.oc_provider)
    return f"OC_PROVIDER_API_KEY or {own}" if own else "OC_PROVIDER_API_KEY"


def validate_provider(planner: PlannerSettings) -> None:
    """A custom provider needs its endpoint; raises ConfigError naming the variable."""
    if planner.oc_provider not in BUILTIN_PROVIDERS and not planner.oc_provider_base_url:
        raise ConfigError(
            f"OC_PROVIDER={planner.oc_provider!r} is not a built-in provider (anthropic, openai):"
            " set OC_PROVIDER_BASE_URL to its OpenAI-compatible endpoint"
        )


def provider_config(planner: PlannerSettings) -> dict[str, Any]:
    """OpenCode's `provider` entry for OC_PROVIDER; the key stays an `{env:}` reference."""
    validate_provider(planner)
    options: dict[str, Any] = {"apiKey": "{env:" + KEY_ENV + "}"}
    if planner.oc_provider_base_url:
        options["baseURL"] = planner.oc_provider_base_url
    if planner.oc_provider in BUILTIN_PROVIDERS:
        return {planner.oc_provider: {"options": options}}
    return {
        planner.oc_provider: {
            "npm": "@ai-sdk/openai-compatible",
            "name": f"{planner.oc_provider} (OpenAI-compatible)",
            "options": options,
            "models": {
                planner.oc_model: {
                    "name": planner.oc_model,
                    "tool_call": True,
                    "limit": CUSTOM_MODEL_LIMITS,
                }
            },
        }
    }
