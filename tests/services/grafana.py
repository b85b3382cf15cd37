"""The parts of Grafana's HTTP API the grafana module uses, with state: folders, dashboards,
alert rules, datasources; every request must carry the service account token."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.services.fake_http import Recorded, Reply

DATASOURCES = [
    {"uid": "prom", "name": "Prometheus", "type": "prometheus", "url": "http://10.0.0.5:9090",
     "basicAuthUser": "scraper", "jsonData": {"httpMethod": "POST"}},
    {"uid": "influx", "name": "InfluxDB", "type": "influxdb", "url": "http://10.0.0.6:8086",
     "user": "reader", "database": "metrics"},
    {"uid": "secretsql", "name": "Billing DB", "type": "postgres", "url": "db:5432",
     "user": "billing", "database": "billing"},
]  # fmt: skip


@dataclass
class GrafanaService:
    """State plus a route function for FakeHTTP."""

    token: str
    folders: dict[str, str] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    alert_rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    queries: list[dict[str, Any]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add_dashboard(self, uid: str, title: str, folder: str) -> None:
        """Seed a dashboard (an operator's, or another agent's) directly."""
        self.folders.setdefault(folder, folder)
        self.dashboards[uid] = {
            "dashboard": {"uid": uid, "title": title, "panels": [], "id": next(self._ids)},
            "folderUid": folder,
            "version": 1,
        }

    def __call__(self, request: Recorded) -> Reply:
        if request.header("authorization") != f"Bearer {self.token}":
            return Reply(401, {"message": "Unauthorized"})
        parts = urlsplit(request.target)
        path, query = parts.path, parse_qs(parts.query)
        segments = path.strip("/").split("/")
        handler = self._route(request.method, segments)
        if handler is None:
            return Reply(404, {"message": "Not found"})
        return handler(request, segments, query)

    def _route(self, method: str, segments: list[str]) -> Any:
        table = {
            ("GET", "api/folders/*"): self._get_folder,
            ("POST", "api/folders"): self._create_folder,
            ("GET", "api/search"): self._search,
            ("GET", "api/dashboards/uid/*"): self._get_dashboard,
            ("DELETE", "api/dashboards/uid/*"): self._delete_dashboard,
            ("POST", "api/dashboards/db"): self._save_dashboard,
            ("GET", "api/datasources"): lambda *a: Reply(200, DATASOURCES),
            ("POST", "api/ds/query"): self._query,
            ("POST", "api/v1/provisioning/alert-rules"): self._create_rule,
        }
        for (verb, pattern), handler in table.items():
            wanted = pattern.split("/")
            if (
                verb == method
                and len(wanted) == len(segments)
                and all(w in ("*", s) for w, s in zip(wanted, segments, strict=True))
            ):
                return handler
        return None

    def _get_folder(self, request: Recorded, segments: list[str], query: Any) -> Reply:
        uid = segments[-1]
        if uid not in self.folders:
            return Reply(404, {"message": "folder not found", "status": "not-found"})
        return Reply(200, {"uid": uid, "title": self.folders[uid]})

    def _create_folder(self, request: Recorded, segments: list[str], query: Any) -> Reply:
        data = request.json()
        if data["uid"] in self.folders:
            return Reply(409, {"message": "folder exists"})
        self.folders[data["uid"]] = data["title"]
        return Reply(200, {"uid": data["uid"], "title": data["title"]})

    def _search(self, request: Recorded, segments: list[str], query: Any) -> Reply:
        folders = set(query.get("folderUIDs", []))
        text = query.get("query", [""])[0].lower()
        hits = [
            {"uid": uid, "title": d["dashboard"]["title"], "type": "dash-db",
             "folderUid": d["folderUid"], "tags": d["dashboard"].get("tags", [])}
            for uid, d in self.dashboards.items()
            if (not folders or d["folderUid"] in folders)
            and text in d["dashboard"]["title"].lower()
        ]  # fmt: skip
        return Reply(200, hits)

    def _get_dashboard(self, request: Recorded, segments: list[str], query: Any) -> Reply:
        stored = self.dashboards.get(segments[-1])
        if stored is None:
            return Reply(404, {"message": "Dashboard not found", "status": "not-found"})
        meta = {"folderUid": stored["folderUid"], "version": stored["version"]}
        dashboard = {**stored["dashboard"], "version": stored["version"]}
        return Reply(200, {"dashboard": dashboard, "meta": meta})

    def _delete_dashboard(self, request: Recorded, segments: list[str], query: Any) -> Reply:
        if self.dashboards.pop(segments[-1], None) is None:
            return Reply(404, {"message": "Dashboard not found"})
        return Reply(200, {"message": "deleted"})

    def _save_dashboard(self, request: Recorded, segments: list[str], query: Any) -> Reply:
        data = request.json()
        dashboard, folder = dict(data["dashboard"]), data.get("folderUid", "")
        if folder and folder not in self.folders:
            return Reply(400, {"message": "folder not found"})
        uid = dashboard.get("uid")
        stored = self.dashboards.get(uid) if uid else None
        if (
            stored is not None
            and not data.get("overwrite")
            and dashboard.get("version") != stored["version"]
        ):
            return Reply(412, {"message": "changed", "status": "version-mismatch"})
        if stored is None and any(
            d["folderUid"] == folder and d["dashboard"]["title"] == dashboard["title"]
            for d in self.dashboards.values()
        ):
            return Reply(412, {"message": "exists", "status": "name-exists"})
        uid = uid or f"d{next(self._ids):05d}"
        version = stored["version"] + 1 if stored else 1
        dashboard.update(uid=uid)
        dashboard.pop("version", None)
        self.dashboards[uid] = {"dashboard": dashboard, "folderUid": folder, "version": version}
        return Reply(200, {"uid": uid, "version": version, "url": f"/d/{uid}", "status": "success"})

    def _query(self, request: Recorded, segments: list[str], query: Any) -> Reply:
        data = request.json()
        self.queries.append(data)
        results = {
            q["refId"]: {"status": 200, "frames": [{"schema": {"name": q["datasource"]["uid"]}}]}
            for q in data["queries"]
        }
        return Reply(200, {"results": results})

    def _create_rule(self, request: Recorded, segments: list[str], query: Any) -> Reply:
        data = request.json()
        if data.get("folderUID") not in self.folders:
            return Reply(400, {"message": "folder not found"})
        uid = f"r{next(self._ids):05d}"
        self.alert_rules[uid] = {
            **data,
            "uid": uid,
            "provenance": request.header("x-disable-provenance"),
        }
        return Reply(201, self.alert_rules[uid])
