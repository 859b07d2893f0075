"""Regenerate `generated/` from the contracts in `proto/ecom`.

    python proto/generate.py            # rewrite generated/ in place
    python proto/generate.py --check    # exit 1, naming the files, if generated/ is stale
    python proto/generate.py --descriptor-set-out FILE   # only build the descriptor set

`generated/` holds, for every `proto/ecom/**/*.proto`, the Python messages
(`*_pb2.py`), their type stubs (`*_pb2.pyi`) and gRPC stubs (`*_pb2_grpc.py`),
plus `openapi.json` (the REST surface, by edge/openapi.py) and
`ecom.protoset`: a FileDescriptorSet with all imports and source info
(comments), which is what Envoy's gRPC-JSON transcoder loads and what
`python -m infra.lint` lints with buf. The directory is owned by this script:
files it does not produce are removed.

Imports resolve against the protos that ship with the Python packages already
installed: `google/api`, `google/type`, `google/rpc` from the
googleapis-common-protos wheel and `google/protobuf` from grpcio-tools. Nothing
is downloaded. Output is deterministic: inputs are sorted and the same tool
versions (pinned in requirements.lock) produce the same bytes.
"""

from __future__ import annotations

import argparse
import filecmp
import importlib.resources
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUT = ROOT / "generated"
DESCRIPTOR_SET = "ecom.protoset"
OPENAPI = "openapi.json"
# Files under generated/ that are never compared or removed.
IGNORED_PARTS = {"__pycache__"}


def include_paths() -> list[Path]:
    """-I roots: our protos, then google/protobuf (grpcio-tools), then the
    googleapis protos (google/api, google/type, google/rpc) from their wheel."""
    well_known = Path(str(importlib.resources.files("grpc_tools") / "_proto"))
    googleapis = Path(str(importlib.resources.files("google.api") / "annotations.proto"))
    return [PROTO_ROOT, well_known, googleapis.parent.parent.parent]


def proto_files() -> list[str]:
    """Every contract, as a path relative to proto/, sorted for determinism."""
    found = (PROTO_ROOT / "ecom").rglob("*.proto")
    files = sorted(p.relative_to(PROTO_ROOT).as_posix() for p in found)
    if not files:
        raise SystemExit("no .proto files under proto/ecom")
    return files


def run_protoc(args: list[str]) -> None:
    includes = [f"-I{p}" for p in include_paths()]
    rc = protoc.main(["grpc_tools.protoc", *includes, *args, *proto_files()])
    if rc != 0:
        raise SystemExit(f"protoc failed with exit code {rc}")


def build_descriptor_set(target: Path) -> None:
    """Write the FileDescriptorSet (imports and comments included) to target."""
    target.parent.mkdir(parents=True, exist_ok=True)
    run_protoc([f"--descriptor_set_out={target}", "--include_imports", "--include_source_info"])


def generate_into(out: Path) -> None:
    """Produce the complete contents of generated/ inside out (an empty dir)."""
    run_protoc([f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}"])
    build_descriptor_set(out / DESCRIPTOR_SET)
    write_openapi(out / OPENAPI, out / DESCRIPTOR_SET)
    # Regular packages (not namespace packages) so setuptools, mypy and
    # pytest all find `ecom.<domain>.v1` the same way.
    for package in sorted({p.parent for p in (out / "ecom").rglob("*_pb2.py")}):
        while package != out:
            init = package / "__init__.py"
            if not init.exists():
                init.write_text("")
            package = package.parent


def write_openapi(target: Path, descriptor_set: Path) -> None:
    """The OpenAPI document of the REST surface (served by the edge), built
    from the descriptor set by edge/openapi.py."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from edge import openapi

    openapi.write(target, descriptor_set)


def tree(root: Path) -> dict[str, Path]:
    """Relative path -> file, for every file under root except ignored ones."""
    if not root.exists():
        return {}
    return {
        p.relative_to(root).as_posix(): p
        for p in sorted(root.rglob("*"))
        if p.is_file() and not IGNORED_PARTS.intersection(p.relative_to(root).parts)
    }


def differences(fresh: Path, current: Path) -> list[tuple[str, str]]:
    """(kind, relative path) for every file that differs between two trees:
    kind is "missing" (only in fresh), "stale" (only in current) or "changed"."""
    new, old = tree(fresh), tree(current)
    found = []
    for rel in sorted(new.keys() | old.keys()):
        if rel not in old:
            found.append(("missing", rel))
        elif rel not in new:
            found.append(("stale", rel))
        elif not filecmp.cmp(new[rel], old[rel], shallow=False):
            found.append(("changed", rel))
    return found


def sync(fresh: Path, current: Path) -> list[tuple[str, str]]:
    """Make current identical to fresh, touching only files that changed."""
    changed = differences(fresh, current)
    new, old = tree(fresh), tree(current)
    for rel, path in old.items():
        if rel not in new:
            path.unlink()
    for rel, path in new.items():
        target = current / rel
        if rel not in old or not filecmp.cmp(path, target, shallow=False):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    # Drop directories left empty by removed protos.
    for d in sorted((p for p in current.rglob("*") if p.is_dir()), reverse=True):
        if not any(d.iterdir()):
            d.rmdir()
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--check", action="store_true", help="fail if generated/ is stale; change nothing"
    )
    parser.add_argument(
        "--descriptor-set-out", type=Path, help="only write the descriptor set to this file"
    )
    args = parser.parse_args(argv)

    if args.descriptor_set_out:
        build_descriptor_set(args.descriptor_set_out.resolve())
        return 0

    with tempfile.TemporaryDirectory(prefix="ecom-gen-") as tmp:
        fresh = Path(tmp)
        generate_into(fresh)
        if args.check:
            problems = differences(fresh, OUT)
            if problems:
                what = {
                    "missing": "missing",
                    "stale": "no longer produced",
                    "changed": "out of date",
                }
                print("generated/ is stale; run `make proto`:", file=sys.stderr)
                for kind, rel in problems:
                    print(f"  {what[kind]}: generated/{rel}", file=sys.stderr)
                return 1
            print(f"generated/ is up to date ({len(tree(fresh))} files)")
            return 0
        OUT.mkdir(exist_ok=True)
        changed = sync(fresh, OUT)
    what = {"missing": "added", "stale": "removed", "changed": "updated"}
    print(f"generated/: {len(changed)} file(s) changed")
    for kind, rel in changed:
        print(f"  {what[kind]}: generated/{rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
