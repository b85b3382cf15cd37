"""docker-compose.test.yml: well-formed, loopback-only, pinned, and agreeing with the docs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.test.yml"


def services() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    found: dict[str, Any] = data["services"]
    return found


def test_has_the_four_services() -> None:
    """OpenBao, PostgreSQL, an SMTP catcher and ntfy, each with an image."""
    assert set(services()) == {"openbao", "postgres", "smtp", "ntfy"}
    assert all(service.get("image") for service in services().values())


def test_images_are_pinned() -> None:
    """Every image names a version tag, never 'latest' or none."""
    for name, service in services().items():
        image = service["image"]
        tag = image.rpartition(":")[2] if ":" in image else ""
        assert tag, f"{name}: {image}"
        assert tag != "latest", f"{name}: {image}"


def test_ports_are_published_on_loopback_only() -> None:
    """Every published port is bound to 127.0.0.1: nothing listens on other interfaces."""
    for name, service in services().items():
        for port in service.get("ports", []):
            assert isinstance(port, str), f"{name}: use the 'HOST:PORT:PORT' string form"
            assert port.startswith("127.0.0.1:"), f"{name}: {port}"


def test_openbao_matches_the_examples() -> None:
    """The dev root token and address are the ones examples/vault tells users to export."""
    bao = services()["openbao"]
    assert "-dev" in bao["command"]
    assert "-dev-root-token-id=dev-root" in bao["command"]
    assert "127.0.0.1:8200:8200" in bao["ports"]
    vault_readme = (REPO / "examples" / "vault" / "README.md").read_text()
    assert "BAO_TOKEN=dev-root" in vault_readme
    assert "BAO_ADDR=http://127.0.0.1:8200" in vault_readme


def test_readme_documents_it() -> None:
    """README.md has a section on the compose file naming each service's address."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Docker: the test services", 1)[1].split("\n## ", 1)[0]
    assert "docker compose -f docker-compose.test.yml up -d" in section
    for address in ("127.0.0.1:8200", "127.0.0.1:5432", "127.0.0.1:1025", "127.0.0.1:8090"):
        assert address in section
    assert re.search(r"PG_HOST=postgres\b", section)
