#!/usr/bin/env python3
"""Side-by-side comparison of Fjord with a peer broker, in one run.

    python3 benches/compare.py [--systems fjord,tansu-memory,tansu-sqlite]
                               [--workloads W0,W1,W1i,W2,W4,W5,W7] [--reps 5]
                               (also W3: latency, Wmem: memory over 10 minutes)
                               [--durability page-cache|fsync] [--scale 1.0] [--record]

Every repetition starts each system fresh (new data directory), broker
pinned to core 1 (its tokio runtime sizes itself to that one core), the
load generator (benches/loadgen.py: librdkafka's rdkafka_performance) to
core 0, and runs the workloads against it; the systems' order alternates
A B C, C B A, ... (A B B A for two), so drift on this shared machine hits
all alike. Printed per workload and figure: each system's median and
min-max, the ratio of medians to the first system, the range of the
per-repetition paired ratios, and work per broker CPU-second. --record
puts the table first in benches/RESULTS.md with the date, load average
and versions.

Systems:
  fjord          target/release/fjord, --durability as given (page-cache by default)
  fjord-fsync    the same in fsync durability (W1f: --systems fjord,fjord-fsync --workloads W1)
  fjord-nometrics  fjord with --admin-listen off (the cost of the metrics)
  fjord-base     the binary named by $FJORD_BASE_BIN (an older build: A/B of a change)
  tansu-memory   Tansu 0.6 with its memory:// engine (everything in RAM)
  tansu-sqlite   Tansu 0.6 with sqlite:// (its durable local engine)
Tansu is not built by the test command (about 35 minutes here): install it
once with `cargo install tansu@0.6.0 --locked --features dynostore,libsql`.

W7 (restart after SIGKILL with the data written so far; time to the first
Metadata answer) runs last in each repetition, on durable systems only.
W7c is W7 killed after the broker's recovery checkpoint has passed (it waits
11 s: fjord checkpoints every 10 s), so it measures what a restart costs
beyond re-verifying the bytes written since the last checkpoint.
"""
import argparse
import datetime
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loadgen  # noqa: E402

ROOT = loadgen.ROOT
FJORD = os.path.join(ROOT, "target", "release", "fjord")
BROKER_CPU = "1"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def base_binary():
    path = os.environ.get("FJORD_BASE_BIN", "")
    if not os.access(path, os.X_OK):
        raise SystemExit("fjord-base needs FJORD_BASE_BIN=<an older fjord build>")
    return path


def tansu_binary():
    path = shutil.which("tansu") or os.path.expanduser("~/.cargo/bin/tansu")
    if not os.access(path, os.X_OK):
        raise SystemExit("tansu is not installed. Install it once (about 35 minutes on 2 cores):\n"
                         "  cargo install tansu@0.6.0 --locked --features dynostore,libsql")
    return path


def command(system, data, port, durability):
    addr = f"127.0.0.1:{port}"
    if system.startswith("fjord"):
        dur = "fsync" if system == "fjord-fsync" else durability
        admin = "off" if system == "fjord-nometrics" else f"127.0.0.1:{free_port()}"
        exe = base_binary() if system == "fjord-base" else FJORD
        return [exe, "--data-dir", data, "--listen", addr, "--advertise", addr, "--registry-listen", "off",
                "--admin-listen", admin, "--durability", dur, "--num-partitions", "6"]
    # Tansu reads sqlite://FILE relative to its working directory (the data dir).
    engine = {"tansu-memory": "memory://tansu/", "tansu-sqlite": "sqlite://tansu.db"}[system]
    return [tansu_binary(), "broker", "--cluster-id", "bench", "--listener-url", f"tcp://{addr}",
            "--advertised-listener-url", f"tcp://{addr}", "--storage-engine", engine]


class Running:
    def __init__(self, system, data, durability):
        self.system, self.data = system, data
        self.port = free_port()
        self.cmd = command(system, data, self.port, durability)
        self.log = open(data + ".log", "ab")
        self.start()

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        t0 = time.monotonic()
        self.proc = subprocess.Popen(["taskset", "-c", BROKER_CPU] + self.cmd, stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.data,
                                     env={**os.environ, "RUST_LOG": "warn"})
        loadgen.first_metadata_s(self.bootstrap, alive=lambda: self.proc.poll() is None)
        self.first_metadata_s = time.monotonic() - t0

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


# Figures that restate a workload's size rather than measure it.
INPUTS = {"MB", "msgs", "samples"}

DURABLE = {"fjord", "fjord-fsync", "fjord-nometrics", "fjord-base", "tansu-sqlite"}


def one_run(system, workloads, args):
    """Figures of every workload on a fresh `system`: {workload: {figure: value}}."""
    data = tempfile.mkdtemp(prefix=f"cmp-{system}-")
    r = Running(system, data, args.durability)
    out = {}
    try:
        time.sleep(0.5)
        out["W0"] = {"s": r.first_metadata_s, "idle rss MB": loadgen.rss_kb(r.proc.pid) / 1024}
        ctx = loadgen.context(r.bootstrap, r.proc.pid, args.scale)
        for w in workloads:
            if w in ("W0", "W7", "W7c"):
                continue
            try:
                out[w] = loadgen.run(w, ctx)
            except Exception as e:  # noqa: BLE001 - one failed workload does not end the run
                print(f"  {system} {w}: {e}", file=sys.stderr)
        restart = [w for w in ("W7", "W7c") if w in workloads]
        if restart and system in DURABLE:
            if restart[-1] == "W7c":
                time.sleep(11)
            r.kill()
            r.start()
            out[restart[-1]] = {"s": r.first_metadata_s, "data MB": du_mb(data)}
    finally:
        r.stop()
        shutil.rmtree(data, ignore_errors=True)
        try:
            os.unlink(data + ".log")
        except OSError:
            pass
    return out


def du_mb(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(dirpath, f))
            except OSError:
                pass
    return total / 1e6


def table(systems, results, reps):
    """Lines of the comparison table. results[system][rep][workload][figure]."""
    base = systems[0]
    ratio_heads = "".join(f" {s}/{base} (paired range) |" for s in systems[1:])
    lines = ["| workload | figure | " + " | ".join(f"{s} median (min-max)" for s in systems) + " |" + ratio_heads,
             "|---" * (2 + 2 * len(systems) - 1) + "|"]
    workloads = []
    for s in systems:
        for rep in results[s]:
            for w in rep:
                if w not in workloads:
                    workloads.append(w)
    for w in workloads:
        figures = []
        for s in systems:
            for rep in results[s]:
                for f in rep.get(w, {}):
                    if f not in figures:
                        figures.append(f)
        for f in figures:
            if f in INPUTS:
                continue
            vals = {s: [rep[w][f] for rep in results[s] if f in rep.get(w, {})] for s in systems}
            cells = []
            for s in systems:
                v = vals[s]
                cells.append(f"{statistics.median(v):,.2f} ({min(v):,.2f}-{max(v):,.2f})" if v else "-")
            ratios = []
            for s in systems[1:]:
                pairs = [(rb[w][f], rs[w][f]) for rb, rs in zip(results[base], results[s])
                         if f in rb.get(w, {}) and f in rs.get(w, {}) and rb[w][f]]
                if vals[s] and vals[base] and statistics.median(vals[base]):
                    pr = [b2 / b1 for b1, b2 in pairs] if pairs else []
                    med = statistics.median(vals[s]) / statistics.median(vals[base])
                    rng = f" ({min(pr):.2f}-{max(pr):.2f})" if pr else ""
                    ratios.append(f"{med:.2f}{rng}")
                else:
                    ratios.append("-")
            lines.append(f"| {w} | {f} | " + " | ".join(cells) + " |" + "".join(f" {r} |" for r in ratios))
    return lines


def versions(systems):
    v = []
    try:
        v.append("fjord " + subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                                           capture_output=True, text=True).stdout.strip())
    except OSError:
        pass
    if "fjord-base" in systems:
        v.append("fjord-base " + base_binary())
    if any(s.startswith("tansu") for s in systems):
        out = subprocess.run([tansu_binary(), "--version"], capture_output=True, text=True)
        v.append((out.stdout or out.stderr).strip() or "tansu (version unknown)")
    exe, _ = loadgen.perf_binary()
    v.append("librdkafka " + os.path.basename(os.path.dirname(os.path.dirname(os.path.dirname(exe)))))
    return ", ".join(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--systems", default="fjord,tansu-memory,tansu-sqlite")
    ap.add_argument("--workloads", default="W0,W1,W1i,W2,W4,W5,W7")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--durability", default="page-cache", choices=["page-cache", "fsync"])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--record", action="store_true", help="append the table to benches/RESULTS.md")
    args = ap.parse_args()
    systems = args.systems.split(",")
    workloads = args.workloads.split(",")
    if not os.access(FJORD, os.X_OK):
        raise SystemExit("build it first: cargo build --release")
    if any(s.startswith("tansu") for s in systems):
        tansu_binary()
    if "fjord-base" in systems:
        base_binary()
    loadgen.perf_binary()
    load0 = os.getloadavg()
    results = {s: [] for s in systems}
    for rep in range(args.reps):
        order = systems if rep % 2 == 0 else list(reversed(systems))
        for s in order:
            print(f"rep {rep + 1}/{args.reps}: {s}", file=sys.stderr, flush=True)
            results[s].append(one_run(s, workloads, args))
    lines = table(systems, results, args.reps)
    load1 = os.getloadavg()
    head = (f"## {datetime.date.today().isoformat()} — comparison (`benches/compare.py` --systems {args.systems} --workloads "
            f"{args.workloads} --reps {args.reps} --durability {args.durability} --scale {args.scale})\n\n"
            f"Load average before {load0[0]:.2f}, after {load1[0]:.2f}. Versions: {versions(systems)}. "
            f"Broker on core {BROKER_CPU}, rdkafka_performance on core 0; fjord in {args.durability} durability "
            f"(fjord-fsync: fsync), tansu-sqlite durable, tansu-memory in RAM.\n")
    print(head)
    print("\n".join(lines))
    if args.record:
        record(head + "\n" + "\n".join(lines) + "\n")


def record(entry):
    """Puts `entry` first among RESULTS.md's dated sections (newest first)."""
    path = os.path.join(ROOT, "benches", "RESULTS.md")
    with open(path) as f:
        text = f.read()
    at = text.find("\n## ")
    at = len(text) if at < 0 else at + 1
    with open(path, "w") as f:
        f.write(text[:at] + entry + "\n" + text[at:])


if __name__ == "__main__":
    main()
