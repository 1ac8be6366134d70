"""The door's pure parts: strict JSON, the Host/Origin allowlists, the planners' and the
mock's limits, and the settings that tune them."""

from __future__ import annotations

import json

import pytest

from sisu_kodo.api.bodies import MAX_JSON_DEPTH, check_json_body
from sisu_kodo.api.origins import SiteAllowlist
from sisu_kodo.config import ConfigError, load_settings
from sisu_kodo.contracts.intents import MAX_GOAL_CHARS, MOCK_KNOB_CAPS
from sisu_kodo.errors import HostNotAllowedError, InvalidRequestError, OriginNotAllowedError
from sisu_kodo.oc.port import CompileRequest
from sisu_kodo.oc.replay import ReplayPlanner
from sisu_kodo.sbx.faults import LATENCY_LABEL, OUTPUT_LABEL, task_labels


def _nested_list(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": 1.5, "b": -9223372036854775808, "c": 9223372036854775807}',
        b'{"emoji": "\\ud83d\\ude00", "plain": "caf\xc3\xa9"}',  # a surrogate pair is text
        _nested_list(MAX_JSON_DEPTH),
        b"1e308",
    ],
)
def test_strict_json_accepts_what_postgresql_holds(raw: bytes) -> None:
    check_json_body(raw)


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b'{"x": NaN}', "NaN is not a JSON number"),
        (b"[-Infinity]", "-Infinity is not a JSON number"),
        (b'{"x": 1e400}', "not a finite double"),
        (b'{"x": 9223372036854775808}', "bigint"),
        (b'{"x": -' + b"9" * 5000 + b"}", "bigint"),
        (b'{"x": "\\udc00"}', "lone UTF-16 surrogate"),
        (b'{"\\ud800": 1}', "lone UTF-16 surrogate"),
        (_nested_list(MAX_JSON_DEPTH + 1), f"deeper than {MAX_JSON_DEPTH}"),
        (_nested_list(100_000), f"deeper than {MAX_JSON_DEPTH}"),
        (b'{"x": "\xff"}', "not UTF-8"),
        (b'{"x": ', "malformed JSON"),
    ],
)
def test_strict_json_refuses_what_it_cannot(raw: bytes, says: str) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        check_json_body(raw)
    assert says in refused.value.message
    json.dumps(refused.value.details).encode()  # the answer itself is valid UTF-8 JSON


def test_refusal_names_the_place() -> None:
    with pytest.raises(InvalidRequestError) as refused:
        check_json_body(b'{"inputs": {"list": [0, "\\ud800"]}}')
    assert refused.value.details == [
        {"path": "inputs.list.1", "message": refused.value.details[0]["message"]}
    ]


def _sites(**settings: str) -> SiteAllowlist:
    return SiteAllowlist.from_settings(load_settings(**settings))


@pytest.mark.parametrize(
    "host", ["127.0.0.1:3001", "localhost", "LocalHost.:80", "[::1]:3001", "[::1]"]
)
def test_loopback_hosts_are_allowed_by_default(host: str) -> None:
    _sites().check_host(host)


@pytest.mark.parametrize(
    "host", [None, "", "evil.example", "127.0.0.1.evil.example", "a@127.0.0.1", "::1", "x y"]
)
def test_other_hosts_are_refused(host: str | None) -> None:
    with pytest.raises(HostNotAllowedError):
        _sites().check_host(host)


def test_the_bind_host_is_allowed_as_itself_only() -> None:
    _sites(SISU_HOST="sisu.lan").check_host("sisu.lan:3001")
    # `sisu up` polls http://$SISU_HOST:$PORT, so a wildcard bind answers to its literal.
    wildcard = _sites(SISU_HOST="0.0.0.0")
    wildcard.check_host("0.0.0.0:3001")
    with pytest.raises(HostNotAllowedError):
        wildcard.check_host("lan-name:3001")


def test_host_wildcards() -> None:
    sites = _sites(SISU_ALLOWED_HOSTS="*.corp.example")
    sites.check_host("api.corp.example")
    with pytest.raises(HostNotAllowedError):
        sites.check_host("corp.example")
    _sites(SISU_ALLOWED_HOSTS="*").check_host("anything.example")


@pytest.mark.parametrize(
    ("origin", "fetch_site"),
    [
        (None, None),
        (None, "same-origin"),
        (None, "none"),  # typed into the address bar
        ("http://127.0.0.1:5173", "same-site"),
        ("https://localhost", None),
    ],
)
def test_loopback_pages_and_non_browsers_may_change_state(
    origin: str | None, fetch_site: str | None
) -> None:
    _sites().check_origin(origin, fetch_site)


@pytest.mark.parametrize(
    ("origin", "fetch_site"),
    [
        ("http://evil.example", "cross-site"),
        ("http://evil.example", None),
        ("null", "cross-site"),
        ("ftp://127.0.0.1", None),
        ("http://127.0.0.1/path", None),
        (None, "cross-site"),
    ],
)
def test_other_sites_may_not(origin: str | None, fetch_site: str | None) -> None:
    with pytest.raises(OriginNotAllowedError):
        _sites().check_origin(origin, fetch_site)


def test_explicit_origins_replace_the_default() -> None:
    sites = _sites(SISU_ALLOWED_ORIGINS="https://ops.example:8443")
    sites.check_origin("HTTPS://ops.example:8443", None)
    for refused in ("http://127.0.0.1:3001", "https://ops.example"):
        with pytest.raises(OriginNotAllowedError):
            sites.check_origin(refused, None)
    _sites(SISU_ALLOWED_ORIGINS="*").check_origin("http://evil.example", "cross-site")


def test_settings_parse_comma_separated_lists() -> None:
    settings = load_settings(
        allowed_hosts=" Ops.Example , [::1],", allowed_origins="https://a.example"
    )
    assert settings.api.allowed_hosts == ("ops.example", "[::1]")
    assert settings.api.allowed_origins == ("https://a.example",)
    assert settings.api.max_body_bytes == 1_048_576


@pytest.mark.parametrize(
    "overrides",
    [
        {"allowed_hosts": "http://ops.example"},
        {"allowed_origins": "https://a.example/path"},
        {"max_body_bytes": "10"},
    ],
)
def test_bad_guard_settings_stop_boot(overrides: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        load_settings(**overrides)


def test_the_builtin_planner_plans_the_longest_worst_goal() -> None:
    goal = "'" * MAX_GOAL_CHARS  # shell quoting makes each ' five characters
    request = CompileRequest(runId="r", goal=goal, inputs={}, constraints={}, taskCount=10_000)
    plan = ReplayPlanner().builtin_plan(request)
    assert plan.goal == goal and len(plan.tasks) == 10_000


def test_mock_knobs_stored_past_their_caps_are_held_to_them() -> None:
    constraints = {knob: cap * 1000 for knob, cap in MOCK_KNOB_CAPS.items()}
    labels = task_labels("g", constraints, index=1, count=1)
    assert labels[OUTPUT_LABEL] == str(MOCK_KNOB_CAPS["mockOutputBytes"])
    assert labels[LATENCY_LABEL] == str(MOCK_KNOB_CAPS["mockLatencyMs"])
