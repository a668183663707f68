"""A real Hub-protocol server on loopback: olah in offline-mirror mode, serving local git repos.

olah serves ``<mirrors>/models/<org>/<repo>`` (a git work tree on branch ``main``) over the Hub's
HTTP API, so huggingface_hub's own download code runs unchanged against it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import git


def commit_folder(mirrors: Path, repo_id: str, folder: Path, message: str) -> str:
    """Commit the files of ``folder`` to the mirror repo ``repo_id`` (created on first use); returns the sha."""
    work = mirrors / "models" / repo_id
    repo = git.Repo(work) if (work / ".git").is_dir() else git.Repo.init(work, initial_branch="main", mkdir=True)
    for path in folder.iterdir():
        if path.is_file():
            (work / path.name).write_bytes(path.read_bytes())
            repo.index.add([path.name])
    who = git.Actor("zoo tests", "tests@zoo.invalid")
    return repo.index.commit(message, author=who, committer=who).hexsha


class OlahServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.mirrors = root / "mirrors"
        self.mirrors.mkdir(parents=True, exist_ok=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> OlahServer:
        config = self.root / "olah.toml"
        config.write_text(textwrap.dedent(f"""
            [basic]
            host = "127.0.0.1"
            port = {self.port}
            repos-path = {json.dumps(str(self.root / "repos"))}
            mirrors-path = [{json.dumps(str(self.mirrors))}]
            metadata-cache-ttl = 0

            [accessibility]
            offline = true
        """))
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        self.log = open(self.root / "olah.log", "wb")
        self.process = subprocess.Popen([sys.executable, "-m", "olah.server", "--config", str(config)], cwd=self.root, env=env,
                                        stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"olah exited: {(self.root / 'olah.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.endpoint}/api/whoami-v2", timeout=1)
                return self
            except urllib.error.HTTPError:  # any HTTP answer means it is serving
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("olah did not start within the timeout")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.process is not None:
            self.log.close()
        self.process = None

    def client_env(self, home: Path) -> dict[str, str]:
        """Environment for a fresh client process: the Hub endpoint is this server and nothing else."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env.update(HF_ENDPOINT=self.endpoint, HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_IMPLICIT_TOKEN="1")
        return env
