"""The red-team battery: attacks on :mod:`paperlab.start.sandbox`, each judged by what the HOST observes.

Each :class:`Attack` is real Python that tries one escape, run for real in the sandbox. Its outcome is
decided on the host side from side effects (a file that appeared or changed, a connection the host's
listener accepted, a secret that came back in the output, a host process that died, the time the box
took, processes of a sandbox uid left behind), not from what the attacking code says about itself.

The same checks flag a breach when the attack code runs *without* the sandbox (:func:`run_unboxed`,
used by the tests on the harmless attacks): a check that a broken sandbox would also pass is caught.

``paperlab start run`` runs the battery and reports each outcome (claim ``sandbox_blocks_all``).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from paperlab.start.sandbox import ExecResult, Limits, caller_homes, run_python

BOMB_LIMITS = Limits(cpu_seconds=2, wall_seconds=3.0, memory_mb=256, max_processes=12, max_output_bytes=8192)
#: the CPU limit must stop a busy loop long before the wall clock would
CPU_LIMITS = Limits(cpu_seconds=2, wall_seconds=20.0, memory_mb=256, max_processes=12, max_output_bytes=8192)


@dataclass
class Context:
    """What the host prepares before an attack: secrets to steal, folders to write into, a listener."""

    secret: str
    env_name: str
    home: Path                 # a home folder of the caller, holding a secret file
    victim_dir: Path           # a caller folder the box can see (world-readable, owned by the caller)
    victim_file: Path
    victim_text: str
    tmp_names: list[Path]      # files the attack tries to drop into the host's shared temp folders
    port: int                  # a host listener on 127.0.0.1
    listener: socket.socket
    abstract_name: str         # a host listener on an abstract Unix socket
    unix_listener: socket.socket
    sentinel: subprocess.Popen  # a host process the attack tries to kill
    box_port: int              # a port the attack tries to listen on for the host
    host_connected: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    attack: str
    contained: bool
    detail: str
    seconds: float
    exit_code: int | None = None
    killed: str | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Attack:
    name: str
    description: str
    code: Callable[[Context], str]
    judge: Callable[[Context, ExecResult], tuple[bool, str]]
    limits: Limits = Limits(cpu_seconds=5, wall_seconds=10.0, max_output_bytes=65536)
    harmless_unboxed: bool = False   # safe to run without the sandbox (to show the judge detects a breach)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def prepared(victim_root: Path | str | None = None, home: Path | str | None = None):
    """Set up a :class:`Context` (secrets, victim folders, listeners, a sentinel) and tear it down.

    ``victim_root``: a folder of the caller that the box can see (default: the current folder; the
    victim folder is a fresh sub-folder, removed afterwards). ``home``: the caller home to plant the
    secret file in (default: a fresh folder that becomes ``$HOME`` for the duration).
    """
    secret = "paperlab-secret-" + secrets.token_hex(8)
    env_name = "PAPERLAB_REDTEAM_SECRET"
    old_env = {k: os.environ.get(k) for k in (env_name, "HOME")}
    root = Path(victim_root or os.getcwd())
    victim_dir = Path(tempfile.mkdtemp(prefix=".sandbox-victim-", dir=root))
    victim_dir.chmod(0o755)                        # an ordinary readable folder of the caller
    victim_file = victim_dir / "results.json"
    victim_file.write_text('{"accuracy": 0.5}\n')
    victim_file.chmod(0o644)
    made_home = home is None
    home_dir = Path(tempfile.mkdtemp(prefix="home-")) if made_home else Path(home)
    (home_dir / ".secret_token").write_text(secret)
    os.environ[env_name] = secret
    os.environ["HOME"] = str(home_dir)
    nonce = secrets.token_hex(6)
    tmp_names = [Path(d) / f"sandbox-pwned-{nonce}" for d in ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
                 if os.path.isdir(d)]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.05)
    abstract = f"paperlab-redteam-{nonce}"
    unix_listener = socket.socket(socket.AF_UNIX)
    unix_listener.bind("\0" + abstract)
    unix_listener.listen(8)
    unix_listener.settimeout(0.05)
    sentinel = subprocess.Popen(["sleep", "120"])
    ctx = Context(secret, env_name, home_dir, victim_dir, victim_file, victim_file.read_text(), tmp_names,
                  listener.getsockname()[1], listener, abstract, unix_listener, sentinel, _free_port())
    try:
        yield ctx
    finally:
        sentinel.kill()
        sentinel.wait()
        listener.close()
        unix_listener.close()
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(victim_dir, ignore_errors=True)
        if made_home:
            shutil.rmtree(home_dir, ignore_errors=True)
        else:
            (home_dir / ".secret_token").unlink(missing_ok=True)
        for p in tmp_names:
            p.unlink(missing_ok=True)


def _accepted(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except (TimeoutError, BlockingIOError, OSError):
        return False
    conn.close()
    return True


def sandbox_processes(uid: int | None = None) -> list[int]:
    """PIDs of live processes running under ``uid`` (default: any sandbox uid) on the host (a finished call
    must leave none)."""
    from paperlab.start.sandbox import is_sandbox_uid

    def match(u: int) -> bool:
        return u == uid if uid is not None else is_sandbox_uid(u)

    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                status = (d / "status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("Uid:") and match(int(line.split()[1])):
                    out.append(int(d.name))
    return out


# ---------------------------------------------------------------------------------------------------
# The attacks: code (a function of the context) and the host-side judge


def _env_code(ctx: Context) -> str:
    return f"""
import os, glob
print(dict(os.environ))
for p in glob.glob('/proc/*/environ') + ['/proc/{os.getpid()}/environ', '/proc/1/environ']:
    try:
        print(p, open(p, 'rb').read().replace(b'\\0', b' ').decode(errors='replace'))
    except OSError as e:
        print(p, 'denied', e.errno)
"""


def _secret_leaked(ctx: Context, r: ExecResult) -> tuple[bool, str]:
    leaked = ctx.secret in r.stdout or ctx.secret in r.stderr
    return (not leaked, "secret came back in the output" if leaked else "no secret in the output")


def _home_code(ctx: Context) -> str:
    homes = [str(ctx.home), *caller_homes()]
    return f"""
import os
for h in {homes!r} + [os.path.expanduser('~root')]:
    try:
        print(h, os.listdir(h))
    except OSError as e:
        print(h, 'denied', e.errno)
    for name in ('.secret_token', '.bashrc', '.netrc', '.ssh/id_rsa', '.gitconfig'):
        try:
            print(name, open(os.path.join(h, name)).read())
        except OSError as e:
            print(name, 'denied', e.errno)
"""


def _home_judge(ctx: Context, r: ExecResult) -> tuple[bool, str]:
    ok, why = _secret_leaked(ctx, r)
    gitconfig = Path(os.path.expanduser("~root")) / ".gitconfig"
    if ok and gitconfig.is_file() and gitconfig.read_text().strip() and gitconfig.read_text().strip() in r.stdout:
        return False, "the caller's real ~/.gitconfig was readable"
    return ok, why


def _write_code(ctx: Context) -> str:
    targets = [str(ctx.victim_dir / "pwned.txt"), str(ctx.home / "pwned.txt"), *map(str, ctx.tmp_names)]
    return f"""
import os
for t in {targets!r}:
    try:
        with open(t, 'w') as f: f.write('pwned')
        print('wrote', t)
    except OSError as e:
        print('denied', t, e.errno)
for t in [{str(ctx.victim_file)!r}]:
    for how in ('a', 'r+'):
        try:
            with open(t, how) as f: f.write('pwned')
        except OSError as e:
            print('denied', how, t, e.errno)
    for op in (lambda: os.chmod(t, 0o666), lambda: os.unlink(t), lambda: os.rename(t, t + '.x')):
        try:
            op()
        except OSError as e:
            print('denied op', e.errno)
"""


def _write_judge(ctx: Context, r: ExecResult) -> tuple[bool, str]:
    breaches = [p for p in (ctx.victim_dir / "pwned.txt", ctx.home / "pwned.txt", *ctx.tmp_names) if p.exists()]
    if not ctx.victim_file.exists() or ctx.victim_file.read_text() != ctx.victim_text:
        breaches.append(ctx.victim_file)
    elif ctx.victim_file.stat().st_mode & 0o777 != 0o644:
        breaches.append(ctx.victim_file)
    if breaches:
        return False, "host files written: " + ", ".join(map(str, breaches))
    return True, "no host file created or changed (caller folder, home, /tmp, /var/tmp, /dev/shm)"


def _net_code(ctx: Context) -> str:
    return f"""
import socket, time
for addr in [('127.0.0.1', {ctx.port}), ('1.1.1.1', 53), ('8.8.8.8', 443)]:
    try:
        socket.create_connection(addr, timeout=1).close(); print('connected', addr)
    except OSError as e:
        print('refused', addr, e.errno)
try:
    u = socket.socket(socket.AF_UNIX); u.settimeout(1); u.connect('\\0{ctx.abstract_name}'); print('unix connected')
except OSError as e:
    print('unix refused', e.errno)
try:
    s = socket.socket(); s.bind(('0.0.0.0', {ctx.box_port})); s.listen(1); s.settimeout(2.5)
    print('listening'); s.accept()
except OSError as e:
    print('listen', e.errno)
"""


def _net_judge(ctx: Context, r: ExecResult) -> tuple[bool, str]:
    got = []
    if _accepted(ctx.listener):
        got.append("the host's 127.0.0.1 listener accepted a connection")
    if _accepted(ctx.unix_listener):
        got.append("the host's abstract Unix socket accepted a connection")
    got += ctx.host_connected
    return (not got, "; ".join(got) or "no connection either way (host listener, Unix socket, box listener)")


def _fork_code(ctx: Context) -> str:
    return """
import os, time
n = 0
while True:
    try:
        if os.fork() == 0:
            while True: time.sleep(1)
        n += 1
    except OSError:
        time.sleep(0.01)
"""


def _survives(ctx: Context, r: ExecResult, bound: float) -> tuple[bool, str]:
    left = []
    for _ in range(20):  # the kernel tears the namespace down asynchronously
        left = sandbox_processes(r.uid) if r.uid is not None else []
        if not left:
            break
        time.sleep(0.1)
    if left:
        return False, f"{len(left)} sandbox processes outlived the call"
    if ctx.sentinel.poll() is not None:
        return False, "a host process was killed"
    if r.seconds > bound:
        return False, f"the box ran {r.seconds:.1f} s, past its bound {bound:.1f} s"
    try:
        subprocess.run(["true"], check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False, "the host can no longer start processes"
    return True, f"stopped after {r.seconds:.1f} s ({r.killed or f'exit {r.exit_code}'}); host fine, nothing left"


def _mem_code(ctx: Context) -> str:
    return """
chunks = []
try:
    while True:
        b = bytearray(32 * 1024 * 1024)
        b[::4096] = b'x' * len(b[::4096])
        chunks.append(b)
except MemoryError:
    print('MemoryError after', 32 * len(chunks), 'MB')
"""


def _mem_judge(ctx: Context, r: ExecResult) -> tuple[bool, str]:
    ok, why = _survives(ctx, r, BOMB_LIMITS.wall_seconds + 3)
    if not ok:
        return ok, why
    mb = [int(w) for w in r.stdout.split() if w.isdigit()]
    if not mb or mb[0] > BOMB_LIMITS.memory_mb:
        return False, f"no MemoryError under {BOMB_LIMITS.memory_mb} MB ({r.stdout.strip()[:80]!r})"
    return True, f"MemoryError after {mb[0]} MB (limit {BOMB_LIMITS.memory_mb} MB); host fine"


def _loop_code(ctx: Context) -> str:
    return "while True:\n    pass\n"


def _loop_judge(ctx: Context, r: ExecResult) -> tuple[bool, str]:
    ok, why = _survives(ctx, r, CPU_LIMITS.wall_seconds)
    if ok and (r.killed is not None or r.exit_code not in (-9, -24)):  # SIGKILL / SIGXCPU from RLIMIT_CPU
        return False, f"not stopped by the CPU limit ({r.killed}, exit {r.exit_code})"
    return ok, why.replace("exit -9", "CPU limit: SIGKILL").replace("exit -24", "CPU limit: SIGXCPU")


def _sleep_code(ctx: Context) -> str:
    return "import time\nwhile True:\n    time.sleep(1)\n"


def _sleep_judge(ctx: Context, r: ExecResult) -> tuple[bool, str]:
    ok, why = _survives(ctx, r, BOMB_LIMITS.wall_seconds + 3)
    if ok and r.killed != "wall_time":
        return False, f"not stopped by the wall clock ({r.killed}, exit {r.exit_code})"
    return ok, why


def _output_code(ctx: Context) -> str:
    return "import sys\nwhile True:\n    sys.stdout.write('x' * 100000)\n    sys.stderr.write('y' * 100000)\n"


def _output_judge(ctx: Context, r: ExecResult) -> tuple[bool, str]:
    ok, why = _survives(ctx, r, BOMB_LIMITS.wall_seconds + 3)
    cap = BOMB_LIMITS.max_output_bytes
    if ok and (r.killed != "output_cap" or len(r.stdout) > cap or len(r.stderr) > cap):
        return False, f"output not capped ({len(r.stdout)} bytes kept, killed={r.killed})"
    return ok, why + f"; {len(r.stdout)} bytes kept of a cap of {cap}" if ok else why


def _ctypes_code(ctx: Context) -> str:
    return f"""
import ctypes, ctypes.util, os, json
libc = ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)
res = {{}}
res['setuid0'] = libc.setuid(0) == 0 and os.getuid() == 0
res['setgid0'] = libc.setgid(0) == 0 and os.getgid() == 0
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000
res['unshare_net'] = libc.unshare(CLONE_NEWNET) == 0
res['mount_tmpfs'] = libc.mount(b'tmpfs', b'/tmp/work', b'tmpfs', 0, None) == 0
res['kill_host'] = libc.kill({ctx.sentinel.pid}, 9) == 0
# a new user namespace makes us 'root' inside it: try to uncover the host's folders from there
res['userns'] = libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0
if res['userns']:
    try:
        open('/proc/self/setgroups', 'w').write('deny')
        open('/proc/self/uid_map', 'w').write('0 {65534} 1')
        open('/proc/self/gid_map', 'w').write('0 {65534} 1')
    except OSError as e:
        res['map_error'] = e.errno
    for d in ('/tmp', '/root', {str(ctx.home)!r}):
        res['umount ' + d] = libc.umount2(d.encode(), 2) == 0
for t in [{str(ctx.victim_dir / 'pwned_ctypes.txt')!r}, {str(ctx.home / 'pwned_ctypes.txt')!r}]:
    fd = libc.open(t.encode(), 0o1 | 0o100, 0o644)
    res['open ' + t] = fd >= 0
    if fd >= 0:
        libc.write(fd, b'pwned', 5)
try:
    res['home'] = os.listdir({str(ctx.home)!r})
except OSError as e:
    res['home'] = e.errno
print(json.dumps(res))
"""


def _ctypes_judge(ctx: Context, r: ExecResult) -> tuple[bool, str]:
    ok, why = _write_judge(ctx, r)
    extra = [ctx.victim_dir / "pwned_ctypes.txt", ctx.home / "pwned_ctypes.txt"]
    if ok and any(p.exists() for p in extra):
        ok, why = False, "ctypes wrote into the caller's folder"
    if ok and ctx.sentinel.poll() is not None:
        ok, why = False, "ctypes killed a host process"
    if ok:
        ok, why = _secret_leaked(ctx, r)
    if ok:
        try:
            res = json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return False, f"the attack did not report ({r.stderr.strip()[-120:]!r})"
        won = [k for k, v in res.items() if v is True and k != "userns"]
        if won:
            return False, "ctypes calls succeeded: " + ", ".join(won)
        why = ("setuid/setgid(0), unshare(net), mount, kill(host), umount from a new user namespace "
               f"(allowed: {res.get('userns')}) and writes all failed")
    return ok, why


def _kill_code(ctx: Context) -> str:
    return f"""
import os, signal
for pid in ({ctx.sentinel.pid}, {os.getpid()}, 1, -1):
    try:
        os.kill(pid, signal.SIGKILL); print('sent', pid)
    except OSError as e:
        print('denied', pid, e.errno)
"""


def _kill_judge(ctx: Context, r: ExecResult) -> tuple[bool, str]:
    if ctx.sentinel.poll() is not None:
        return False, "a host process was killed"
    return True, "host processes unreachable (PID namespace, other uid)"


ATTACKS: tuple[Attack, ...] = (
    Attack("read_env", "read the caller's environment (os.environ, /proc/*/environ)", _env_code, _secret_leaked,
           harmless_unboxed=True),
    Attack("read_home", "read the caller's home (a planted secret, ~/.gitconfig, ~/.ssh)", _home_code, _home_judge,
           harmless_unboxed=True),
    Attack("write_outside", "write/append/chmod/unlink outside the work dir (caller folder, home, shared tmp)",
           _write_code, _write_judge, harmless_unboxed=True),
    Attack("network", "connect to a host listener (TCP 127.0.0.1, abstract Unix), the internet; listen for the host",
           _net_code, _net_judge, harmless_unboxed=True),
    Attack("kill_host", "kill a host process, PID 1, every process (-1)", _kill_code, _kill_judge,
           harmless_unboxed=False),
    Attack("fork_bomb", "fork until the machine runs out of processes", _fork_code,
           lambda c, r: _survives(c, r, BOMB_LIMITS.wall_seconds + 3), BOMB_LIMITS),
    Attack("memory_bomb", "allocate and touch memory without end", _mem_code, _mem_judge, BOMB_LIMITS),
    Attack("infinite_loop", "spin the CPU forever", _loop_code, _loop_judge, CPU_LIMITS),
    Attack("sleep_forever", "block forever without using CPU (only the wall clock stops it)", _sleep_code,
           _sleep_judge, BOMB_LIMITS),
    Attack("huge_output", "print without end on stdout and stderr", _output_code, _output_judge, BOMB_LIMITS),
    Attack("ctypes_escape", "ctypes: setuid(0), unshare, mount, kill, user-namespace umount, raw open()",
           _ctypes_code, _ctypes_judge),
)
ATTACK_NAMES = tuple(a.name for a in ATTACKS)


def _box_listener_probe(ctx: Context, stop: threading.Event) -> None:
    """While the network attack runs, the host tries to reach the port the box listens on."""
    while not stop.is_set():
        try:
            socket.create_connection(("127.0.0.1", ctx.box_port), timeout=0.2).close()
            ctx.host_connected.append("the host reached a listener inside the box")
            return
        except OSError:
            time.sleep(0.1)


def attempt(attack: Attack, ctx: Context, runner: Callable[[str, Limits], ExecResult] | None = None) -> Outcome:
    """Run one attack (in the sandbox unless ``runner`` says otherwise) and judge it on the host."""
    runner = runner or (lambda code, limits: run_python(code, limits))
    stop = threading.Event()
    probe = None
    if attack.name == "network":
        probe = threading.Thread(target=_box_listener_probe, args=(ctx, stop), daemon=True)
        probe.start()
    try:
        r = runner(attack.code(ctx), attack.limits)
    finally:
        stop.set()
        if probe is not None:
            probe.join()
    contained, detail = attack.judge(ctx, r)
    return Outcome(attack.name, contained, detail, round(r.seconds, 2), r.exit_code, r.killed)


def run_battery(names: tuple[str, ...] = ATTACK_NAMES, victim_root: Path | str | None = None,
                on_outcome: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Every attack in ``names``, each in a fresh context; returns the outcomes in order."""
    out = []
    for a in ATTACKS:
        if a.name in names:
            with prepared(victim_root) as ctx:
                o = attempt(a, ctx)
            out.append(o)
            if on_outcome:
                on_outcome(o)
    return out


def run_unboxed(code: str, limits: Limits) -> ExecResult:
    """The attack code run as a plain child process with the caller's rights (NO sandbox): only for
    showing that the judges detect a breach; used on the harmless attacks only."""
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=limits.wall_seconds + 5)
    return ExecResult(p.stdout, p.stderr, p.returncode, None, time.monotonic() - t0, len(p.stdout) + len(p.stderr))
