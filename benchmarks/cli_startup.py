"""`paperlab` start-up: the CLI imports no system package until one is invoked (ratios, one run).

Every measurement is a fresh interpreter (``subprocess``), repeated ``--repeats`` times, best and
median kept:

- ``python -c pass``: the interpreter alone (the floor every command pays);
- ``paperlab --help``: the whole command (``python -m paperlab --help``), end to end;
- ``import paperlab.cli``: the CLI module, timed inside the process;
- ``import paperlab.<system>.cli``: one system's CLI module (``--system``), timed inside the process;
- ``import`` of every implemented system's ``cli``: what start-up cost before subcommands were lazy.

Ratios printed and saved: system cli / paperlab.cli, all systems / paperlab.cli (the start-up the lazy
registry saves), and ``paperlab --help`` / bare interpreter.
Usage: ``python benchmarks/cli_startup.py [--repeats 10] [--system l2m]``.
Writes ``benchmarks/cli_startup.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

_TIMED_IMPORT = ("import time; t = time.perf_counter(); {imports}; "
                 "print('SECONDS', time.perf_counter() - t)")


def _wall(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def _import(modules: list[str], env: dict) -> float:
    code = _TIMED_IMPORT.format(imports="; ".join(f"import {m}" for m in modules))
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True).stdout
    return float(out.rsplit("SECONDS", 1)[1])


def _stats(xs: list[float]) -> dict:
    return {"best": min(xs), "median": statistics.median(xs), "runs": len(xs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10, help="fresh interpreters per measurement")
    ap.add_argument("--system", default="l2m", help="the system whose cli module is imported on its own")
    ap.add_argument("--json", type=Path, default=Path(__file__).with_suffix(".json"), help="where to write results")
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")

    from paperlab.registry import BY_NAME, SYSTEMS

    if args.system not in BY_NAME or not BY_NAME[args.system].implemented:
        ap.error(f"--system {args.system!r} is not an implemented system")
    systems = [s.name for s in SYSTEMS if s.implemented]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    measures = {
        "python_bare": lambda: _wall([sys.executable, "-c", "pass"], env),
        "paperlab_help": lambda: _wall([sys.executable, "-m", "paperlab", "--help"], env),
        "import_paperlab_cli": lambda: _import(["paperlab.cli"], env),
        "import_system_cli": lambda: _import([f"paperlab.{args.system}.cli"], env),
        "import_all_system_clis": lambda: _import([f"paperlab.{n}.cli" for n in systems], env),
    }
    for fn in measures.values():  # warm the file cache and the bytecode once, untimed
        fn()
    seconds: dict[str, list[float]] = {k: [] for k in measures}
    for _ in range(args.repeats):  # interleaved, so load changes touch every measurement alike
        for k, fn in measures.items():
            seconds[k].append(fn())
    res = {k: _stats(v) for k, v in seconds.items()}
    best = {k: v["best"] for k, v in res.items()}
    ratios = {
        "system_cli_over_paperlab_cli": best["import_system_cli"] / best["import_paperlab_cli"],
        "all_system_clis_over_paperlab_cli": best["import_all_system_clis"] / best["import_paperlab_cli"],
        "paperlab_help_over_python_bare": best["paperlab_help"] / best["python_bare"],
    }
    out = {
        "system": args.system,
        "systems_implemented": systems,
        "repeats": args.repeats,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "seconds": res,
        "ratios": ratios,
    }
    for k, v in res.items():
        print(f"{k:24s} best {v['best'] * 1000:8.1f} ms   median {v['median'] * 1000:8.1f} ms")
    for k, v in ratios.items():
        print(f"{k:36s} {v:6.2f}x")
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
