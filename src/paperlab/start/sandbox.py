"""A sandbox for model-written Python: a security boundary, not a convenience.

START's tool loop runs code that a language model wrote. That code is untrusted: it may (by accident
or because a prompt made it) read secrets, write over the caller's files, reach the network, or try to
bring the host down. :func:`run_python` runs it in a separate process that is boxed in by the Linux
kernel, and refuses to run at all (:class:`SandboxUnavailable`, a one-line error) where the box cannot
be built — it never falls back to running code unprotected.

Threat model
------------
The adversary is the code (any Python, including ``ctypes`` and ``os.fork``), running with the
interpreter and the libraries installed for the caller. It wins if it can

=====================================  ==============================================================
read the caller's secrets              environment: the child starts from an *empty* environment
                                       (``env -i`` + a minimal PATH/HOME/locale); other processes'
                                       ``/proc/<pid>/environ``: a private PID namespace with its own
                                       ``/proc`` shows none of them; the caller's home
                                       (``$HOME`` and the passwd entry) and every ``hide=`` folder:
                                       covered by an empty read-only tmpfs
write the caller's files               the code runs under a fresh unprivileged uid/gid (one per call,
                                       from :data:`UID_RANGE`, owning no host file) with no supplementary groups, no capabilities (empty bounding
                                       set) and ``no_new_privs`` (no set-uid escalation): root-owned
                                       files and folders are not writable; the world-writable host
                                       folders (``/tmp``, ``/var/tmp``, ``/dev/shm``, ``/run/lock``)
                                       are replaced by private size-limited tmpfs mounts
reach the network                      a private network namespace: only a loopback device (down);
                                       the host's sockets, also on 127.0.0.1 and abstract Unix
                                       sockets, are out of reach
exhaust the host                       rlimits: CPU seconds (RLIMIT_CPU, SIGXCPU then SIGKILL),
                                       address space (RLIMIT_AS), processes+threads of the call's uid
                                       (RLIMIT_NPROC: effective because the code is not root), file
                                       size (RLIMIT_FSIZE), open files, no core dumps; a wall-clock
                                       limit; an output cap (pipes read incrementally, the box killed
                                       at the cap). At the end the whole PID namespace dies with its
                                       init, so no daemonised or ``setsid`` child outlives a call.
escape with ctypes                     system calls run unprivileged, without capabilities: ``setuid(0)``,
                                       ``unshare(CLONE_NEWNET)``, ``mount`` fail with EPERM; a new
                                       user namespace cannot unmount the locked tmpfs covers
=====================================  ==============================================================

How it is built: ``unshare --net --mount --pid --ipc --uts --fork --kill-child --mount-proc`` runs a
small ``/bin/sh`` script as root inside the new namespaces (root is needed to build them and to drop
to the unprivileged uid; the script is PID 1 there). It mounts the private tmpfs covers, binds the Python runtime
back read-only where it lies under a covered folder (here pyenv lives in ``/root``), makes the working
folder ``/tmp/work`` (inside the private tmpfs: the throw-away working directory; it vanishes with the
namespace, nothing is left on the host's disk), prints a readiness marker, then starts
``prlimit ... -- setpriv --reuid UID ... -- env -i ... python -I -c RUNNER``. ``python -I``
(isolated: no ``PYTHON*`` variables, no user site, no cwd on ``sys.path``) keeps the interpreter's
standard library and site-packages importable (numpy/sympy for the model's computations), which the
paper's code interpreter has; ``-S`` would remove them. The code arrives on stdin as JSON.

Why shell tools rather than ``preexec_fn``: the host process runs llama.cpp threads, and Python warns
that ``preexec_fn`` is unsafe with threads (a fork can copy a held lock); ``unshare``, ``prlimit`` and
``setpriv`` (util-linux) do the same system calls in their own processes.

Requirements (checked by :func:`sandbox_status`, once per process): Linux, running as root, util-linux
``unshare``/``setpriv``/``prlimit``/``mount``, and a probe run that reports its uid,
its empty environment and no network.

Not covered (honestly): kernel exploits (a kernel bug can break any namespace/uid boundary; seccomp
filters would shrink that surface and are not applied: no seccomp library is installed); timing and
other side channels; reading world-readable host files outside the covered folders (the repository,
the interpreter, ``/etc``: they are readable, by design, so libraries import — put anything secret in
``hide=``); memory in total is bounded by ``max_processes x memory_mb`` (+ the tmpfs sizes), not by a
cgroup (``max_processes x memory_mb`` per call);
disk I/O bandwidth and the CPU share inside the wall-time window are not limited beyond the rlimits.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import pwd
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from paperlab.core.errors import UserError

#: printed by the setup script on stderr right before the untrusted code starts
READY = "<<paperlab-sandbox-ready>>\n"
#: the working folder inside the box (on the private /tmp tmpfs)
WORKDIR = "/tmp/work"
#: world-writable host folders replaced by private tmpfs mounts
PRIVATE_TMP = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
SETUP_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
TOOLS = ("unshare", "setpriv", "prlimit", "mount", "env")


class SandboxUnavailable(UserError):
    """The protections cannot be built on this machine: the sandbox refuses to run code."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one call. Defaults follow CoRT's 30 s per call for the wall clock."""

    cpu_seconds: int = 10
    wall_seconds: float = 30.0
    memory_mb: int = 512          # RLIMIT_AS per process
    max_processes: int = 16       # RLIMIT_NPROC of the call's uid (threads count)
    max_output_bytes: int = 65536  # stdout + stderr together
    max_file_mb: int = 16         # RLIMIT_FSIZE and the size of the private /tmp
    max_open_files: int = 64

    def __post_init__(self):
        for name in ("cpu_seconds", "memory_mb", "max_processes", "max_output_bytes", "max_file_mb",
                     "max_open_files"):
            if int(getattr(self, name)) < 1:
                raise UserError(f"sandbox limit {name}={getattr(self, name)} must be >= 1", "pass a positive limit")
        if not self.wall_seconds > 0:
            raise UserError(f"sandbox wall_seconds={self.wall_seconds} must be > 0", "pass a positive wall time")


@dataclass
class ExecResult:
    """What one sandboxed call did. ``killed`` names why the box was killed (``"wall_time"``,
    ``"output_cap"``) or is None; ``exit_code`` < 0 is death by that signal (``-9`` SIGKILL: the CPU
    limit's hard stop or our kill)."""

    stdout: str
    stderr: str
    exit_code: int | None
    killed: str | None
    seconds: float
    output_bytes: int
    uid: int | None = None  # the unprivileged uid the call ran under

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.killed is None

    def observation(self, max_chars: int = 800) -> str:
        """The text the model sees after its code: stdout, then the error (last traceback line) or why
        the call was stopped; cut to ``max_chars``."""
        out = self.stdout.rstrip()
        if self.killed == "wall_time":
            out += "\nTimeoutError: execution exceeded the time limit"
        elif self.killed == "output_cap":
            out += "\n[output truncated: too much output]"
        elif self.exit_code != 0:
            lines = [ln for ln in self.stderr.strip().splitlines() if ln.strip()]
            if lines:
                out += "\n" + lines[-1]
            elif self.exit_code is not None and self.exit_code < 0:
                out += f"\nKilled by signal {-self.exit_code} (resource limit)"
        out = out.strip()
        return out if len(out) <= max_chars else out[: max_chars // 2] + "\n...\n" + out[-max_chars // 2:]


# The program the box runs (unprivileged): cells arrive on stdin as JSON; earlier cells re-run with their
# output discarded (notebook-like state, as CoRT's executor), the last one prints; a last bare expression
# is printed like a notebook cell. Errors: a traceback of the cell's own frames on stderr, exit 1.
RUNNER = r"""
import ast, contextlib, io, json, sys, traceback
cells = json.loads(sys.stdin.read())
sys.stdin = io.StringIO("")
g = {"__name__": "__main__", "__builtins__": __builtins__}
def run(src, name, show):
    tree = ast.parse(src, name, "exec")
    tail = None
    if show and tree.body and isinstance(tree.body[-1], ast.Expr):
        tail = ast.Expression(tree.body.pop().value)
    exec(compile(tree, name, "exec"), g)
    if tail is not None:
        v = eval(compile(tail, name, "eval"), g)
        if v is not None:
            print(repr(v))
for i, src in enumerate(cells[:-1]):
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            run(src, "<cell %d>" % i, False)
    except BaseException:
        pass
try:
    run(cells[-1], "<cell>", True)
except SystemExit as e:
    sys.stdout.flush()
    raise
except BaseException as e:
    sys.stdout.flush()
    tb = traceback.extract_tb(e.__traceback__)
    tb = [f for f in tb if f.filename.startswith("<cell")] or tb[-1:]
    sys.stderr.write("Traceback (most recent call last):\n" + "".join(traceback.format_list(tb))
                     + "".join(traceback.format_exception_only(type(e), e)))
    sys.stderr.flush()
    sys.exit(1)
"""


#: each call runs under its own unprivileged uid (= gid) drawn from this range, which no host account uses:
#: RLIMIT_NPROC then counts that call's processes only (not other sandboxes', not the host's ``nobody``
#: daemons), and no host file is owned by it.
UID_RANGE = (3_100_000, 3_200_000)


def _sandbox_uid() -> tuple[int, int]:
    import secrets

    uid = UID_RANGE[0] + secrets.randbelow(UID_RANGE[1] - UID_RANGE[0])
    return uid, uid


def is_sandbox_uid(uid: int) -> bool:
    return UID_RANGE[0] <= uid < UID_RANGE[1]


def caller_homes() -> list[str]:
    """The caller's home folders: ``$HOME`` and the passwd entry of the effective uid."""
    homes = {os.path.expanduser("~")}
    try:
        homes.add(pwd.getpwuid(os.geteuid()).pw_dir)
    except KeyError:
        pass
    return sorted(h for h in homes if h and h != "/")


def _runtime_paths(python: str) -> list[str]:
    """Folders the interpreter needs (its prefix, base prefix, real executable's folder, site-packages)."""
    import site

    paths = {sys.prefix, sys.base_prefix, str(Path(python).resolve().parent.parent)}
    paths.update(p for p in site.getsitepackages() if os.path.isdir(p))
    return sorted(os.path.realpath(p) for p in paths)


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _setup_script(limits: Limits, hide: Sequence[str], python: str, uid: int, gid: int) -> str:
    """The root shell script run as PID 1 of the new namespaces (see the module docstring)."""
    q = shlex.quote
    covers = [os.path.realpath(h) for h in hide if os.path.isdir(h)]
    covers = [c for c in dict.fromkeys(covers) if c != "/" and not any(_under(c, t) for t in PRIVATE_TMP)]
    runtime = [r for r in _runtime_paths(python) if any(_under(r, c) for c in covers)]
    # keep the outermost runtime folders only (a child folder is visible through its parent)
    runtime = [r for r in runtime if not any(r != o and _under(r, o) for o in runtime)]
    size = f"{limits.max_file_mb}m"
    lines = ["fail() { echo \"sandbox setup failed: $1\" >&2; exit 125; }"]
    lines.append(f"mount -t tmpfs -o size={size},mode=1777,nosuid,nodev tmpfs /tmp || fail tmp")
    for d in PRIVATE_TMP[1:]:
        lines.append(f"if [ -d {d} ]; then mount -t tmpfs -o size=1m,mode=1777,nosuid,nodev tmpfs {d} || fail {d}; fi")
    for i, r in enumerate(runtime):  # stage the runtime before its folder is covered
        lines.append(f"mkdir /tmp/.rt{i} && mount --bind {q(r)} /tmp/.rt{i} || fail stage")
    for c in covers:
        lines.append(f"mount -t tmpfs -o size=1m,mode=755,nosuid,nodev tmpfs {q(c)} || fail cover")
    for i, r in enumerate(runtime):
        lines.append(f"mkdir -p {q(r)} && mount --move /tmp/.rt{i} {q(r)} && "
                     f"mount -o remount,bind,ro {q(r)} && rmdir /tmp/.rt{i} || fail runtime")
    for c in covers:
        lines.append(f"mount -o remount,ro {q(c)} || fail cover-ro")
    lines.append(f"mkdir -m 700 {WORKDIR} && chown {uid}:{gid} {WORKDIR} && cd {WORKDIR} || fail workdir")
    mem = limits.memory_mb * 1024 * 1024
    fsize = limits.max_file_mb * 1024 * 1024
    child_env = ["PATH=/usr/bin:/bin", f"HOME={WORKDIR}", f"TMPDIR={WORKDIR}", "LANG=C.UTF-8", "PYTHONIOENCODING=utf-8",
                 "OPENBLAS_NUM_THREADS=1", "OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1", "MPLBACKEND=Agg"]
    cmd = (["prlimit", f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 1}", f"--as={mem}",
            f"--nproc={limits.max_processes}", f"--fsize={fsize}", f"--nofile={limits.max_open_files}", "--core=0",
            "--", "setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--no-new-privs",
            "--inh-caps=-all", "--bounding-set=-all", "--", "env", "-i", *child_env, python, "-I", "-c", RUNNER])
    lines.append(f"echo {q(READY.strip())} >&2")
    # not `exec`: this root shell stays PID 1, so the namespace (and every process in it) dies with it
    lines.append(" ".join(q(c) for c in cmd))
    lines.append("exit $?")
    return "\n".join(lines)


def _missing_requirement() -> str | None:
    if platform.system() != "Linux":
        return f"it needs Linux namespaces (this is {platform.system()})"
    if os.geteuid() != 0:
        return "it must start as root to build namespaces and drop to an unprivileged uid"
    missing = [t for t in TOOLS if shutil.which(t, path=SETUP_ENV["PATH"]) is None]
    if missing:
        return f"util-linux tools missing: {', '.join(missing)}"
    return None


@functools.lru_cache(maxsize=4)
def sandbox_status(python: str = sys.executable) -> tuple[bool, str]:
    """``(True, "ok")`` when every protection can be built here (a probe run checks uid, environment,
    network), else ``(False, why)``. Cached per process."""
    why = _missing_requirement()
    if why:
        return False, why
    probe = ("import os, socket\nprint(os.getuid(), sorted(os.environ))\n"
             "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=1); print('NET')\n"
             "except OSError:\n    print('nonet')")
    try:
        r = _execute([probe], Limits(wall_seconds=20), (), python)
    except SandboxUnavailable as e:
        return False, e.problem
    uid = int(r.stdout.split(" ", 1)[0]) if r.stdout.split(" ", 1)[0].isdigit() else -1
    if not r.ok or not is_sandbox_uid(uid) or "nonet" not in r.stdout:
        return False, f"the probe run did not come back boxed (exit {r.exit_code}: {(r.stdout + r.stderr)[-200:]!r})"
    import ast

    env_names = set(ast.literal_eval(r.stdout.split(" ", 1)[1].splitlines()[0]))  # the names it printed
    allowed = {"PATH", "HOME", "TMPDIR", "LANG", "PYTHONIOENCODING", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
               "MKL_NUM_THREADS", "MPLBACKEND", "LC_CTYPE"}
    if not env_names <= allowed:
        return False, f"the probe saw environment variables {sorted(env_names - allowed)}"
    return True, "ok"


def check_sandbox(python: str = sys.executable) -> None:
    """Raise :class:`SandboxUnavailable` (one line) unless the sandbox can run here."""
    ok, why = sandbox_status(python)
    if not ok:
        raise SandboxUnavailable(f"the code sandbox cannot run here: {why}",
                                 "run as root on Linux with util-linux (unshare, setpriv, prlimit); "
                                 "model-written code is never run unprotected")


def run_python(code: str | Sequence[str], limits: Limits | None = None, hide: Sequence[str] = (),
               python: str = sys.executable) -> ExecResult:
    """Run untrusted Python in the sandbox and return what it printed.

    ``code`` is one cell, or a list of cells: the earlier ones re-run silently (the state a notebook
    would have), the last one's output is returned. ``hide`` adds folders to cover (the caller's homes are
    always covered). Raises :class:`SandboxUnavailable` when the protections cannot be built here.
    """
    cells = [code] if isinstance(code, str) else list(code)
    if not cells:
        raise ValueError("no code to run")
    check_sandbox(python)
    return _execute(cells, limits or Limits(), hide, python)


def _execute(cells: list[str], limits: Limits, hide: Sequence[str], python: str) -> ExecResult:
    uid, gid = _sandbox_uid()
    script = _setup_script(limits, [*caller_homes(), *hide], python, uid, gid)
    cmd = ["unshare", "--net", "--mount", "--pid", "--ipc", "--uts", "--fork", "--kill-child", "--mount-proc",
           "--propagation", "private", "--", "/bin/sh", "-c", script]
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=dict(SETUP_ENV), cwd="/", start_new_session=True, close_fds=True)
    except OSError as e:
        raise SandboxUnavailable(f"the code sandbox cannot start: {e}", "install util-linux; run as root") from None
    payload = json.dumps(cells).encode("utf-8")
    threading.Thread(target=_feed, args=(proc.stdin, payload), daemon=True).start()
    out, err, killed, total = _collect(proc, limits, t0)
    try:  # the pipes may close before the process ends (os.close(1), then a hang): the wall clock still rules
        code = proc.wait(timeout=max(0.1, t0 + limits.wall_seconds - time.monotonic()))
    except subprocess.TimeoutExpired:
        killed = killed or "wall_time"
        _kill(proc)
        code = proc.wait()
    seconds = time.monotonic() - t0
    err_text = err.decode("utf-8", "replace")
    if READY not in err_text:
        if killed:
            raise SandboxUnavailable(f"the code sandbox did not start within {limits.wall_seconds:g} s",
                                     "raise the wall-time limit")
        raise SandboxUnavailable(f"the code sandbox could not be built (exit {code}): "
                                 f"{err_text.strip().splitlines()[-1:] or ['no message']}",
                                 "run as root on Linux with util-linux (unshare, setpriv, prlimit)")
    err_text = err_text.split(READY, 1)[1]
    # sh reports a child killed by signal s as 128+s
    if code is not None and code > 128 and code - 128 in (signal.SIGKILL, signal.SIGXCPU, signal.SIGSEGV,
                                                           signal.SIGABRT, signal.SIGXFSZ, signal.SIGBUS):
        code = -(code - 128)
    return ExecResult(stdout=out.decode("utf-8", "replace"), stderr=err_text, exit_code=code, killed=killed,
                      seconds=seconds, output_bytes=total, uid=uid)


def _feed(pipe, payload: bytes) -> None:
    try:
        pipe.write(payload)
    except (BrokenPipeError, OSError):
        pass
    finally:
        try:
            pipe.close()
        except OSError:
            pass


def _kill(proc: subprocess.Popen) -> None:
    """Kill the box: the process group (unshare and the namespace's init); the kernel then kills every
    process left in the PID namespace, including any that left the group with setsid()."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _collect(proc: subprocess.Popen, limits: Limits, t0: float) -> tuple[bytes, bytes, str | None, int]:
    """Read stdout/stderr as they come; kill the box at the wall-time limit or the output cap."""
    sel = selectors.DefaultSelector()
    bufs = {"out": bytearray(), "err": bytearray()}
    sel.register(proc.stdout, selectors.EVENT_READ, "out")
    sel.register(proc.stderr, selectors.EVENT_READ, "err")
    killed: str | None = None
    ready_len = len(READY)
    deadline = t0 + limits.wall_seconds
    while sel.get_map():
        left = deadline - time.monotonic()
        if left <= 0 and killed is None:
            killed = "wall_time"
            _kill(proc)
            deadline = time.monotonic() + 5  # drain what is left, briefly
            left = 5
        elif left <= 0:
            break
        for key, _ in sel.select(timeout=min(left, 0.5)):
            chunk = os.read(key.fileobj.fileno(), 65536)
            if not chunk:
                sel.unregister(key.fileobj)
                continue
            bufs[key.data] += chunk
            total = len(bufs["out"]) + max(0, len(bufs["err"]) - ready_len)
            if total > limits.max_output_bytes and killed is None:
                killed = "output_cap"
                _kill(proc)
    sel.close()
    total = len(bufs["out"]) + max(0, len(bufs["err"]) - ready_len)
    cap = limits.max_output_bytes
    return bytes(bufs["out"][:cap]), bytes(bufs["err"][: cap + ready_len]), killed, total
