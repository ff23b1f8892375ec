"""Start the service under real gunicorn, as `make run` does, on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, timeout: float = 60.0, process: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers 200, failing early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or busy migrating
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@contextmanager
def gunicorn(env: dict, app: str = "api:app", log_path: Path | None = None, command: list[str] | None = None,
             cwd: Path = ROOT):
    """Run gunicorn with gunicorn.conf.py and ``env`` on a free port, from ``cwd``; yield its base URL."""
    port = free_port()
    full_env = {**os.environ, "PORT": str(port), **env}
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(
        command or [str(GUNICORN), "-c", "gunicorn.conf.py", app],
        cwd=cwd, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base_url}/health", process=process)
        yield base_url
    finally:
        stop(process)
        if log_path:
            log.close()


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, SIGKILL if it lingers; nothing if it already exited."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:  # exited on its own (it failed to start): its error is what matters
        process.wait()
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
