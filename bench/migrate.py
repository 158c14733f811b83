#!/usr/bin/env python3
"""How long a slot migration pauses its slots: node A (managed, all slots)
filled with N keys by redis-cli --pipe, then slots 0-1023 (1/16) moved to
node B while redis-benchmark keeps checking random keys on A (--no-load to
move an idle node); prints the source's logged pause and what moved.

    bench/migrate.py --bin target/release/tollgate --millions 1

Needs redis-cli (redis-tools) and redis-py. Not part of `cargo test`.
"""
import argparse
import json
import subprocess
import tempfile
import time

import redis

from benchlib import fill, free_port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/tollgate")
    ap.add_argument("--millions", type=float, default=1)
    ap.add_argument("--no-load", action="store_true")
    a = ap.parse_args()
    ports = [free_port(), free_port()]
    logs = [tempfile.NamedTemporaryFile(mode="w+", suffix=".log") for _ in ports]
    procs = [subprocess.Popen([a.bin, "--port", str(p), "--data-dir", tempfile.mkdtemp(),
                               "--cluster-mode", "managed", "--log-level", "info"],
                              stdout=log, stderr=log) for p, log in zip(ports, logs)]
    try:
        nodes = [redis.Redis(port=p) for p in ports]
        for _ in range(100):
            try:
                ids = [n.execute_command("TOLLGATE.CLUSTER", "MYID").decode() for n in nodes]
                break
            except redis.ConnectionError:
                time.sleep(0.05)

        def cluster_map(moving):
            a_shard = {"slot_ranges": [{"start": 0, "end": 16383}],
                       "master": {"id": ids[0], "ip": "127.0.0.1", "port": ports[0]},
                       "replicas": [], "migrations": []}
            if moving:
                a_shard["migrations"] = [{"slot_ranges": [{"start": 0, "end": 1023}],
                                          "node_id": ids[1], "ip": "127.0.0.1", "port": ports[1]}]
            b_shard = {"slot_ranges": [], "replicas": [], "migrations": [],
                       "master": {"id": ids[1], "ip": "127.0.0.1", "port": ports[1]}}
            return json.dumps([a_shard, b_shard])

        for n in reversed(nodes):
            n.execute_command("TOLLGATE.CLUSTER", "CONFIG", cluster_map(False))
        keys = int(a.millions * 1_000_000)
        fill(ports[0], keys)
        load = None
        if not a.no_load:
            load = subprocess.Popen(
                ["redis-benchmark", "-p", str(ports[0]), "-c", "20", "-P", "8", "-n", "100000000",
                 "-r", str(keys), "-q", "LIMIT.CHECK", "key:__rand_int__", "token_bucket", "10", "1d"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(2)
        began = time.time()
        for n in reversed(nodes):
            n.execute_command("TOLLGATE.CLUSTER", "CONFIG", cluster_map(True))
        while True:
            status = nodes[0].execute_command("TOLLGATE.CLUSTER", "MIGRATION-STATUS")[0].decode()
            if "FINISHED" in status or "FAILED" in status:
                break
            time.sleep(0.005)
        took = time.time() - began
        if load:
            load.terminate()
        pause = []
        for _ in range(500):  # the line comes once the source dropped its copies
            logs[0].seek(0)
            pause = [l.split("cluster: ", 1)[1].strip() for l in logs[0] if "paused for" in l]
            if pause:
                break
            time.sleep(0.01)
        print(f"{keys:,} keys on the source; {status}")
        print(f"map pushed to FINISHED: {took * 1000:.0f} ms; source: {pause[0] if pause else '?'}")
        print(f"source keeps {nodes[0].dbsize():,}, target holds {nodes[1].dbsize():,}")
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=30)


if __name__ == "__main__":
    main()
