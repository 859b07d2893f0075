"""An SRE's view of the contracts: grpcurl can list and describe every
service and method from the descriptor set Envoy loads."""

from __future__ import annotations

import subprocess
from pathlib import Path

from google.protobuf import descriptor_pb2

from infra.tools import grpcurl

PROTOSET = Path(__file__).resolve().parents[2] / "generated" / "ecom.protoset"


def _our_services() -> dict[str, list[str]]:
    fds = descriptor_pb2.FileDescriptorSet.FromString(PROTOSET.read_bytes())
    return {
        f"{f.package}.{s.name}": [m.name for m in s.method]
        for f in fds.file if f.package.startswith("ecom.")
        for s in f.service
    }


def test_grpcurl_lists_and_describes_every_contract() -> None:
    tool = str(grpcurl())
    services = _our_services()
    assert len(services) >= 13
    listed = subprocess.run([tool, "-protoset", str(PROTOSET), "list"],
                            capture_output=True, text=True, check=True).stdout.split()
    assert set(services) <= set(listed)
    for svc, methods in services.items():
        for method in methods:
            out = subprocess.run(
                [tool, "-protoset", str(PROTOSET), "describe", f"{svc}.{method}"],
                capture_output=True, text=True, check=True,
            ).stdout
            assert f"rpc {method} (" in out, out
