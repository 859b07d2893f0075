"""``python -m edge config | openapi | validate``

config    write Envoy's bootstrap (default .stack/edge/envoy.yaml) from the
          descriptor set, the registry and ECOM_* settings
openapi   write the OpenAPI 3 document (default generated/openapi.json)
validate  generate the config, then check it with ``envoy --mode validate``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from edge import config, registry

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / ".stack" / "edge" / "envoy.yaml"


def _parse_addresses(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, addr = item.partition("=")
        if not sep or name not in {p.name for p in registry.PROCESSES}:
            raise SystemExit(f"--addr wants NAME=HOST:PORT with a known service, got {item!r}")
        out[name] = addr
    return out


def _config(args: argparse.Namespace) -> Path:
    overrides = {}
    if args.port:
        overrides["edge_port"] = args.port
    if args.admin_port:
        overrides["edge_admin_port"] = args.admin_port
    if args.rate_limit_per_minute:
        overrides["edge_rate_limit_per_minute"] = args.rate_limit_per_minute
    settings = config.EdgeSettings(**overrides)
    processes = None
    if args.services:
        processes = [registry.process_named(n) for n in args.services.split(",") if n]
    out = Path(args.out).resolve()
    # The storefront is routed once it is built (`make web`), or when asked.
    web_addr = args.web_addr
    if web_addr is None and (ROOT / "web" / "dist" / "index.html").is_file():
        web_addr = settings.web_addr
    opts = config.options_from_settings(
        settings, out_dir=out.parent, addresses=_parse_addresses(args.addr), processes=processes,
        web_addr=web_addr or None,
    )
    config.write_config(opts, out)
    print(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edge", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("config", "validate"):
        sp = sub.add_parser(name)
        sp.add_argument("--out", default=str(DEFAULT_OUT))
        sp.add_argument("--port", type=int, help="listener port (default ECOM_EDGE_PORT)")
        sp.add_argument("--admin-port", type=int, help="admin port (default 19901)")
        sp.add_argument("--rate-limit-per-minute", type=int)
        sp.add_argument("--addr", action="append", default=[], metavar="NAME=HOST:PORT",
                        help="override a service address (repeatable)")
        sp.add_argument("--services", help="comma-separated services to route (default: present)")
        sp.add_argument("--web-addr", help="the storefront's file server (default ECOM_WEB_ADDR "
                        "when web/dist is built; '' for none)")
    op = sub.add_parser("openapi")
    op.add_argument("--out", default=str(config.OPENAPI_FILE))
    args = parser.parse_args(argv)

    if args.cmd == "config":
        _config(args)
    elif args.cmd == "validate":
        from infra import tools

        out = _config(args)
        proc = subprocess.run([str(tools.envoy()), "--mode", "validate", "-c", str(out)],
                              capture_output=True, text=True)
        sys.stdout.write(proc.stdout[-4000:])
        sys.stderr.write(proc.stderr[-4000:])
        return proc.returncode
    elif args.cmd == "openapi":
        from edge import openapi

        openapi.write(Path(args.out))
        print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
