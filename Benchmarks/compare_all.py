"""The whole comparison with redis-server in one command, written into Benchmarks/README.md.

Runs, one after the other on this machine (loopback only):
- compare_redis.py: SET/GET/HSET at -P 1 and -P 16, and memory per Spring-Session hash;
- collections.py: one hash and one set growing to 100,000 elements;
- threads.py: a node's throughput with `threads: 1` and `threads: 2`;
- replicated.py: a 3-node site with backupCount 1 against redis-server + replica + WAIT;
- allocations.py: mallocs per SET/HSET/GET on one node, and per SET/HSET in a 3-node site (only
  as root with perf installed).

Then it replaces the section between the "latest comparison" markers of Benchmarks/README.md
with their tables, headed by the date, the commit and the machine, so that the figures in
the README always say where they came from. `--no-write` only prints.

    SESSIONFED_BIN=.build-interop/release/sessionfed python3 Benchmarks/compare_all.py [--no-write] [--quick]
"""

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
BEGIN = "<!-- latest comparison: begin (written by Benchmarks/compare_all.py) -->"
END = "<!-- latest comparison: end -->"


def run(script, *arguments):
    """A benchmark script's output (its Markdown tables), or why it could not run."""
    command = [sys.executable, str(HERE / script), *arguments]
    print(f"running {' '.join(command[1:])}", file=sys.stderr, flush=True)
    result = subprocess.run(command, capture_output=True, text=True, timeout=3_600)
    if result.returncode != 0:
        return f"`{script}` failed (exit {result.returncode}):\n\n```\n{(result.stdout + result.stderr)[-2_000:]}\n```\n"
    return result.stdout.strip() + "\n"


def machine():
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        memory_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:"))
        memory = f"{memory_kb / (1 << 20):.0f} GiB"
    except (OSError, StopIteration, ValueError):
        memory = "unknown memory"
    redis = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()
    version = redis[2].removeprefix("v=") if len(redis) > 2 else "unknown"
    return f"{model}, {os.cpu_count()} cores, {memory}, Linux {platform.release()}, redis-server {version}"


def commit():
    def git(*arguments):
        return subprocess.run(["git", *arguments], cwd=HERE.parent, capture_output=True, text=True).stdout.strip()
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    # Documentation changes (this README among them) do not change a figure.
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)*.md")
    return head + (" with uncommitted changes" if changed else "")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing it into README.md")
    parser.add_argument("--quick", action="store_true", help="fewer requests (a check that everything runs, not figures to keep)")
    arguments = parser.parse_args()
    if "SESSIONFED_BIN" not in os.environ:
        raise SystemExit("set SESSIONFED_BIN to a release build (Benchmarks/run.sh builds one)")
    quick = arguments.quick
    parts = [
        ("Single node against redis-server (`redis-benchmark -c 50`)", run("compare_redis.py", "--requests", "20000" if quick else "200000")),
        ("Collections growing to 100,000 elements", run("collections.py", *(["--requests", "100000"] if quick else []))),
        ("One loop and two (`defaults.threads`)", run("threads.py", "--requests", "20000" if quick else "200000", "--rounds", "1" if quick else "3")),
        ("Replicated writes (`sessionfed bench --clients 50`)", run("replicated.py", "--requests", "20000" if quick else "100000")),
    ]
    if os.geteuid() == 0 and shutil.which("perf"):
        fewer = ["--requests", "2000"] if quick else []
        parts.append(("Allocations per command", run("allocations.py", *fewer)
                      + "\n" + run("allocations.py", "--site", "--commands", "set,hset", *fewer)))
    else:
        parts.append(("Allocations per command", "not measured: needs root and `perf` for the malloc probe\n"))
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [BEGIN, "", f"## Latest comparison — {now}, commit {commit()}{' (quick run)' if quick else ''}", "",
             f"Machine: {machine()}. Command: `bash Benchmarks/run.sh` (runs `Benchmarks/compare_all.py`).", ""]
    for title, body in parts:
        lines += [f"### {title}", "", body.strip(), ""]
    lines.append(END)
    section = "\n".join(lines) + "\n"
    if arguments.no_write:
        print(section)
        return
    text = README.read_text()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section + "\n" + rest.split(END, 1)[1].lstrip("\n")
    else:
        # First run: the section goes after the introduction, before the dated history.
        first = text.index("\n## ")
        text = text[:first + 1] + "\n" + section + "\n" + text[first + 1:]
    README.write_text(text)
    print(f"wrote the latest comparison into {README}", file=sys.stderr)


if __name__ == "__main__":
    main()
