"""A local Pokémon Showdown server for offline battles (the paper plays on Showdown; we start our own).

The npm package ``pokemon-showdown`` (pinned :data:`SHOWDOWN_VERSION`) is installed once with npm into a
folder this project owns (``$PAPERLAB_HOME/showdown``, default ``~/.cache/paperlab/showdown``; the
environment variable ``PAPERLAB_SHOWDOWN_DIR`` overrides it), then started as
``node pokemon-showdown start --no-security <port>`` on a free loopback port with a small ``config.js``
(loopback only, no REPL socket, no file writing, simulator in-process).

:class:`ShowdownServer` is always stopped: it is a context manager, registers an ``atexit`` hook, and turns
SIGTERM/SIGHUP into a normal exit while it runs, so ``with ShowdownServer() as s: ...`` kills the whole
process group after a failure, Ctrl-C or a kill. Readiness = the HTTP front page answers.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from paperlab.core.errors import UserError

SHOWDOWN_VERSION = "0.11.11"

#: Overrides of Showdown's config-example.js (the server merges them with its defaults).
CONFIG_JS = """\
// written by paperlab.pokechamp: a private, loopback-only server for local bot battles
exports.bindaddress = '127.0.0.1';
exports.repl = false;
exports.nofswriting = true;
exports.subprocesses = 0;
exports.noguestsecurity = true;
exports.crashguard = true;
"""


def showdown_dir() -> Path:
    """Where the npm package lives (created on first use)."""
    if os.environ.get("PAPERLAB_SHOWDOWN_DIR"):
        return Path(os.environ["PAPERLAB_SHOWDOWN_DIR"]).expanduser()
    home = Path(os.environ.get("PAPERLAB_HOME", Path.home() / ".cache" / "paperlab")).expanduser()
    return home / "showdown"


def package_dir(root: Path | None = None) -> Path:
    return (root or showdown_dir()) / "node_modules" / "pokemon-showdown"


def check_node() -> tuple[str, str]:
    """Paths of ``node`` and ``npm``; a one-line :class:`UserError` when either is missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(n for n, p in (("node", node), ("npm", npm)) if p is None)
        raise UserError(f"{missing} not found on PATH (the local Pokémon Showdown server needs Node.js >= 16)",
                        "install Node.js and npm (e.g. apt-get install nodejs npm), then retry")
    return node, npm


def installed_version(root: Path | None = None) -> str | None:
    import json

    pj = package_dir(root) / "package.json"
    try:
        return json.loads(pj.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def install(root: Path | None = None, timeout: float = 600.0) -> Path:
    """Install ``pokemon-showdown@SHOWDOWN_VERSION`` with npm into ``root`` unless it is there; returns the
    package folder (with its config.js written)."""
    root = root or showdown_dir()
    _, npm = check_node()
    if installed_version(root) != SHOWDOWN_VERSION:
        root.mkdir(parents=True, exist_ok=True)
        cmd = [npm, "install", "--omit=optional", "--no-audit", "--no-fund", "--no-save",
               f"pokemon-showdown@{SHOWDOWN_VERSION}"]
        try:
            r = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise UserError(f"npm install pokemon-showdown timed out after {timeout:.0f} s",
                            "check network access to the npm registry, or install it by hand into " + str(root)) from None
        if r.returncode != 0 or installed_version(root) != SHOWDOWN_VERSION:
            last = (r.stderr.strip().splitlines() or ["no output"])[-1]
            raise UserError(f"npm install pokemon-showdown@{SHOWDOWN_VERSION} failed: {last}",
                            f"check network access to the npm registry (or install it by hand into {root})")
    pkg = package_dir(root)
    (pkg / "config").mkdir(exist_ok=True)
    cfg = pkg / "config" / "config.js"
    if not cfg.exists() or cfg.read_text() != CONFIG_JS:
        cfg.write_text(CONFIG_JS)
    for sub in ("logs/repl", "config/chat-plugins"):
        (pkg / sub).mkdir(parents=True, exist_ok=True)
    return pkg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_LIVE: set[ShowdownServer] = set()


def _stop_all() -> None:
    for s in list(_LIVE):
        s.stop()


atexit.register(_stop_all)


class ShowdownServer:
    """A local Showdown server process (group) on ``127.0.0.1:port``; use as a context manager.

    ``start()`` installs (first use), launches and waits until the front page answers (``ready_timeout``);
    ``stop()`` terminates the process group (SIGTERM, then SIGKILL after ``grace`` s) and is idempotent.
    """

    def __init__(self, port: int | None = None, root: Path | None = None, ready_timeout: float = 180.0,
                 grace: float = 5.0, log_path: Path | None = None):
        self.port = port or free_port()
        self.root = root
        self.ready_timeout, self.grace = ready_timeout, grace
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self._old_handlers: dict[int, object] = {}
        self._log = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def websocket_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/showdown/websocket"

    def server_configuration(self):
        """poke-env's ServerConfiguration for this server (no authentication: --no-security)."""
        from poke_env.ps_client.server_configuration import ServerConfiguration

        return ServerConfiguration(self.websocket_url, f"{self.http_url}/action.php?")

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.http_url + "/", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def start(self) -> ShowdownServer:
        if self.proc is not None:
            return self
        node, _ = check_node()
        pkg = install(self.root)
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [node, "pokemon-showdown", "start", "--no-security", str(self.port)], cwd=pkg,
            stdout=self._log or subprocess.DEVNULL, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)   # its own process group: stop() kills the workers too
        _LIVE.add(self)
        self._install_signal_handlers()
        deadline = time.monotonic() + self.ready_timeout
        while not self.is_ready():
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise UserError(f"the Showdown server exited with code {code} before it was ready",
                                f"see its log ({self.log_path or 'pass log_path'}); try removing {pkg}")
            if time.monotonic() > deadline:
                self.stop()
                raise UserError(f"the Showdown server was not ready after {self.ready_timeout:.0f} s",
                                "the machine may be overloaded: retry, or raise the readiness timeout")
            time.sleep(0.5)
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        _LIVE.discard(self)
        self._restore_signal_handlers()
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(self.grace)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(self.grace)
            except ProcessLookupError:
                pass
        if proc is not None:
            try:   # workers left behind by a dead leader
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # SIGTERM / SIGHUP -> SystemExit, so `with` blocks and atexit run and the server is stopped.
    def _install_signal_handlers(self) -> None:
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGHUP):
            old = signal.getsignal(sig)
            if old in (signal.SIG_DFL, None):
                self._old_handlers[sig] = old
                signal.signal(sig, _exit_on_signal)

    def _restore_signal_handlers(self) -> None:
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        for sig, old in self._old_handlers.items():
            signal.signal(sig, old or signal.SIG_DFL)
        self._old_handlers.clear()

    def __enter__(self) -> ShowdownServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)
