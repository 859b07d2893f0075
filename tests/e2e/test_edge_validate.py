"""Envoy itself accepts the generated configuration (``envoy --mode
validate``): for every service in the registry, and for the services present
in this checkout. No servers needed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from edge import config, descriptors, registry
from infra import tools


@pytest.mark.parametrize("which", ["all", "present"])
def test_envoy_validates_generated_config(which: str, tmp_path: Path) -> None:
    processes = list(registry.PROCESSES) if which == "all" else registry.present_processes()
    settings = config.EdgeSettings(edge_port=18080, edge_admin_port=18081)
    opts = config.options_from_settings(settings, out_dir=tmp_path, processes=processes)
    cfg = config.write_config(opts, tmp_path / "envoy.yaml")
    proc = subprocess.run([str(tools.envoy()), "--mode", "validate", "-c", str(cfg)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "OK" in proc.stdout + proc.stderr


def test_envoy_rejects_a_broken_config(tmp_path: Path) -> None:
    """The validation above can fail: a transcoder service missing from the
    descriptor set is refused by Envoy."""
    settings = config.EdgeSettings(edge_port=18080, edge_admin_port=18081)
    opts = config.options_from_settings(settings, out_dir=tmp_path,
                                        processes=[registry.process_named("users")])
    boot = config.build_bootstrap(opts, descriptors.load())
    hcm = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    for f in hcm["typed_config"]["http_filters"]:
        if f["name"] == "envoy.filters.http.grpc_json_transcoder":
            f["typed_config"]["services"].append("ecom.nope.v1.NopeService")
    cfg = tmp_path / "broken.yaml"
    cfg.write_text(json.dumps(boot))
    proc = subprocess.run([str(tools.envoy()), "--mode", "validate", "-c", str(cfg)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
