#!/usr/bin/env python3
"""A soak: a keyspace that keeps changing over every algorithm (short
windows, so states are created, grow and are swept all the time; heavy
sliding logs on a few hot keys), for a bounded time, while the server's
RSS, its allocator's figures (INFO memory) and its live states are sampled.
It shows whether memory follows the live keyspace or ratchets up. A
canary client checks its own keys back to back all along; the first half
runs without saves, the second with a BGSAVE every --save-every seconds,
and the canary's p99.9 is printed for each half.

    bench/soak.py --bin target/release/tollgate --seconds 600

Starts its own server (one connection thread) on a free port; needs
redis-benchmark (redis-tools). Not part of `cargo test`.
"""
import argparse
import os
import signal
import subprocess
import tempfile
import threading
import time

from benchlib import Canary, ask, field, free_port, status_mb

LOADS = [
    # (random keys, command): churning states on every algorithm, each on
    # its own keys (one key holds one algorithm's state) ...
    (300000, "LIMIT.CHECK tb:__rand_int__ token_bucket 10 30s"),
    (300000, "LIMIT.CHECK gc:__rand_int__ gcra 10 30s"),
    (300000, "LIMIT.CHECK fw:__rand_int__ fixed_window 10 30s"),
    (300000, "LIMIT.CHECK sw:__rand_int__ sliding_window 10 30s BUCKETS 10"),
    (300000, "LIMIT.CHECK sl:__rand_int__ sliding_log 10 30s"),
    # ... and hot keys whose sliding logs grow, then expire.
    (2000, "LIMIT.CHECK hot:__rand_int__ sliding_log 2000 10s"),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/tollgate")
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--every", type=int, default=15)
    ap.add_argument("--save-every", type=int, default=10)
    a = ap.parse_args()
    port = free_port()
    data = tempfile.mkdtemp()
    env = dict(os.environ, TOKIO_WORKER_THREADS="1")
    config = os.path.join(data, "tollgate.toml")
    with open(config, "w") as f:
        f.write('save = ""\n')  # the saves are this script's
    server = subprocess.Popen(
        [a.bin, "--port", str(port), "--data-dir", data, "--config", config,
         "--log-level", "warn"],
        env=env)
    for _ in range(100):
        try:
            ask(port, "PING")
            break
        except OSError:
            time.sleep(0.1)
    end = time.time() + a.seconds
    loads = []

    def start_loads():
        for keys, cmd in LOADS:
            loads.append(subprocess.Popen(
                ["redis-benchmark", "-p", str(port), "-c", "4", "-P", "8", "-r", str(keys),
                 "-n", "100000000", "-q", *cmd.split()],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    start_loads()
    canary = Canary(port)
    canary.start()
    half = time.perf_counter() + a.seconds / 2
    saves = []

    def saver():
        while time.perf_counter() < half:
            time.sleep(0.5)
        while time.time() < end:
            done = lambda: int(field(ask(port, "INFO", "persistence"), "rdb_saves"))
            before = done()
            began = time.perf_counter()
            ask(port, "BGSAVE")
            while done() == before:
                time.sleep(0.02)
            saves.append(time.perf_counter() - began)
            time.sleep(a.save_every)

    threading.Thread(target=saver, daemon=True).start()
    quiet_from = time.perf_counter()
    print(f"{'t (s)':>6} {'states':>9} {'used MB':>9} {'RSS MB':>8} {'RSS/state B':>12} {'frag':>6}")
    started = time.time()
    peak = 0.0
    rows = []
    while time.time() < end:
        time.sleep(a.every)
        info = ask(port, "INFO", "memory")
        states = int(ask(port, "DBSIZE").strip().lstrip(":") or 0)
        used = int(field(info, "used_memory")) / (1 << 20)
        rss = status_mb(server.pid, "VmRSS")
        peak = max(peak, rss)
        per = rss * (1 << 20) / states if states else 0
        rows.append((time.time() - started, states, used, rss))
        print(f"{time.time() - started:6.0f} {states:9d} {used:9.1f} {rss:8.1f} {per:12.0f} {field(info, 'mem_fragmentation_ratio'):>6}")
    soak_end = time.perf_counter()
    canary.stop = True
    for p in loads:
        p.terminate()
    for q, name in [(0.99, "p99"), (0.999, "p99.9")]:
        quiet = canary.quantile_ms(quiet_from, half, q)
        saving = canary.quantile_ms(half, soak_end, q)
        print(f"canary {name}: {quiet[0]:.2f} ms without saves ({quiet[1]} checks), "
              f"{saving[0]:.2f} ms with a BGSAVE every {a.save_every} s ({saving[1]} checks)")
    if saves:
        print(f"{len(saves)} saves, {min(saves):.2f} to {max(saves):.2f} s each")
    time.sleep(45)  # the windows pass; the sweep drops the states
    info = ask(port, "INFO", "memory")
    states = int(ask(port, "DBSIZE").strip().lstrip(":") or 0)
    print(f"after the load stopped: {states} states, used {int(field(info, 'used_memory')) / (1 << 20):.1f} MB, "
          f"RSS {status_mb(server.pid, 'VmRSS'):.1f} MB (peak {peak:.1f} MB), allocator {field(info, 'mem_allocator')}")
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)


if __name__ == "__main__":
    main()
