"""GrafanaModule against a stateful fake Grafana on 127.0.0.1: own folder, cross-agent isolation,
read scope, datasource allowlist, and the token only in the header."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from scoped_mcp.errors import BackendError, InvalidArgument, ScopeViolation
from tests.services.checks import assert_clean, failure
from tests.services.fake_http import FakeHTTP, serve_http
from tests.services.grafana import GrafanaService
from tests.services.harness import Built, built_module

pytestmark = pytest.mark.anyio
TOKEN = "glsa_grafanasecret_0123456789abcdef"
CONFIG: dict[str, Any] = {"read_folders": ["ops"], "datasources": ["prom", "influx"]}
PANEL = {"title": "CPU", "type": "timeseries", "datasource": {"uid": "prom"},
         "targets": [{"expr": "rate(cpu[5m])", "datasource": {"uid": "prom"}}]}  # fmt: skip


@asynccontextmanager
async def grafana(
    tmp_path: Path, server: FakeHTTP, agent_id: str = "agent-01"
) -> AsyncIterator[Built]:
    env = {"GRAFANA_URL": server.url, "GRAFANA_SERVICE_ACCOUNT_TOKEN": TOKEN}
    (tmp_path / agent_id).mkdir(exist_ok=True)
    async with built_module(
        tmp_path / agent_id, "grafana", CONFIG, env, agent_id=agent_id
    ) as built:
        yield built


async def test_create_dashboard_lands_in_the_agent_folder(tmp_path: Path) -> None:
    """The first write creates folder agent-{agent_id}; the dashboard is saved there without
    overwrite, with the token in the Authorization header only, and the result is clean."""
    service = GrafanaService(TOKEN)
    with serve_http(service) as server:
        async with grafana(tmp_path, server) as built:
            made = await built.module.create_dashboard("Container Health", panels=[PANEL])
    assert service.folders == {"agent-agent-01": "agent-agent-01"}
    stored = service.dashboards[made["uid"]]
    assert stored["folderUid"] == "agent-agent-01"
    assert stored["dashboard"]["panels"] == [PANEL]
    assert made["folder_uid"] == "agent-agent-01"
    saves = [r for r in server.requests if r.path == "/api/dashboards/db"]
    assert saves[0].json()["overwrite"] is False
    assert all(r.header("authorization") == f"Bearer {TOKEN}" for r in server.requests)
    assert_clean(repr(made), [TOKEN, server.url])


async def test_agents_cannot_see_update_or_delete_each_others_dashboards(tmp_path: Path) -> None:
    """agent-02's dashboard is invisible to agent-01: not listed, get/update/delete answer as
    for a missing uid, and it is unchanged afterwards."""
    service = GrafanaService(TOKEN)
    with serve_http(service) as server:
        async with grafana(tmp_path, server, "agent-02") as other:
            theirs = (await other.module.create_dashboard("Theirs"))["uid"]
        async with grafana(tmp_path, server, "agent-01") as built:
            mine = (await built.module.create_dashboard("Mine"))["uid"]
            listed = [d["uid"] for d in await built.module.list_dashboards()]
            errors = [
                await failure(built.module.get_dashboard(theirs), ScopeViolation),
                await failure(built.module.get_dashboard("nosuchuid"), ScopeViolation),
                await failure(built.module.update_dashboard(theirs, title="x"), ScopeViolation),
                await failure(built.module.delete_dashboard(theirs), ScopeViolation),
            ]
            await built.module.delete_dashboard(mine)
    assert listed == [mine]
    assert errors[0] == errors[1], "another agent's uid looks exactly like a missing one"
    assert service.dashboards[theirs]["dashboard"]["title"] == "Theirs"
    assert service.dashboards[theirs]["version"] == 1
    assert mine not in service.dashboards
    assert not [r for r in server.requests if r.method == "DELETE" and theirs in r.path]


async def test_read_folders_are_readable_but_never_writable(tmp_path: Path) -> None:
    """A dashboard in a read_folders folder can be listed and read but not updated or deleted;
    one in an unlisted folder cannot even be read."""
    service = GrafanaService(TOKEN)
    service.add_dashboard("opsdash", "Ops Overview", "ops")
    service.add_dashboard("secretdash", "Payroll", "finance")
    with serve_http(service) as server:
        async with grafana(tmp_path, server) as built:
            listed = await built.module.list_dashboards()
            got = await built.module.get_dashboard("opsdash")
            await failure(built.module.update_dashboard("opsdash", title="mine now"))
            await failure(built.module.delete_dashboard("opsdash"), ScopeViolation)
            await failure(built.module.get_dashboard("secretdash"), ScopeViolation)
            await failure(built.module.list_dashboards(folder_uid="finance"), ScopeViolation)
    assert [(d["uid"], d["owned"]) for d in listed] == [("opsdash", False)]
    assert got["dashboard"]["title"] == "Ops Overview"
    assert service.dashboards["opsdash"]["dashboard"]["title"] == "Ops Overview"
    assert "opsdash" in service.dashboards
    searches = [r for r in server.requests if r.path == "/api/search"]
    assert "finance" not in searches[0].query


async def test_update_keeps_the_folder_and_detects_concurrent_changes(tmp_path: Path) -> None:
    """An update replaces title and panels in place (version checked); a change made between
    read and write fails with version-mismatch instead of overwriting it."""
    service = GrafanaService(TOKEN)
    with serve_http(service) as server:
        async with grafana(tmp_path, server) as built:
            uid = (await built.module.create_dashboard("One"))["uid"]
            updated = await built.module.update_dashboard(uid, title="Two", panels=[PANEL])
            original = service._get_dashboard
            service._get_dashboard = lambda *a: _stale(original(*a))  # type: ignore[method-assign]
            message = await failure(built.module.update_dashboard(uid, title="Three"))
    assert updated["version"] == 2
    assert service.dashboards[uid]["dashboard"]["title"] == "Two"
    assert service.dashboards[uid]["folderUid"] == "agent-agent-01"
    assert "version-mismatch" in message


def _stale(reply: Any) -> Any:
    reply.body["meta"]["version"] -= 1
    return reply


async def test_datasources_are_limited_to_the_allowlist(tmp_path: Path) -> None:
    """Listing shows only allowed datasources and only uid/name/type; queries go only to an
    allowed datasource, each pinned to it; panels and queries naming others are refused."""
    service = GrafanaService(TOKEN)
    with serve_http(service) as server:
        async with grafana(tmp_path, server) as built:
            listed = await built.module.list_datasources()
            result = await built.module.query_datasource("prom", [{"expr": "up"}])
            await failure(built.module.query_datasource("secretsql", [{"rawSql": "x"}]))
            await failure(
                built.module.query_datasource(
                    "prom", [{"expr": "up", "datasource": {"uid": "secretsql"}}]
                ),
                ScopeViolation,
            )
            bad_panel = {**PANEL, "targets": [{"datasource": {"uid": "secretsql"}}]}
            await failure(built.module.create_dashboard("X", panels=[bad_panel]), ScopeViolation)
            await failure(
                built.module.create_dashboard("Y", panels=[{"datasource": "Billing DB"}]),
                ScopeViolation,
            )
            await failure(built.module.query_datasource("prom", [{}], time_from="yesterday"))
    assert listed == [
        {"uid": "prom", "name": "Prometheus", "type": "prometheus"},
        {"uid": "influx", "name": "InfluxDB", "type": "influxdb"},
    ]
    assert service.queries == [
        {"queries": [{"expr": "up", "refId": "A", "datasource": {"uid": "prom"}}],
         "from": "now-1h", "to": "now"}
    ]  # fmt: skip
    assert result["results"]["A"]["status"] == 200
    assert service.dashboards == {}


async def test_alert_rules_go_to_the_agent_folder_with_allowed_datasources(
    tmp_path: Path,
) -> None:
    """An alert rule is created in the agent's folder (provenance disabled so people can edit
    it); data naming a datasource outside the allowlist is refused before sending."""
    service = GrafanaService(TOKEN)
    data = [
        {"refId": "A", "datasourceUid": "prom", "model": {"expr": "up"},
         "relativeTimeRange": {"from": 600, "to": 0}},
        {"refId": "B", "datasourceUid": "__expr__",
         "model": {"type": "threshold", "expression": "A"}},
    ]  # fmt: skip
    with serve_http(service) as server:
        async with grafana(tmp_path, server) as built:
            made = await built.module.create_alert_rule("CPU high", "cpu", "B", data)
            bad = [{**data[0], "datasourceUid": "secretsql"}]
            await failure(built.module.create_alert_rule("t", "g", "A", bad), ScopeViolation)
            await failure(built.module.create_alert_rule("t", "g/../x", "A", data))
    (rule,) = service.alert_rules.values()
    assert rule["folderUID"] == "agent-agent-01"
    assert rule["provenance"] == "true"
    assert made == {"uid": rule["uid"], "title": "CPU high", "folder_uid": "agent-agent-01"}


@pytest.mark.parametrize("uid", ["../api/admin", "a/b", "x?y=1", "", "x" * 41, "%2e%2e"])
async def test_uids_cannot_add_path_segments(tmp_path: Path, uid: str) -> None:
    """A uid that is not a plain identifier is refused before any request."""
    with serve_http(GrafanaService(TOKEN)) as server:
        async with grafana(tmp_path, server) as built:
            await failure(built.module.get_dashboard(uid), InvalidArgument)
    assert server.requests == []


async def test_wrong_token_is_an_error_without_details(tmp_path: Path) -> None:
    """A refused token gives the agent a status-only error."""
    with serve_http(GrafanaService("another-token-value")) as server:
        async with grafana(tmp_path, server) as built:
            message = await failure(built.module.list_dashboards(), BackendError)
    assert "HTTP 401" in message
    assert_clean(message, [TOKEN, server.url])
