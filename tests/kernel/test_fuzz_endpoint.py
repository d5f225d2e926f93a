"""Fuzzing the real agent daemon's JSON-RPC endpoint on its Unix socket (docs/errors.md: "No input,
however malformed, crashes the agent or leaves the kernel half-changed").

Hypothesis sends raw bytes, broken JSON, JSON-RPC envelopes with wrong types and odd ids,
setupNetworks requests with unicode and control characters in names, huge numbers, missing
and extra fields, deep nesting, batches and notifications. After every request: the answer is
a well-formed JSON-RPC response (or 204 for a notification, 400/413 for a body that is not
UTF-8 or too large), the agent still answers ``Host.ping2``, and the namespace's kernel dump
is unchanged. The agent's connectivity timeout is short, so a request that happens to be valid
is applied and then rolled back (error 10): the dump must still be the same afterwards.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.daemon import AgentProcess, http_post
from tests.dump import Dump, assert_same_state, dump_state
from tests.faults import response_problem
from tests.netns import NetNS
from vdsm_net.server import MAX_BODY

EXAMPLES = 300
NICS = ("eth1", "eth2")
METHODS = (
    "Host.setupNetworks", "Host.confirmConnectivity", "Host.setSafeNetworkConfig",
    "Host.getNetworkCapabilities", "Host.getCapabilities", "Host.getNetworkStatistics",
    "Host.ping2",
)
NETWORK_KEYS = (
    "nic", "bonding", "vlan", "mtu", "bridged", "stp", "ipaddr", "netmask", "prefix", "gateway",
    "ipv6addr", "ipv6gateway", "bootproto", "defaultRoute", "remove",
)
# connectivityCheck/connectivityTimeout are left out: a valid change must be rolled back by the
# (short) default connectivity timeout, never kept or held for a fuzzed number of seconds.
OPTION_KEYS = ("commitOnSuccess", "dryRun", "colour")

HUGE = st.sampled_from([2**31, 2**63, -(2**63) - 1, 10**400, 1e308, -0.0, 65536, 4095, -1])
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), HUGE, st.floats(allow_nan=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)
# Names: the real NICs and plausible names, path/option injection, unicode, control chars.
names = st.one_of(
    st.sampled_from([*NICS, "eth9", "red", "bond0", "../x", "-x", "a b", "x" * 16, ".", "..",
                     "", "ré", "a\x00b", "a\nb", "eth1.5", "a:b", "a/b", "lo"]),
    st.text(max_size=20),
    st.text(alphabet=st.characters(codec="ascii"), min_size=1, max_size=17),
)
attr_values = st.one_of(
    json_values, names,
    st.sampled_from(["192.0.2.1", "24", "255.255.255.0", "2001:db8::1/64", "dhcp", "none",
                     "300.1.1.1", "true"]),
    st.integers(min_value=-5, max_value=70000),
)
network_attrs = st.dictionaries(
    st.one_of(st.sampled_from(NETWORK_KEYS), st.text(max_size=10)), attr_values, max_size=6)
bond_attrs = st.dictionaries(
    st.sampled_from(["nics", "options", "remove", "slaves"]),
    st.one_of(st.lists(names, max_size=3), attr_values,
              st.sampled_from(["mode=active-backup miimon=100", "mode=nope", "miimon=-1",
                               "mode=4 lacp_rate=fast", "a=b=c", "mode"])),
    max_size=3,
)
setup_params = st.fixed_dictionaries(
    {"networks": st.one_of(st.dictionaries(names, network_attrs, min_size=1, max_size=3),
                           st.dictionaries(names, json_values, max_size=3), json_values)},
    optional={
        "bondings": st.one_of(st.dictionaries(names, st.one_of(bond_attrs, json_values),
                                              max_size=2), json_values),
        "options": st.one_of(
            st.dictionaries(st.sampled_from(OPTION_KEYS), json_values, max_size=3), json_values),
    },
)
ids = st.one_of(st.integers(), st.text(max_size=5), st.none(), st.floats(allow_nan=False),
                st.lists(st.integers(), max_size=2))


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, Any]:
    method = draw(st.one_of(st.sampled_from(METHODS), st.text(max_size=20)))
    doc: dict[str, Any] = {"jsonrpc": draw(st.sampled_from(["2.0", "2.0", "2.0", "1.0", 2]))}
    doc["method"] = method
    if draw(st.booleans()):
        doc["params"] = draw(setup_params if method == METHODS[0] else json_values)
    else:  # extra or missing fields, wrong types
        doc["params"] = draw(st.one_of(json_values, setup_params.map(lambda p: {**p, "x": 1}),
                                       st.just({})))
    if draw(st.integers(0, 9)):  # mostly requests; sometimes a notification (no id)
        doc["id"] = draw(ids)
    drop = draw(st.sets(st.sampled_from(["jsonrpc", "method", "params"]), max_size=1))
    return {k: v for k, v in doc.items() if k not in drop}


# Well-formed envelopes whose params reach the agent's request rules (most of the examples).
setup_calls = st.builds(
    lambda params, ident: {"jsonrpc": "2.0", "id": ident, "method": METHODS[0],
                           "params": params},
    setup_params, st.integers(0, 2**31),
)


def _nested(depth: int, opener: str, closer: str) -> str:
    return opener * depth + closer * depth


deep = st.integers(min_value=10, max_value=200_000).flatmap(lambda n: st.sampled_from([
    _nested(n, "[", "]"),
    _nested(n, '{"a":', "}").replace('{"a":}', '{"a":1}'),
    json.dumps({"jsonrpc": "2.0", "id": 1, "method": "Host.setupNetworks",
                "params": {"networks": {"red": {"nic": "X"}}}}).replace(
        '"X"', _nested(min(n, 50_000), "[", "]")),
]))
malformed = st.sampled_from([
    "", " ", "{", "}", "[]", "[1]", "null", "0", '"x"', "{not json", '{"jsonrpc": "2.0"',
    '{"jsonrpc": "2.0", "id": 1, "method": "Host.ping2", "params": {}} trailing',
    '{"jsonrpc": "2.0", "id": NaN, "method": "Host.ping2"}',
    '{"jsonrpc": "2.0", "id": 1, "method": "Host.setupNetworks", "params": '
    '{"networks": {"red": {"nic": "eth1", "mtu": Infinity}}}}',
    '{"jsonrpc": "2.0", "id": 1, "method": "Host.setupNetworks", "params": '
    '{"networks": {"red": {"nic": "eth1", "vlan": 1e999}}}}',
    '{"a": "\\ud800"}', "\ufeff{}",
])
bodies = st.one_of(
    setup_calls.map(lambda d: json.dumps(d).encode()),
    setup_calls.map(lambda d: json.dumps(d, ensure_ascii=False).encode()),
    envelopes().map(lambda d: json.dumps(d).encode()),
    envelopes().map(lambda d: json.dumps(d, ensure_ascii=False).encode()),
    st.lists(envelopes(), max_size=4).map(lambda b: json.dumps(b).encode()),
    malformed.map(str.encode),
    deep.map(str.encode),
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


@pytest.fixture
def agent(netns: NetNS, tmp_path: Path) -> AgentProcess:
    for nic in NICS:
        netns.add_nic(nic, dummy=False)
    config = tmp_path / "agent.toml"
    config.write_text("[network]\nconnectivity_timeout = 0.3\n")
    return AgentProcess(netns, tmp_path / "state", "--config", str(config)).start()


def _check_answer(body: bytes, status: int, raw: bytes) -> list[int | str]:
    """Checks the answer; the error codes it carries ("ok" for a result)."""
    if len(body) > MAX_BODY:  # deep nesting can reach the cap
        assert status == 413, (status, raw[:300])
        return [json.loads(raw)["error"]["code"]]
    if status == 204:  # notifications only
        assert raw == b"", raw[:200]
        return []
    assert status in (200, 400), (status, raw[:300])
    doc = json.loads(raw)
    answers = doc if isinstance(doc, list) and status == 200 else [doc]
    assert answers, "an empty batch answer"
    for answer in answers:
        problem = response_problem(answer)
        assert problem is None, problem
    return [a["error"]["code"] if "error" in a else "ok" for a in answers]


def _alive(agent: AgentProcess) -> None:
    assert agent.proc is not None and agent.proc.poll() is None, agent.log.read_text()[-3000:]
    assert agent.call("Host.ping2", timeout=30) == {}


def test_fuzzed_requests_never_crash_or_change_the_kernel(
    agent: AgentProcess, netns: NetNS
) -> None:
    # A base network, so that fuzzed requests also meet an existing configuration.
    agent.call("Host.setupNetworks", {"networks": {"base": {"nic": "eth2"}},
                                      "options": {"connectivityCheck": False}})
    before: Dump = dump_state(netns.name)
    statuses: Counter[int] = Counter()
    codes: Counter[int | str] = Counter()
    started = time.monotonic()

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(bodies)
    def one(body: bytes) -> None:
        status, raw = http_post(agent.socket, body, timeout=60)
        statuses[status] += 1
        codes.update(_check_answer(body, status, raw))
        _alive(agent)
        assert_same_state(before, dump_state(netns.name), f"after {body[:200]!r}")

    one()
    print(f"fuzz: {statuses.total()} requests in {time.monotonic() - started:.1f} s; "
          f"HTTP statuses {dict(statuses)}; answers {dict(codes)}")
    assert "Traceback" not in agent.log.read_text(), agent.log.read_text()[-5000:]


def test_oversized_body_is_refused_with_413(agent: AgentProcess, netns: NetNS) -> None:
    before = dump_state(netns.name)
    # Just under the cap, still valid JSON: parsed and refused by the request rules.
    name = "x" * (MAX_BODY - 200)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "Host.setupNetworks",
                       "params": {"networks": {name: {"nic": "eth1"}}}}).encode()
    assert len(body) <= MAX_BODY
    status, raw = http_post(agent.socket, body)
    assert status == 200
    assert json.loads(raw)["error"]["code"] == 27
    for size in (MAX_BODY + 1, 8 * MAX_BODY):
        status, raw = http_post(agent.socket, b"[" * size)
        assert status == 413, (status, raw[:200])
        assert json.loads(raw)["error"]["code"] == -32600
        _alive(agent)
    assert_same_state(before, dump_state(netns.name))
