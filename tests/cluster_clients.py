#!/usr/bin/env python3
"""Unmodified cluster clients against tollgate: three `managed` nodes given
their slots by `tollgate cluster assign`, then redis-py's RedisCluster and
`redis-cli -c`; and one `emulated` node behind RedisCluster.

    python3 tests/cluster_clients.py target/debug/tollgate

Run by .ci/run after `cargo test` (which builds the binary); needs redis-py
(.ci/run installs it when missing) and uses redis-cli when present. Exits 1
with a line saying what was wrong.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import redis
from redis.cluster import RedisCluster


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(binary, mode):
    port = free_port()
    data = tempfile.mkdtemp(prefix="tollgate-cluster-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--data-dir", data, "--cluster-mode", mode,
         "--log-level", "warn"])
    for _ in range(100):
        try:
            redis.Redis(port=port).ping()
            return proc, port, data
        except redis.ConnectionError:
            time.sleep(0.05)
    raise SystemExit(f"node on {port} did not start")


def expect(what, got, wanted):
    if got != wanted:
        raise SystemExit(f"FAIL {what}: got {got!r}, wanted {wanted!r}")


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/debug/tollgate"
    nodes = [start(binary, "managed") for _ in range(3)]
    ports = [port for _, port, _ in nodes]
    try:
        assigned = subprocess.run(
            [binary, "cluster", "assign", *[f"127.0.0.1:{p}" for p in ports]],
            capture_output=True, text=True, timeout=30)
        expect("cluster assign exit status", assigned.returncode, 0)
        expect("cluster assign lines", len(assigned.stdout.splitlines()), 3)

        rc = RedisCluster(host="127.0.0.1", port=ports[0])
        keys = 3000
        for round_, remaining in [(1, 1), (2, 0)]:
            for i in range(keys):
                reply = rc.execute_command("LIMIT.CHECK", f"user:{i}", "fixed_window", 2, "1h")
                expect(f"round {round_}, user:{i}", reply[:3], [1, 2, remaining])
        denied = rc.execute_command("LIMIT.CHECK", "user:7", "fixed_window", 2, "1h")
        expect("third check of user:7", denied[0], 0)
        sizes = [redis.Redis(port=p).dbsize() for p in ports]
        expect("every node holds a share", all(s > 500 for s in sizes), True)
        expect("each key on exactly one node", sum(sizes), keys)
        expect("{tag} keys share a slot",
               rc.keyslot("{org:7}:user:1") == rc.keyslot("{org:7}:user:2"), True)

        # A plain client at the wrong node is told where to go.
        slot = rc.keyslot("user:7")
        owner = rc.get_node_from_key("user:7").port
        wrong = next(p for p in ports if p != owner)
        try:
            redis.Redis(port=wrong).execute_command("LIMIT.CHECK", "user:7", "gcra", 1, "1s")
            raise SystemExit("FAIL a wrong-node check was answered")
        except redis.exceptions.MovedError as e:
            # redis-py parses "-MOVED <slot> <ip>:<port>" into this error.
            expect("MOVED", (e.slot_id, e.host, e.port), (slot, "127.0.0.1", owner))

        if shutil.which("redis-cli"):
            out = subprocess.run(
                ["redis-cli", "-c", "-p", str(wrong), "LIMIT.CHECK", "user:7", "fixed_window", "2", "1h"],
                capture_output=True, text=True, timeout=10).stdout.split()
            expect("redis-cli -c follows MOVED", out[:3], ["0", "2", "0"])
        else:
            print("skipped: redis-cli is missing, so redis-cli -c was not tried")

        proc, port, data = start(binary, "emulated")
        nodes.append((proc, port, data))
        single = RedisCluster(host="127.0.0.1", port=port)
        for i in range(100):
            reply = single.execute_command("LIMIT.CHECK", f"k{i}", "token_bucket", 5, "1s")
            expect(f"emulated k{i}", reply[:3], [1, 5, 4])
        expect("emulated node holds them", redis.Redis(port=port).dbsize(), 100)
        print(f"ok: 3 managed nodes ({', '.join(map(str, sizes))} keys) and 1 emulated node "
              "served redis-py RedisCluster" + (" and redis-cli -c" if shutil.which("redis-cli") else ""))
    finally:
        for proc, _, data in nodes:
            proc.terminate()
            proc.wait(timeout=30)
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
