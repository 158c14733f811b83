#!/usr/bin/env python3
"""A keyspace of N million keys and what it costs: RSS at rest, the peak
during a SAVE (VmHWM, reset just before), save and load times, file size,
the time a SIGTERM takes (drain plus the final snapshot), and a canary
client's p99.9 without a save and during one.

    bench/keyspace.py --bin target/release/tollgate --millions 20

Starts its own server on a free port (save points off, so only the
measured saves run) and fills it with `redis-cli --pipe`, Redis's mass
insertion: one LIMIT.CHECK per key (token bucket, 10 a day, so no state is
fresh again during the run). Needs redis-cli (redis-tools). Not part of
`cargo test`.
"""
import argparse
import os
import signal
import subprocess
import tempfile
import time

from benchlib import Canary, ask, field, fill, free_port, status_mb


def start(binary, port, data, config):
    server = subprocess.Popen(
        [binary, "--port", str(port), "--data-dir", data, "--config", config,
         "--log-level", "warn"])
    began = time.time()
    while True:
        try:
            if "PONG" in ask(port, "PING", timeout=1):
                return server, time.time() - began
        except OSError:
            time.sleep(0.05)
        if server.poll() is not None:
            raise SystemExit("the server did not start")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/tollgate")
    ap.add_argument("--millions", type=float, default=20)
    ap.add_argument("--maxmemory", default="", help='e.g. "512mb": fill under this bound')
    ap.add_argument("--policy", default="volatile-ttl", help="maxmemory_policy with --maxmemory")
    a = ap.parse_args()
    keys = int(a.millions * 1_000_000)
    port = free_port()
    data = tempfile.mkdtemp()
    config = os.path.join(data, "tollgate.toml")
    with open(config, "w") as f:
        f.write('save = ""\n')
        if a.maxmemory:
            f.write(f'maxmemory = "{a.maxmemory}"\nmaxmemory_policy = "{a.policy}"\n')
    server, _ = start(a.bin, port, data, config)
    empty = status_mb(server.pid, "VmRSS")
    began = time.time()
    summary = fill(port, keys, errors_allowed=bool(a.maxmemory))
    filled = time.time() - began
    states = int(ask(port, "DBSIZE").strip().lstrip(":"))
    rest = status_mb(server.pid, "VmRSS")
    memory = ask(port, "INFO", "memory") + ask(port, "INFO", "stats")
    counted = int(field(memory, "used_memory_dataset")) / (1 << 20)
    print(f"{keys:,} checks sent ({summary}); store's own count {counted:.0f} MB"
          + (f" under maxmemory {a.maxmemory} ({a.policy}): {states:,} states kept, "
             f"{field(memory, 'evicted_keys')} evicted, RSS {rest:.0f} MB" if a.maxmemory else ""))
    canary = Canary(port)
    canary.start()
    quiet_from = time.perf_counter()
    time.sleep(5)
    quiet_to = time.perf_counter()
    # Peak RSS from here on (Linux: 5 resets VmHWM to the current RSS).
    with open(f"/proc/{server.pid}/clear_refs", "w") as f:
        f.write("5")
    began = time.time()
    save_from = time.perf_counter()
    reply = ask(port, "SAVE")
    save_to = time.perf_counter()
    save_s = time.time() - began
    canary.stop = True
    quiet = canary.quantile_ms(quiet_from, quiet_to, 0.999)
    saving = canary.quantile_ms(save_from, save_to, 0.999)
    if "OK" not in reply:
        raise SystemExit(f"SAVE failed: {reply}")
    peak = status_mb(server.pid, "VmHWM")
    size = os.path.getsize(os.path.join(data, "dump.tgs")) / (1 << 20)
    began = time.time()
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=600)
    shutdown_s = time.time() - began
    server, load_s = start(a.bin, port, data, config)
    restored = int(ask(port, "DBSIZE").strip().lstrip(":"))
    loaded = status_mb(server.pid, "VmRSS")
    loaded_peak = status_mb(server.pid, "VmHWM")
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=600)
    dataset = rest - empty
    print(f"keys {states:,} (filled in {filled:.0f} s), restored {restored:,}")
    print(f"RSS empty {empty:.0f} MB, at rest {rest:.0f} MB "
          f"({dataset * (1 << 20) / max(states, 1):.0f} B a key)")
    print(f"SAVE {save_s:.2f} s, file {size:.0f} MB, peak RSS during it {peak:.0f} MB "
          f"(+{peak - rest:.0f} MB, {100 * (peak - rest) / max(dataset, 1):.1f}% of the keyspace)")
    print(f"canary p99.9: {quiet[0]:.2f} ms without a save ({quiet[1]} checks), "
          f"{saving[0]:.2f} ms during it ({saving[1]} checks)")
    print(f"SIGTERM to exit {shutdown_s:.2f} s (final snapshot included)")
    print(f"start with the snapshot {load_s:.2f} s, RSS {loaded:.0f} MB, peak while loading {loaded_peak:.0f} MB")
    print(f"| {states / 1e6:g}M | {rest:.0f} MB | {peak:.0f} MB (+{100 * (peak - rest) / max(dataset, 1):.1f}%) "
          f"| {save_s:.2f} s | {size:.0f} MB | {shutdown_s:.2f} s | {load_s:.2f} s |")


if __name__ == "__main__":
    main()
