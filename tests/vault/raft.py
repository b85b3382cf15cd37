"""A real 3-node OpenBao cluster with integrated (raft) storage on 127.0.0.1, for failover tests.

Each node is the same ``bao`` binary with its own config file, data directory and two free ports
(API and cluster). The nodes start in parallel; the first is initialised with one key share and
unsealed, the others join it through ``retry_join`` and are unsealed with the same key. Raft's
``performance_multiplier = 1`` keeps elections quick. Every node is stopped by PID.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hvac
import requests

from tests.vault.conftest import Bao, admin_client, free_port

NODES = 3


@dataclass
class Node:
    """One cluster member: its ports, directory and process."""

    name: str
    workdir: Path
    api_port: int = field(default_factory=free_port)
    cluster_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def config(self, peers: list[str]) -> str:
        joins = "\n".join(f'  retry_join {{ leader_api_addr = "{peer}" }}' for peer in peers)
        return f"""
storage "raft" {{
  path = "{self.workdir / "raft"}"
  node_id = "{self.name}"
  performance_multiplier = 1
{joins}
}}
listener "tcp" {{
  address = "127.0.0.1:{self.api_port}"
  cluster_address = "127.0.0.1:{self.cluster_port}"
  tls_disable = true
}}
api_addr = "{self.addr}"
cluster_addr = "https://127.0.0.1:{self.cluster_port}"
disable_mlock = true
"""

    def health(self) -> dict[str, Any] | None:
        """sys/health of this node alone (any state answers 200 with these parameters)."""
        session = requests.Session()
        session.trust_env = False
        params = {"standbycode": 200, "sealedcode": 200, "uninitcode": 200, "perfstandbyok": "true"}
        try:
            answer = session.get(f"{self.addr}/v1/sys/health", params=params, timeout=2)
            data: dict[str, Any] = answer.json()
        except (requests.RequestException, ValueError):
            return None
        finally:
            session.close()
        return data

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class RaftCluster:
    """Three OpenBao nodes, their unseal key and root token."""

    binary: str
    workdir: Path
    nodes: list[Node] = field(default_factory=list)
    unseal_key: str = ""
    root_token: str = ""

    def start(self) -> None:
        self.nodes = [Node(f"node{i + 1}", self.workdir / f"node{i + 1}") for i in range(NODES)]
        peers = [node.addr for node in self.nodes]
        for node in self.nodes:
            (node.workdir / "raft").mkdir(parents=True)
            (node.workdir / "bao.hcl").write_text(node.config(peers))
            self._spawn(node)
        first = self.nodes[0]
        self._wait(lambda: all(n.health() is not None for n in self.nodes), "nodes answering")
        done = self._bao("operator", "init", "-key-shares=1", "-key-threshold=1", "-format=json")
        keys = json.loads(done.stdout)
        self.unseal_key = keys["unseal_keys_b64"][0]
        self.root_token = keys["root_token"]
        self.unseal(first)
        self._wait(lambda: (first.health() or {}).get("standby") is False, "node1 active")
        for node in self.nodes[1:]:
            self._wait(lambda n=node: (n.health() or {}).get("initialized") is True, "joined")
            self.unseal(node)
        self._wait(lambda: self.voters() == NODES, "three raft voters")

    def _spawn(self, node: Node) -> None:
        log = (node.workdir / "bao.log").open("ab")
        node.process = subprocess.Popen(
            [self.binary, "server", f"-config={node.workdir / 'bao.hcl'}"],
            env=self._env(),
            cwd=node.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()

    def heal(self) -> None:
        """Restart and unseal every node that was killed; wait for three voters and a leader."""
        for node in self.nodes:
            if not node.alive:
                self._spawn(node)
                self._wait(lambda n=node: n.health() is not None, f"{node.name} answering")
                self.unseal(node)
        self._wait(lambda: self.voters() == NODES, "three raft voters again")

    def _env(self) -> dict[str, str]:
        return Bao(self.binary, self.workdir).env()

    def _bao(self, *args: str, addr: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**self._env(), "BAO_ADDR": addr or self.nodes[0].addr}
        if self.root_token:
            env["BAO_TOKEN"] = self.root_token
        done = subprocess.run(
            [self.binary, *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        return done

    def unseal(self, node: Node) -> None:
        """Submit the unseal key (retried while the node is still joining)."""
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = admin_client(node.addr, "").sys.submit_unseal_key(self.unseal_key)
                if not answer.get("sealed"):
                    return
            except (requests.RequestException, hvac.exceptions.VaultError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{node.name} did not unseal: {self.log(node)[-2000:]}")
            time.sleep(0.2)

    def _wait(self, reached: Any, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not reached():
            if time.monotonic() > deadline:
                logs = "\n".join(self.log(n)[-800:] for n in self.nodes)
                raise RuntimeError(f"raft cluster: no {what} within {timeout}s\n{logs}")
            time.sleep(0.2)

    def log(self, node: Node) -> str:
        return (node.workdir / "bao.log").read_text(errors="replace")

    def leader(self) -> Node | None:
        """The node that reports itself active, if any."""
        for node in self.nodes:
            if node.alive and (node.health() or {}).get("standby") is False:
                return node
        return None

    def voters(self) -> int:
        leader = self.leader()
        if leader is None:
            return 0
        try:
            answer = admin_client(leader.addr, self.root_token).adapter.get(
                "/v1/sys/storage/raft/configuration"
            )
        except (requests.RequestException, hvac.exceptions.VaultError):
            return 0
        servers = answer["data"]["config"]["servers"]
        return sum(1 for s in servers if s.get("voter"))

    def admin(self) -> Any:
        """A root client of the current leader."""
        leader = self.leader()
        assert leader is not None
        return admin_client(leader.addr, self.root_token)

    def kill(self, node: Node) -> None:
        assert node.process is not None
        node.process.kill()
        node.process.wait(timeout=10)

    def stop(self) -> None:
        """Stop every node by PID: SIGTERM, wait, SIGKILL."""
        running = [n.process for n in self.nodes if n.process is not None]
        for node in self.nodes:
            node.process = None
        for process in running:
            if process.poll() is None:
                process.terminate()
        for process in running:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
