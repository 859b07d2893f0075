"""Lint the contracts with buf and the Python tree with ruff; check wire
compatibility of the contracts against another git ref.

    python -m infra.lint                 # buf lint + ruff check + mypy; non-zero on findings
    python -m infra.lint --breaking main # buf breaking against main's generated/ecom.protoset

buf cannot resolve `google/api/*`, `google/type/*`, `google/rpc/*` and
`google/protobuf/*` from a plain `proto/` checkout: they ship in Python wheels
(googleapis-common-protos, grpcio-tools), not in this repository, and the Buf
registry is unreachable. So buf is pointed at a descriptor image instead:
`proto/generate.py --descriptor-set-out` compiles every contract with protoc
against the wheels' protos, keeping imports and source info (comments), and
buf checks that image with `--path ecom` so only our files are judged, under
the rules in the root `buf.yaml`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from infra.tools import buf

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "buf.yaml"
GENERATE = ROOT / "proto" / "generate.py"
COMMITTED_PROTOSET = "generated/ecom.protoset"


def build_image(target: Path) -> None:
    """Compile proto/ecom into a buf-readable image (FileDescriptorSet, binpb)."""
    subprocess.run(
        [sys.executable, str(GENERATE), "--descriptor-set-out", str(target)],
        cwd=ROOT,
        check=True,
    )


def buf_lint() -> list[str]:
    """buf lint findings for proto/ecom, one per line; empty when clean."""
    with tempfile.TemporaryDirectory(prefix="ecom-lint-") as tmp:
        image = Path(tmp) / "ecom.binpb"
        build_image(image)
        proc = subprocess.run(
            [str(buf()), "lint", str(image), "--config", str(CONFIG), "--path", "ecom"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    findings = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    if proc.returncode != 0 and not findings:
        findings = [f"buf lint exited with {proc.returncode} and no output"]
    return findings


def ruff_check() -> int:
    """ruff over the Python tree (configuration in pyproject.toml; generated/ excluded)."""
    return subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT).returncode


# The packages mypy checks (configuration in pyproject.toml).
MYPY_TARGETS = ("mesh", "sim", "tests")


def mypy_check() -> int:
    """mypy over the services, mesh and the tests."""
    services = sorted(str(p.name) for p in ROOT.glob("svc_*") if p.is_dir())
    return subprocess.run(
        [sys.executable, "-m", "mypy", *services, *MYPY_TARGETS], cwd=ROOT
    ).returncode


def buf_breaking(against_ref: str) -> int:
    """Compare the working tree's contracts with the descriptor set committed at
    `against_ref`. Returns buf's exit code (0 when compatible)."""
    baseline = subprocess.run(
        ["git", "show", f"{against_ref}:{COMMITTED_PROTOSET}"],
        cwd=ROOT,
        capture_output=True,
    )
    if baseline.returncode != 0:
        print(
            f"buf breaking: no {COMMITTED_PROTOSET} at {against_ref!r}; nothing to compare against",
            file=sys.stderr,
        )
        return 0
    with tempfile.TemporaryDirectory(prefix="ecom-breaking-") as tmp:
        current, previous = Path(tmp) / "current.binpb", Path(tmp) / "previous.binpb"
        build_image(current)
        previous.write_bytes(baseline.stdout)
        return subprocess.run(
            [
                str(buf()),
                "breaking",
                str(current),
                "--against",
                str(previous),
                "--config",
                str(CONFIG),
                "--against-config",
                str(CONFIG),
                "--path",
                "ecom",
            ],
            cwd=ROOT,
        ).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--breaking", metavar="REF", help="check wire compatibility against this git ref"
    )
    args = parser.parse_args(argv)

    if args.breaking:
        return 1 if buf_breaking(args.breaking) else 0

    failed = False
    findings = buf_lint()
    if findings:
        failed = True
        print("buf lint:", *findings, sep="\n  ")
    else:
        print("buf lint: clean")
    if ruff_check() != 0:
        failed = True
    if mypy_check() != 0:
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
