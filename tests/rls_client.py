#!/usr/bin/env python3
"""A second, independent client of the Envoy rate limit service: grpcio
with the stubs the `xds-protos` package publishes (generated from Envoy's
protos, nothing of ours), against the tollgate binary; redis-py sees the
same keys over RESP.

    python3 tests/rls_client.py target/debug/tollgate

Run by .ci/run after `cargo test` (which builds the binary); needs grpcio,
xds-protos and redis-py (.ci/run installs them when missing). Exits 1 with
a line saying what was wrong.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import grpc
import redis
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from google.protobuf import wrappers_pb2

ALGORITHMS = ["token_bucket", "leaky_bucket", "fixed_window", "sliding_log",
              "sliding_window", "gcra"]

CONFIG = """
grpc_addr = "127.0.0.1:{grpc}"
rls_headers = "x-ratelimit"

[[domain]]
domain = "py"
descriptors = [
{leaves}
  {{ key = "user", rate_limit = {{ unit = "hour", requests_per_unit = 2 }} }},
  {{ key = "org", rate_limit = {{ unit = "hour", requests_per_unit = 10 }} }},
]
"""

OK = rls_pb2.RateLimitResponse.OK
OVER = rls_pb2.RateLimitResponse.OVER_LIMIT


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def expect(what, got, wanted):
    if got != wanted:
        raise SystemExit(f"FAIL {what}: got {got!r}, wanted {wanted!r}")


def descriptor(*entries, hits=None, negative=False):
    d = ratelimit_pb2.RateLimitDescriptor()
    for key, value in entries:
        d.entries.add(key=key, value=value)
    if hits is not None:
        d.hits_addend.CopyFrom(wrappers_pb2.UInt64Value(value=hits))
    if negative:
        # is_negative_hits (field 4, a bool) is newer than the published
        # stubs: sent as the unknown field protobuf keeps and re-sends.
        d = ratelimit_pb2.RateLimitDescriptor.FromString(d.SerializeToString() + b"\x20\x01")
    return d


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/debug/tollgate"
    port, grpc_port = free_port(), free_port()
    data = tempfile.mkdtemp(prefix="tollgate-rls-")
    leaves = "\n".join(
        f'  {{ key = "{a}", rate_limit = {{ algorithm = "{a}", limit = 3, window = "1h" }} }},'
        for a in ALGORITHMS)
    config = os.path.join(data, "tollgate.toml")
    with open(config, "w") as f:
        f.write(CONFIG.format(grpc=grpc_port, leaves=leaves))
    proc = subprocess.Popen([binary, "--config", config, "--port", str(port),
                             "--data-dir", data, "--log-level", "warn"])
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        grpc.channel_ready_future(channel).result(timeout=10)
        stub = rls_pb2_grpc.RateLimitServiceStub(channel)
        r = redis.Redis(port=port)

        def call(*descriptors, hits=0):
            return stub.ShouldRateLimit(rls_pb2.RateLimitRequest(
                domain="py", descriptors=list(descriptors), hits_addend=hits))

        # Every algorithm: three admitted, the fourth over, as documented.
        for a in ALGORITHMS:
            got = [(x.overall_code, x.statuses[0].limit_remaining)
                   for x in (call(descriptor((a, "v"))) for _ in range(4))]
            expect(a, got, [(OK, 2), (OK, 1), (OK, 0), (OVER, 0)])
            info = r.execute_command("LIMIT.INFO", f"py|{a}=v")
            expect(f"{a}: LIMIT.INFO over RESP sees one rule", len(info), 1)
            expect(f"{a}: LIMIT.RESET", r.execute_command("LIMIT.RESET", f"py|{a}=v"), 1)

        # All or nothing: the user's limit spent, the org keeps its units.
        for _ in range(2):
            expect("user and org", call(descriptor(("user", "1")), descriptor(("org", "1"))).overall_code, OK)
        denied = call(descriptor(("user", "1")), descriptor(("org", "1")))
        expect("third call", [s.code for s in denied.statuses], [OVER, OK])
        expect("org untouched", denied.statuses[1].limit_remaining, 8)
        headers = {h.key: h.value for h in denied.response_headers_to_add}
        expect("headers", (headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]), ("2", "0"))

        # hits_addend, a peek, and a refund never past the capacity.
        expect("cost 3", call(descriptor(("org", "2")), hits=3).statuses[0].limit_remaining, 7)
        expect("peek", call(descriptor(("org", "2"), hits=0)).statuses[0].limit_remaining, 7)
        expect("refund", call(descriptor(("org", "2"), hits=2, negative=True)).statuses[0].limit_remaining, 9)
        expect("refund capped", call(descriptor(("org", "2"), hits=50, negative=True)).statuses[0].limit_remaining, 10)

        # Errors: INVALID_ARGUMENT; an unknown domain is not limited.
        try:
            stub.ShouldRateLimit(rls_pb2.RateLimitRequest(domain="py"))
            raise SystemExit("FAIL: no descriptors was accepted")
        except grpc.RpcError as e:
            expect("no descriptors", e.code(), grpc.StatusCode.INVALID_ARGUMENT)
        other = stub.ShouldRateLimit(rls_pb2.RateLimitRequest(
            domain="nobody", descriptors=[descriptor(("user", "1"))]))
        expect("unknown domain", (other.overall_code, other.statuses[0].HasField("current_limit")), (OK, False))
        print("tests/rls_client.py: grpcio with Envoy's published stubs agrees")
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
