"""What the Python benchmarks share: a free port, one RESP request, /proc
figures, INFO fields, and a canary client that times its own checks.
Imported by bench/keyspace.py and bench/soak.py (run from anywhere: Python
puts the script's directory on the path)."""
import socket
import subprocess
import threading
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ask(port, *words, timeout=600):
    """Sends one command, answers its reply as text (simple replies and one
    bulk string; enough for PING, DBSIZE, INFO, SAVE, BGSAVE)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b"*%d\r\n" % len(words)
    for w in words:
        w = w.encode()
        out += b"$%d\r\n%s\r\n" % (len(w), w)
    s.sendall(out)
    data = b""
    while True:
        chunk = s.recv(1 << 16)
        data += chunk
        if not chunk or data.endswith(b"\r\n") and (data[:1] != b"$" or data.count(b"\r\n") >= 2):
            break
    s.close()
    return data.decode(errors="replace")


def field(info, name):
    """A field of INFO's text, "?" when absent."""
    for line in info.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return "?"


def status_mb(pid, name):
    """A /proc/PID/status figure (VmRSS, VmHWM, ...) in MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


class Canary(threading.Thread):
    """One client checking its own keys back to back (every 0.5 ms); keeps
    each latency with the time it was taken."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.samples = []
        self.stop = False

    def run(self):
        s = socket.create_connection(("127.0.0.1", self.port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        i = 0
        while not self.stop:
            key = b"canary:%d" % (i % 1000)
            req = (b"*5\r\n$11\r\nLIMIT.CHECK\r\n$%d\r\n%s\r\n$4\r\ngcra\r\n$7\r\n1000000\r\n$2\r\n1s\r\n"
                   % (len(key), key))
            began = time.perf_counter()
            s.sendall(req)
            got = b""
            while got.count(b"\r\n") < 6:
                got += s.recv(4096)
            self.samples.append((began, time.perf_counter() - began))
            i += 1
            time.sleep(0.0005)

    def quantile_ms(self, start, end, q):
        """The q-quantile of the latencies taken in [start, end), in ms,
        and how many there were."""
        xs = sorted(d for t, d in self.samples if start <= t < end)
        if not xs:
            return float("nan"), 0
        return 1000 * xs[min(len(xs) - 1, int(len(xs) * q))], len(xs)


def fill(port, keys, errors_allowed=False):
    """Creates `keys` token bucket states (key:0, key:1, ...; 10 a day) on
    the server at `port` through redis-cli --pipe, Redis's mass insertion;
    answers its summary line."""
    pipe = subprocess.Popen(["redis-cli", "-p", str(port), "--pipe"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    tail = b"$12\r\ntoken_bucket\r\n$2\r\n10\r\n$2\r\n1d\r\n"
    batch = []
    for i in range(keys):
        key = b"key:%d" % i
        batch.append(b"*5\r\n$11\r\nLIMIT.CHECK\r\n$%d\r\n%s\r\n%s" % (len(key), key, tail))
        if len(batch) == 10000:
            pipe.stdin.write(b"".join(batch))
            batch = []
    pipe.stdin.write(b"".join(batch))
    pipe.stdin.close()
    out = pipe.stdout.read().decode(errors="replace")
    pipe.wait()
    if "errors: 0" not in out and not errors_allowed:
        raise SystemExit(f"mass insertion failed: {out}")
    return out.strip().splitlines()[-1] if out.strip() else ""
