"""The red-team battery, for real: every attack runs in the sandbox and must be blocked or contained, judged
on the host (files, sockets, processes, time); the host process survives them all. The harmless attacks
also run WITHOUT the sandbox to show each judge detects a breach (a check a broken sandbox would pass
is a defect)."""

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from paperlab.start import redteam
from paperlab.start.sandbox import Limits, run_python, sandbox_status

pytestmark = pytest.mark.skipif(not sandbox_status()[0], reason=f"sandbox unavailable: {sandbox_status()[1]}")

VICTIM_ROOT = Path(__file__).resolve().parent  # a caller folder (the repo) the box can see but must not write


@pytest.mark.parametrize("attack", redteam.ATTACKS, ids=redteam.ATTACK_NAMES)
def test_attack_is_blocked_or_contained(attack):
    host = os.getpid()
    with redteam.prepared(VICTIM_ROOT) as ctx:
        outcome = redteam.attempt(attack, ctx)
        assert outcome.contained, f"{attack.name}: {outcome.detail}"
        assert ctx.sentinel.poll() is None  # a host process is alive
    assert os.getpid() == host
    # the sandbox still works after the attack
    assert run_python("print(6 * 7)").stdout.strip() == "42"


@pytest.mark.parametrize("attack", [a for a in redteam.ATTACKS if a.harmless_unboxed],
                         ids=[a.name for a in redteam.ATTACKS if a.harmless_unboxed])
def test_judges_detect_a_breach_without_the_sandbox(attack):
    with redteam.prepared(VICTIM_ROOT) as ctx:
        outcome = redteam.attempt(attack, ctx, runner=redteam.run_unboxed)
    assert not outcome.contained, f"{attack.name}: the judge missed an unboxed breach ({outcome.detail})"


def test_every_issue_attack_is_in_the_battery():
    needed = {"read_env", "read_home", "write_outside", "network", "fork_bomb", "memory_bomb", "infinite_loop",
              "huge_output", "ctypes_escape"}
    assert needed <= set(redteam.ATTACK_NAMES)


def test_box_cannot_reach_a_host_listener_directly():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(0.1)
    port = srv.getsockname()[1]
    r = run_python(f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
                   f"    print('connected')\nexcept OSError as e:\n    print('errno', e.errno)")
    with pytest.raises(TimeoutError):
        srv.accept()
    srv.close()
    assert r.stdout.startswith("errno")


def test_caller_repo_and_cwd_are_not_writable(tmp_path):
    repo = Path(__file__).resolve().parents[2]
    target = repo / f".sandbox-should-not-exist-{os.getpid()}"
    r = run_python(f"open({str(target)!r}, 'w').write('x')")
    assert not target.exists()
    assert "PermissionError" in r.stderr
    # the working folder is writable and private: a file written there is gone afterwards
    r = run_python("import os\nopen('note.txt', 'w').write('hi')\nprint(os.getcwd(), os.listdir('.'))")
    assert r.stdout.strip() == "/tmp/work ['note.txt']"
    assert not Path("/tmp/work/note.txt").exists()


def test_file_size_limit_contains_disk_filling():
    r = run_python("f = open('big', 'wb')\nwhile True:\n    f.write(b'x' * (1 << 20))",
                   Limits(max_file_mb=4, wall_seconds=10))
    assert r.exit_code != 0 and r.killed is None  # SIGXFSZ / OSError, well before the wall clock


def test_process_limit_applies_to_the_box():
    r = run_python("import os\nn = 0\ntry:\n    while n < 100:\n        if os.fork() == 0:\n"
                   "            import time; time.sleep(5); os._exit(0)\n        n += 1\nexcept OSError as e:\n"
                   "    print('stopped at', n, e.errno)", Limits(max_processes=8, wall_seconds=10))
    assert r.stdout.startswith("stopped at"), r.stdout + r.stderr
    assert int(r.stdout.split()[2]) < 8
    subprocess.run(["true"], check=True)


def no_leftovers(uid: int) -> bool:
    """No process of the call's uid left (the kernel tears a PID namespace down asynchronously: allow 2 s)."""
    for _ in range(20):
        if not redteam.sandbox_processes(uid):
            return True
        time.sleep(0.1)
    return False


def test_closing_the_pipes_does_not_escape_the_wall_clock():
    r = run_python("import os, time\nos.close(1)\nos.close(2)\ntime.sleep(60)", Limits(wall_seconds=2))
    assert r.killed == "wall_time" and r.seconds < 6, r
    assert no_leftovers(r.uid)


def test_a_daemonised_child_dies_with_the_call():
    r = run_python("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\nprint('parent done')",
                   Limits(wall_seconds=10))
    assert r.stdout.strip() == "parent done" and r.seconds < 8, r
    assert no_leftovers(r.uid)
