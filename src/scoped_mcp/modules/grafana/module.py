"""grafana module: dashboards and alert rules the agent owns, in its own folder, and scoped reads.

* Everything the agent creates lives in folder ``agent-{agent_id}`` (uid the same, hashed if too
  long), created on demand. Update and delete first read the dashboard from Grafana and act only
  when Grafana says it is in that folder; the write names that folder again and the version read,
  so the dashboard cannot be moved out or overwrite a concurrent change.
* Reads see the agent's folder plus the folder uids in ``read_folders``; a dashboard elsewhere is
  reported exactly as a missing one, so uids of other dashboards cannot be probed.
* Datasources: only those in ``datasources`` are listed, queried, or referenced by the panels and
  alert rules the agent writes. Listing returns uid, name and type only (never URLs or users).
* A folder or datasource uid passed as an argument is scoped (``Scoped("folders")``,
  ``Scoped("datasources")``) before the body runs; references inside panels, queries and rules
  are checked in the body (``checks.check_references``), with the same refusal and audit.
* ``GRAFANA_URL`` and ``GRAFANA_SERVICE_ACCOUNT_TOKEN`` are attached by ``CredentialAuth``
  inside the request; errors carry the status and at most a code from Grafana's fixed vocabulary.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlencode

from pydantic import Field

from scoped_mcp.credentials.view import CredentialView
from scoped_mcp.errors import InvalidArgument, ScopeViolation
from scoped_mcp.identity import AgentContext
from scoped_mcp.modules._base import tool
from scoped_mcp.modules._http_module import HttpModule
from scoped_mcp.modules.grafana import checks
from scoped_mcp.net.client import HttpConfig, safe_code
from scoped_mcp.scoping import AllOf, Allowlist, Scoped, ScopeStrategy

_CODES: Final = re.compile(r"version-mismatch|name-exists|plugin-dashboard|not-found")
_NOT_READABLE: Final = "dashboard not found in the folders this agent may read"
_NOT_OWNED: Final = "dashboard not found in this agent's folder"
_NOT_A_READ_FOLDER: Final = "folder is not one this agent may read"
NoDataState = Literal["NoData", "Alerting", "OK"]
ErrState = Literal["Error", "Alerting", "OK"]


class GrafanaConfig(HttpConfig):
    """``modules.grafana.config``."""

    read_folders: list[str] = Field(
        default=[], description="Folder uids the agent may read besides its own."
    )
    datasources: list[str] = Field(
        default=[], description="Datasource uids the agent may list, query and use in panels."
    )
    max_dashboard_bytes: int = Field(
        default=512 * 1024, gt=0, le=8 * 1024 * 1024, description="Largest dashboard JSON."
    )


class GrafanaModule(HttpModule):
    """Grafana dashboards and alert rules in the agent's own folder; reads limited by manifest."""

    name = "grafana"
    required_credentials = ("GRAFANA_URL", "GRAFANA_SERVICE_ACCOUNT_TOKEN")
    config_model = GrafanaConfig
    config: GrafanaConfig
    service = "grafana"
    url_key = "GRAFANA_URL"
    token_key = "GRAFANA_SERVICE_ACCOUNT_TOKEN"  # noqa: S105 - a key name, not a value

    def __init__(
        self, agent_ctx: AgentContext, credentials: CredentialView, config: GrafanaConfig
    ) -> None:
        super().__init__(agent_ctx, credentials, config)
        for folder in config.read_folders:
            checks.uid(folder, "read_folders entry")
        self.folder = checks.folder_uid(agent_ctx.agent_id)
        self._readable = frozenset({self.folder, *config.read_folders})
        self._datasources = frozenset(checks.uid(d, "datasource") for d in config.datasources)
        self._folder_ready = False

    def scope_strategies(self) -> Mapping[str, ScopeStrategy]:
        """``folders`` the agent may read and ``datasources`` it may use, each a checked uid."""
        return {
            "folders": AllOf(
                checks.UidFormat("folder_uid"),
                Allowlist(self._readable, refusal=_NOT_A_READ_FOLDER),
            ),
            "datasources": AllOf(
                checks.UidFormat("datasource_uid"), Allowlist(self._datasources, what="datasource")
            ),
        }

    async def _call(self, method: str, path: str, payload: Any = None, **kw: Any) -> Any:
        answer = await self._http.call(method, path, payload, **kw)
        if not answer.ok:
            body = answer.json()
            code = safe_code(body.get("status"), _CODES) if isinstance(body, dict) else None
            raise self._http.error(answer, code=code)
        return answer.json()

    async def _dashboard(self, uid: str, folders: frozenset[str], refusal: str) -> Any:
        answer = await self._http.call("GET", f"/api/dashboards/uid/{checks.uid(uid)}")
        if answer.status == 404:
            raise ScopeViolation(refusal)
        if not answer.ok:
            raise self._http.error(answer)
        data = answer.json()
        meta = data.get("meta") if isinstance(data, dict) else None
        if not isinstance(meta, dict) or meta.get("folderUid") not in folders:
            raise ScopeViolation(refusal)
        return data

    async def _ensure_folder(self) -> None:
        if self._folder_ready:
            return
        answer = await self._http.call("GET", f"/api/folders/{self.folder}")
        if answer.status == 404:
            title = f"agent-{self.agent_ctx.agent_id}"
            created = await self._http.call(
                "POST", "/api/folders", {"uid": self.folder, "title": title}
            )
            if not created.ok and created.status not in (409, 412):
                raise self._http.error(created)
        elif not answer.ok:
            raise self._http.error(answer)
        self._folder_ready = True

    @tool(mode="read")
    async def list_dashboards(
        self,
        query: Annotated[
            str | None,
            Field(description='Text to look for in dashboard titles, e.g. "cpu".'),
        ] = None,
        folder_uid: Annotated[
            Annotated[str, Scoped("folders")] | None,
            Field(
                description="List only this folder: your own (agent-{agent_id}) or one the "
                "operator lets you read. Omitted: all of them."
            ),
        ] = None,
    ) -> list[dict[str, Any]]:
        """List dashboards in your own folder and the folders the operator lets you read.

        query filters by title; folder_uid limits the listing to one readable folder.
        """
        folders = sorted(self._readable)
        if folder_uid is not None:
            folders = [folder_uid]
        params: list[tuple[str, str]] = [("type", "dash-db"), ("limit", "500")]
        params += [("folderUIDs", f) for f in folders]
        if query:
            params.append(("query", query[:200]))
        found = await self._call("GET", "/api/search?" + urlencode(params))
        return [
            {
                "uid": item.get("uid"),
                "title": item.get("title"),
                "folder_uid": item.get("folderUid"),
                "tags": item.get("tags", []),
                "owned": item.get("folderUid") == self.folder,
            }
            for item in _items(found)
            if item.get("folderUid") in self._readable
        ]

    @tool(mode="read")
    async def get_dashboard(
        self,
        uid: Annotated[
            str,
            Field(
                description="The dashboard's uid, as list_dashboards returns it (1-40 letters, "
                "digits, - or _)."
            ),
        ],
    ) -> dict[str, Any]:
        """Get a dashboard's JSON by uid (only from folders you may read)."""
        data = await self._dashboard(uid, self._readable, _NOT_READABLE)
        meta = data["meta"]
        return {
            "dashboard": data.get("dashboard"),
            "folder_uid": meta.get("folderUid"),
            "version": meta.get("version"),
            "owned": meta.get("folderUid") == self.folder,
        }

    @tool(mode="read")
    async def list_datasources(self) -> list[dict[str, Any]]:
        """List the datasources you may query: uid, name and type."""
        found = await self._call("GET", "/api/datasources")
        return [
            {"uid": item.get("uid"), "name": item.get("name"), "type": item.get("type")}
            for item in _items(found)
            if item.get("uid") in self._datasources
        ]

    @tool(mode="read")
    async def query_datasource(
        self,
        datasource_uid: Annotated[
            str,
            Scoped("datasources"),
            Field(
                description="An allowed datasource's uid, as list_datasources returns it, e.g. "
                '"prometheus-main".'
            ),
        ],
        queries: Annotated[
            list[dict[str, Any]],
            Field(
                description="1-10 query objects in the datasource's own format, e.g. "
                '[{"refId": "A", "expr": "up"}] for Prometheus; each is pinned to '
                "datasource_uid (refId defaults to A, B, ...)."
            ),
        ],
        time_from: Annotated[
            str,
            Field(
                description='Start of the time range: "now", "now-6h" style (s m h d w M y) '
                "or epoch milliseconds."
            ),
        ] = "now-1h",
        time_to: Annotated[
            str,
            Field(description="End of the time range, in the same forms as time_from."),
        ] = "now",
    ) -> Any:
        """Run queries against one allowed datasource (Grafana's /api/ds/query).

        Each query is the datasource's own query object (e.g. {"expr": "up"} for Prometheus);
        its datasource is set to datasource_uid. time_from/time_to: now-6h, now, or epoch ms.
        """
        payload = {
            "queries": checks.queries_for(datasource_uid, queries),
            "from": checks.time_value(time_from, "time_from"),
            "to": checks.time_value(time_to, "time_to"),
        }
        checks.size_checked(payload, "queries", self.config.max_dashboard_bytes)
        return await self._call("POST", "/api/ds/query", payload)

    def _dashboard_json(self, base: dict[str, Any], **fields: Any) -> dict[str, Any]:
        dashboard = {**base, **{k: v for k, v in fields.items() if v is not None}}
        if not isinstance(dashboard.get("title"), str) or not dashboard["title"].strip():
            raise InvalidArgument("title must be a non-empty string")
        if len(dashboard["title"]) > 200:
            raise InvalidArgument("title is longer than 200 characters")
        tags = dashboard.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) and len(t) <= 50 for t in tags):
            raise InvalidArgument("tags must be strings of at most 50 characters")
        checks.check_references(dashboard, self._datasources)
        checks.size_checked(dashboard, "dashboard", self.config.max_dashboard_bytes)
        return dashboard

    async def _save(self, dashboard: dict[str, Any], message: str) -> dict[str, Any]:
        await self._ensure_folder()
        payload = {
            "dashboard": dashboard,
            "folderUid": self.folder,
            "overwrite": False,
            "message": message,
        }
        saved = await self._call("POST", "/api/dashboards/db", payload)
        saved = saved if isinstance(saved, dict) else {}
        return {
            "uid": saved.get("uid"),
            "version": saved.get("version"),
            "url": saved.get("url"),
            "folder_uid": self.folder,
        }

    @tool(mode="write")
    async def create_dashboard(
        self,
        title: Annotated[str, Field(description="The dashboard's title, 1-200 characters.")],
        panels: Annotated[
            list[dict[str, Any]] | None,
            Field(
                description='Grafana panel objects, e.g. [{"title": "CPU", "type": '
                '"timeseries", "datasource": {"uid": "prometheus-main"}, "targets": [{"expr": '
                '"up"}]}]; every datasource they name must be an allowed one.'
            ),
        ] = None,
        tags: Annotated[
            list[str] | None,
            Field(description='Dashboard tags, each at most 50 characters, e.g. ["ops"].'),
        ] = None,
        time_from: Annotated[
            str,
            Field(
                description='Start of the time range the dashboard opens with: "now-6h" style '
                "or epoch milliseconds (it ends at now)."
            ),
        ] = "now-6h",
        refresh: Annotated[
            str | None,
            Field(description='Auto-refresh interval, e.g. "30s", "5m", "1h" or "1d".'),
        ] = None,
    ) -> dict[str, Any]:
        """Create a dashboard in your own folder (agent-{agent_id}); returns its uid."""
        dashboard = self._dashboard_json(
            {"title": title, "panels": panels or [], "tags": tags or [], "schemaVersion": 39},
            time={"from": checks.time_value(time_from, "time_from"), "to": "now"},
            refresh=checks.duration(refresh, "refresh") if refresh else None,
        )
        return await self._save(dashboard, "created by scoped-mcp")

    @tool(mode="write")
    async def update_dashboard(
        self,
        uid: Annotated[str, Field(description="Uid of a dashboard in your own folder.")],
        title: Annotated[
            str | None,
            Field(description="New title, 1-200 characters; omitted keeps the current one."),
        ] = None,
        panels: Annotated[
            list[dict[str, Any]] | None,
            Field(
                description="New panel objects, replacing all current panels (same form as "
                "create_dashboard's); omitted keeps them."
            ),
        ] = None,
        tags: Annotated[
            list[str] | None,
            Field(description="New tags, replacing the current ones; omitted keeps them."),
        ] = None,
    ) -> dict[str, Any]:
        """Update a dashboard in your own folder: replace its title, panels and/or tags."""
        current = await self._dashboard(uid, frozenset({self.folder}), _NOT_OWNED)
        base = current.get("dashboard")
        if not isinstance(base, dict):
            raise ScopeViolation(_NOT_OWNED)
        base = {**base, "uid": uid, "version": current["meta"].get("version")}
        base.pop("id", None)
        dashboard = self._dashboard_json(base, title=title, panels=panels, tags=tags)
        return await self._save(dashboard, "updated by scoped-mcp")

    @tool(mode="write")
    async def delete_dashboard(
        self, uid: Annotated[str, Field(description="Uid of a dashboard in your own folder.")]
    ) -> dict[str, Any]:
        """Delete a dashboard in your own folder."""
        await self._dashboard(uid, frozenset({self.folder}), _NOT_OWNED)
        await self._call("DELETE", f"/api/dashboards/uid/{checks.uid(uid)}")
        return {"deleted": True, "uid": uid}

    @tool(mode="write")
    async def create_alert_rule(
        self,
        title: Annotated[str, Field(description="The rule's title, 1-200 characters.")],
        rule_group: Annotated[
            str,
            Field(
                description="Evaluation group in your folder, 1-40 letters, digits, - or _, "
                'e.g. "disk-alerts".'
            ),
        ],
        condition: Annotated[
            str,
            Field(description='The refId of the data item that decides the alert, e.g. "B".'),
        ],
        data: Annotated[
            list[dict[str, Any]],
            Field(
                description="Grafana's rule queries, e.g. "
                '[{"refId": "A", "datasourceUid": "prometheus-main", "relativeTimeRange": '
                '{"from": 600, "to": 0}, "model": {"expr": "up"}}]; datasourceUid is an '
                'allowed datasource or "__expr__" for expressions.'
            ),
        ],
        *,
        for_duration: Annotated[
            str,
            Field(
                description="How long the condition must hold before the alert fires, e.g. "
                '"30s", "5m", "1h" or "1d".'
            ),
        ] = "5m",
        labels: Annotated[
            dict[str, str] | None,
            Field(description='Labels for routing the alert, e.g. {"severity": "page"}.'),
        ] = None,
        annotations: Annotated[
            dict[str, str] | None,
            Field(description='Annotations shown with the alert, e.g. {"summary": "Disk full"}.'),
        ] = None,
        no_data_state: Annotated[
            NoDataState,
            Field(description="The alert's state when the queries return no data."),
        ] = "NoData",
        exec_err_state: Annotated[
            ErrState,
            Field(description="The alert's state when the queries fail or time out."),
        ] = "Error",
    ) -> dict[str, Any]:
        """Create a Grafana-managed alert rule in your own folder.

        data is Grafana's list of rule queries (refId, datasourceUid, relativeTimeRange, model);
        datasourceUid must be an allowed datasource or "__expr__" for expressions. condition is
        the refId that decides the alert.
        """
        allowed = self._datasources | {checks.EXPRESSION_UID}
        if not data or any(not isinstance(item, dict) for item in data):
            raise InvalidArgument("data must be a non-empty list of query objects")
        for item in data:
            if item.get("datasourceUid") is None:
                raise InvalidArgument("each data item needs a datasourceUid")
        checks.check_references(data, allowed)
        rule = {
            "title": self._dashboard_json({"title": title})["title"],
            "ruleGroup": checks.uid(rule_group, "rule_group"),
            "folderUID": self.folder,
            "condition": checks.uid(condition, "condition"),
            "data": data,
            "for": checks.duration(for_duration, "for_duration"),
            "labels": labels or {},
            "annotations": annotations or {},
            "noDataState": no_data_state,
            "execErrState": exec_err_state,
            "orgID": 1,
        }
        checks.size_checked(rule, "alert rule", self.config.max_dashboard_bytes)
        await self._ensure_folder()
        headers = {"X-Disable-Provenance": "true"}
        saved = await self._call("POST", "/api/v1/provisioning/alert-rules", rule, headers=headers)
        saved = saved if isinstance(saved, dict) else {}
        return {"uid": saved.get("uid"), "title": title, "folder_uid": self.folder}


def _items(found: Any) -> list[dict[str, Any]]:
    """The objects of a JSON list answer; anything else counts as empty."""
    return [item for item in found if isinstance(item, dict)] if isinstance(found, list) else []
