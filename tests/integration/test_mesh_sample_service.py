"""mesh end to end: a sample service run as its own process, checked with the
real grpcurl and grpc-health-probe binaries and a Python client.

Needs no datastore: the sample's one dependency is a marker file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from grpc_tools import protoc

from infra.tools import grpc_health_probe, grpcurl

REPO = Path(__file__).resolve().parents[2]
SAMPLE = Path(__file__).parent / "sample_svc"
SERVICE = "ecom.sample.v1.EchoService"
GRACE = 4.0


@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stubs for the sample contract (module mesh_sample.v1) compiled into a temp dir."""
    out = tmp_path_factory.mktemp("sample_stubs")
    proto_root = SAMPLE / "proto"
    import grpc_tools

    include = Path(grpc_tools.__file__).parent / "_proto"
    rc = protoc.main(
        [
            "protoc",
            f"-I{proto_root}",
            f"-I{include}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            str(proto_root / "mesh_sample/v1/echo.proto"),
        ]
    )
    assert rc == 0, "protoc failed"
    return out


@dataclass
class SampleProcess:
    """The running sample service and everything it has logged so far."""

    proc: subprocess.Popen[str]
    marker: Path
    lines: list[dict[str, object]] = field(default_factory=list)
    addr: str = ""
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            try:
                entry = json.loads(raw)
            except ValueError:
                entry = {"msg": raw.rstrip(), "raw": True}
            with self._cond:
                self.lines.append(entry)
                self._cond.notify_all()

    def wait_for(self, pred: Callable[[dict[str, object]], bool], timeout: float = 15) -> dict:
        """The first log line matching ``pred``, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for entry in self.lines:
                    if pred(entry):
                        return entry
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._more_expected()):
                    raise AssertionError(f"no matching log line; got: {self.lines[-20:]}")
                self._cond.wait(min(left, 0.2))

    def _more_expected(self) -> bool:
        return self.proc.stderr is not None and not self.proc.stderr.closed

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def start_sample(stubs: Path, tmp: Path, **env: str) -> SampleProcess:
    marker = tmp / "dependency-up"
    marker.touch()
    proc = subprocess.Popen(
        [sys.executable, str(SAMPLE / "main.py")],
        cwd=REPO,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("ECOM_")},
            "PYTHONPATH": os.pathsep.join([str(stubs), str(REPO)]),
            "ECOM_SAMPLE_ADDR": "127.0.0.1:0",
            "ECOM_SAMPLE_DEPENDENCY_FILE": str(marker),
            "ECOM_HEALTH_CHECK_INTERVAL_SECONDS": "0.2",
            "ECOM_SHUTDOWN_GRACE_SECONDS": str(GRACE),
            **env,
        },
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    sample = SampleProcess(proc, marker)
    threading.Thread(target=sample._pump, daemon=True).start()
    try:
        serving = sample.wait_for(lambda e: e.get("msg") == "serving")
    except AssertionError:
        sample.stop()
        raise
    sample.addr = str(serving["addr"])
    return sample


@pytest.fixture(scope="module")
def sample(stubs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SampleProcess]:
    svc = start_sample(stubs, tmp_path_factory.mktemp("sample"))
    yield svc
    svc.stop()


@dataclass
class Stubs:
    """The compiled sample modules."""

    pb2: Any
    grpc: Any


@pytest.fixture(scope="module")
def pb(stubs: Path) -> Stubs:
    sys.path.insert(0, str(stubs))
    try:
        from mesh_sample.v1 import echo_pb2, echo_pb2_grpc
    finally:
        sys.path.remove(str(stubs))
    return Stubs(echo_pb2, echo_pb2_grpc)


def run_tool(*args: str | Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)


def probe(addr: str, service: str = "") -> subprocess.CompletedProcess[str]:
    args: list[str | Path] = [grpc_health_probe(), f"-addr={addr}", "-connect-timeout=2s"]
    if service:
        args.append(f"-service={service}")
    return run_tool(*args)


def wait_probe(addr: str, service: str, want_ok: bool, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = probe(addr, service)
        if (result.returncode == 0) == want_ok:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"health of {service!r} never became ok={want_ok}: {result}")
        time.sleep(0.2)


def test_health_probe_reports_serving(sample: SampleProcess) -> None:
    for service in ("", SERVICE):
        result = probe(sample.addr, service)
        assert result.returncode == 0, result
        assert "SERVING" in result.stdout + result.stderr


def test_reflection_lists_and_describes_every_service(sample: SampleProcess) -> None:
    listed = run_tool(grpcurl(), "-plaintext", sample.addr, "list")
    assert listed.returncode == 0, listed.stderr
    services = set(listed.stdout.split())
    assert {SERVICE, "grpc.health.v1.Health"} <= services
    described = run_tool(grpcurl(), "-plaintext", sample.addr, "describe", SERVICE)
    assert described.returncode == 0, described.stderr
    assert "rpc Echo ( .ecom.sample.v1.EchoRequest )" in described.stdout
    assert "rpc Slow ( .ecom.sample.v1.SlowRequest )" in described.stdout
    health = run_tool(grpcurl(), "-plaintext", sample.addr, "describe", "grpc.health.v1.Health")
    assert "rpc Check" in health.stdout


def test_grpcurl_call_and_invalid_argument_details(sample: SampleProcess) -> None:
    ok = run_tool(
        grpcurl(),
        "-plaintext",
        "-H",
        "x-request-id: grpcurl-1",
        "-d",
        '{"message": "hi"}',
        sample.addr,
        f"{SERVICE}/Echo",
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == {"message": "hi", "request_id": "grpcurl-1"}

    bad = run_tool(grpcurl(), "-plaintext", "-d", '{"message": ""}', sample.addr, f"{SERVICE}/Echo")
    assert bad.returncode != 0
    assert "Code: InvalidArgument" in bad.stderr
    assert "google.rpc.BadRequest" in bad.stderr and '"field": "message"' in bad.stderr


def test_python_client_decodes_field_violation(pb: Stubs, sample: SampleProcess) -> None:
    with grpc.insecure_channel(sample.addr) as channel:
        stub = pb.grpc.EchoServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Echo(pb.pb2.EchoRequest(message="x" * 101), timeout=5)
    call: Any = caught.value
    assert call.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(call)
    assert status is not None
    violations: list[tuple[str, str]] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations.extend((v.field, v.description) for v in bad_request.field_violations)
    assert violations == [("message", "must be at most 100 characters")]
    access = sample.wait_for(
        lambda e: e.get("logger") == "ecom.access" and e.get("code") == "INVALID_ARGUMENT"
    )
    assert access["method"] == f"/{SERVICE}/Echo"


def test_failing_dependency_flips_health(sample: SampleProcess) -> None:
    sample.marker.unlink()
    try:
        wait_probe(sample.addr, SERVICE, want_ok=False)
        result = probe(sample.addr, "")
        assert result.returncode != 0 and "NOT_SERVING" in result.stdout + result.stderr
        sample.wait_for(
            lambda e: e.get("msg") == "dependency down" and e.get("dependency") == "marker-file"
        )
    finally:
        sample.marker.touch()
    wait_probe(sample.addr, SERVICE, want_ok=True)
    wait_probe(sample.addr, "", want_ok=True)


def test_sigterm_lets_in_flight_call_finish(stubs: Path, pb: Stubs, tmp_path: Path) -> None:
    svc = start_sample(stubs, tmp_path)
    try:
        with grpc.insecure_channel(svc.addr) as channel:
            stub = pb.grpc.EchoServiceStub(channel)
            in_flight = stub.Slow.future(pb.pb2.SlowRequest(millis=1500), timeout=10)
            svc.wait_for(lambda e: e.get("msg") == "slow call started")
            svc.proc.send_signal(signal.SIGTERM)
            svc.wait_for(lambda e: e.get("msg") == "draining")

            # New calls are refused while the old one drains.
            with grpc.insecure_channel(svc.addr) as fresh:
                late = pb.grpc.EchoServiceStub(fresh)
                with pytest.raises(grpc.RpcError):
                    late.Echo(pb.pb2.EchoRequest(message="late"), timeout=1)

            assert in_flight.result().slept_millis == 1500
            code = svc.proc.wait(timeout=GRACE + 5)  # exits (TimeoutExpired fails)
        assert code == 0
        msgs = [e.get("msg") for e in svc.lines]
        assert msgs.index("cleanup ran") < msgs.index("stopped")
    finally:
        svc.stop()


def test_sigterm_cancels_calls_that_outlive_the_grace(
    stubs: Path, pb: Stubs, tmp_path: Path
) -> None:
    svc = start_sample(stubs, tmp_path, ECOM_SHUTDOWN_GRACE_SECONDS="0.5")
    try:
        with grpc.insecure_channel(svc.addr) as channel:
            stub = pb.grpc.EchoServiceStub(channel)
            in_flight = stub.Slow.future(pb.pb2.SlowRequest(millis=30_000), timeout=30)
            svc.wait_for(lambda e: e.get("msg") == "slow call started")
            svc.proc.send_signal(signal.SIGTERM)
            with pytest.raises(grpc.RpcError):
                in_flight.result()
            # The 30 s call was cut: the process exits (TimeoutExpired fails).
            code = svc.proc.wait(timeout=10)
        assert code == 0
    finally:
        svc.stop()
