"""The edge's generated Envoy configuration and OpenAPI document, as data
(no Envoy, no servers). tests/e2e/test_edge_validate.py runs Envoy's own
validation on the same output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge import config, descriptors, openapi, registry

JWKS = {"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": "k", "n": "AQAB",
                  "e": "AQAB"}]}


@pytest.fixture(scope="module")
def contracts() -> descriptors.Contracts:
    return descriptors.load()


def _bootstrap(contracts: descriptors.Contracts, processes: list[registry.ServiceProcess],
               **kw: Any) -> dict[str, Any]:
    opts = config.EdgeOptions(
        jwks=JWKS, addresses=registry.default_addresses(), processes=processes,
        descriptor_file=Path("/tmp/ecom-edge.protoset"), **kw,
    )
    return config.build_bootstrap(opts, contracts)


def _hcm(boot: dict[str, Any]) -> dict[str, Any]:
    listener = boot["static_resources"]["listeners"][0]
    return listener["filter_chains"][0]["filters"][0]["typed_config"]


def _filter(boot: dict[str, Any], name: str) -> dict[str, Any]:
    found = [f["typed_config"] for f in _hcm(boot)["http_filters"] if f["name"] == name]
    assert found, name
    return found[0]


def test_one_cluster_per_process_and_transcoder_matches_registry(contracts) -> None:  # type: ignore[no-untyped-def]
    boot = _bootstrap(contracts, list(registry.PROCESSES))
    clusters = boot["static_resources"]["clusters"]
    assert sorted(c["name"] for c in clusters) == sorted(p.cluster for p in registry.PROCESSES)
    for c in clusters:
        opts = c["typed_extension_protocol_options"][
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
        assert "http2_protocol_options" in opts["explicit_http_config"]
        assert c["health_checks"][0]["grpc_health_check"] == {}
    services = _filter(boot, "envoy.filters.http.grpc_json_transcoder")["services"]
    assert sorted(services) == sorted(s for p in registry.PROCESSES for s in p.public_services)
    assert set(services) <= set(contracts.services)


def test_only_present_services_are_included(contracts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "svc_users").mkdir()
    (tmp_path / "svc_users" / "main.py").write_text("")
    present = registry.present_processes(tmp_path)
    assert [p.name for p in present] == ["users"]
    boot = _bootstrap(contracts, present)
    assert [c["name"] for c in boot["static_resources"]["clusters"]] == ["svc_users"]
    assert _filter(boot, "envoy.filters.http.grpc_json_transcoder")["services"] == [
        "ecom.users.v1.UserService", "ecom.users.v1.AuthService"]


def test_routes_are_exactly_the_rest_bindings_writes_retried_only_before_reaching_a_service(
        contracts) -> None:  # type: ignore[no-untyped-def]
    boot = _bootstrap(contracts, list(registry.PROCESSES))
    routes = _hcm(boot)["route_config"]["virtual_hosts"][0]["routes"]
    rpc_routes = [r for r in routes if "route" in r]
    bindings = [(rpc, b) for rpc, _ in config.routed_rpcs(contracts, registry.PROCESSES)
                for b in rpc.bindings]
    assert len(rpc_routes) == len(bindings)
    for route, (_rpc, b) in zip(rpc_routes, bindings, strict=True):
        assert route["route"]["cluster"].startswith("svc_")
        assert float(route["route"]["timeout"].rstrip("s")) > 0
        retry_on = set(route["route"]["retry_policy"]["retry_on"].split(","))
        if b.verb == "GET":
            assert {"unavailable", "reset"} <= retry_on, route["name"]
        else:
            # A write that may have reached a replica is never sent again.
            assert retry_on == {"connect-failure", "refused-stream"}, route["name"]
        assert route["route"]["retry_policy"]["retry_host_predicate"][0]["name"] == (
            "envoy.retry_host_predicates.previous_hosts")
    # Nothing routes to a gRPC-only RPC.
    assert not any("GetJwks" in r["name"] for r in routes)


def test_identity_header_is_removed_before_jwt_authn(contracts) -> None:  # type: ignore[no-untyped-def]
    names = [f["name"] for f in _hcm(_bootstrap(contracts, list(registry.PROCESSES)))[
        "http_filters"]]
    assert names.index("envoy.filters.http.header_mutation") < names.index(
        "envoy.filters.http.jwt_authn")
    assert names[-1] == "envoy.filters.http.router"
    mutation = _filter(_bootstrap(contracts, list(registry.PROCESSES)),
                       "envoy.filters.http.header_mutation")
    assert mutation["mutations"]["request_mutations"] == [{"remove": "x-jwt-payload"}]


def test_jwt_optional_only_on_public_routes(contracts) -> None:  # type: ignore[no-untyped-def]
    jwt = _filter(_bootstrap(contracts, list(registry.PROCESSES)), "envoy.filters.http.jwt_authn")
    provider = jwt["providers"][config.JWT_PROVIDER]
    assert provider["issuer"] == "ecom" and provider["audiences"] == ["ecom"]
    assert provider["forward_payload_header"] == "x-jwt-payload"
    rules = jwt["rules"]
    # The last rule is the default: a token is required.
    assert rules[-1] == {"match": {"prefix": "/"}, "requires": {"provider_name": "ecom"}}
    optional = [r["match"] for r in rules if "requires_any" in r["requires"]]
    paths = {m.get("path") or m.get("safe_regex", {}).get("regex") for m in optional}
    assert {"/v1/users", "/v1/auth:login", "/v1/search", "/v1/items/[^/]+",
            "/v1/items:batchGet", "/v1/serviceability", "/v1/warehouses",
            "/v1/categories/[^/]+/recommendations", "/openapi.json"} <= paths
    # Reading or changing a profile is not public.
    assert "/v1/users/[^/]+" not in paths


def test_rate_limit_is_per_client_and_configurable(contracts) -> None:  # type: ignore[no-untyped-def]
    rl = _filter(_bootstrap(contracts, list(registry.PROCESSES), rate_limit_per_minute=7),
                 "envoy.filters.http.local_ratelimit")
    assert rl["rate_limits"] == [{"actions": [{"remote_address": {}}]}]
    (descriptor,) = rl["descriptors"]
    assert descriptor["entries"] == [{"key": "remote_address"}]  # no value: per client
    assert descriptor["token_bucket"]["max_tokens"] == 7


def test_admin_on_loopback(contracts) -> None:  # type: ignore[no-untyped-def]
    boot = _bootstrap(contracts, [], admin_port=19999)
    assert boot["admin"]["address"]["socket_address"] == {"address": "127.0.0.1",
                                                         "port_value": 19999}


def test_unknown_service_in_registry_is_refused(contracts) -> None:  # type: ignore[no-untyped-def]
    bogus = registry.ServiceProcess("users", ("ecom.nope.v1.NopeService",))
    with pytest.raises(ValueError, match="NopeService"):
        _bootstrap(contracts, [bogus])


def test_path_template_regex() -> None:
    b = descriptors.HttpBinding("POST", "/v1/orders/{order_id}:pay", "*")
    assert b.path_params == ["order_id"]
    assert b.path_regex() == "/v1/orders/[^/]+:pay"
    assert descriptors.HttpBinding("GET", "/v1/{name=items/*}", "").openapi_path == "/v1/{name}"


def test_openapi_lists_every_rest_binding_with_security(contracts) -> None:  # type: ignore[no-untyped-def]
    doc = openapi.build(contracts)
    assert doc["openapi"].startswith("3.")
    ops = {(path, verb): op for path, item in doc["paths"].items() for verb, op in item.items()}
    for rpc, _ in config.routed_rpcs(contracts, registry.PROCESSES):
        for b in rpc.bindings:
            op = ops[(b.openapi_path, b.verb.lower())]
            public = rpc.full_name in registry.PUBLIC_RPCS
            assert ({} in op["security"]) == public, rpc.full_name
    login = ops[("/v1/auth:login", "post")]
    body = login["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][body.rsplit("/", 1)[-1]]
    assert set(schema["properties"]) == {"email", "password"}  # proto3 JSON names
    user = doc["components"]["schemas"]["ecom.users.v1.User"]
    assert "userId" in user["properties"] and user["description"]
    get_user = ops[("/v1/users/{user_id}", "get")]
    assert [p["name"] for p in get_user["parameters"]] == ["user_id"]


def test_generated_openapi_is_fresh(contracts) -> None:  # type: ignore[no-untyped-def]
    """generated/openapi.json is what the generator produces now (make proto)."""
    assert config.OPENAPI_FILE.read_text() == openapi.render(openapi.build(contracts))


def test_headers_are_made_grpc_safe_after_jwt_authn_before_the_transcoder(contracts) -> None:  # type: ignore[no-untyped-def]
    boot = _bootstrap(contracts, list(registry.PROCESSES))
    names = [f["name"] for f in _hcm(boot)["http_filters"]]
    lua = names.index("envoy.filters.http.lua")
    assert names.index("envoy.filters.http.jwt_authn") < lua
    assert lua + 1 == names.index("envoy.filters.http.grpc_json_transcoder")
    code = _filter(boot, "envoy.filters.http.lua")["default_source_code"]["inline_string"]
    assert code == config.GRPC_SAFE_HEADERS_LUA and "headers:remove" in code


def test_unknown_query_parameters_are_rejected_not_passed_through(contracts) -> None:  # type: ignore[no-untyped-def]
    boot = _bootstrap(contracts, list(registry.PROCESSES))
    transcoder = _filter(boot, "envoy.filters.http.grpc_json_transcoder")
    assert transcoder["request_validation_options"] == {"reject_unknown_query_parameters": True}
    # Ignoring them instead would hide a client's typo.
    assert not transcoder.get("ignore_unknown_query_parameters")


def test_transcoder_accepts_a_full_size_supplier_feed(contracts) -> None:  # type: ignore[no-untyped-def]
    """100,000 feed rows are about 35 MB of JSON; left unset, the limit is
    the connection's 1 MiB buffer and such a POST got 413 whenever Envoy
    read faster than svc_catalog took the stream (seen in the feed bench)."""
    from svc_catalog.main import MAX_MESSAGE_BYTES

    boot = _bootstrap(contracts, list(registry.PROCESSES))
    transcoder = _filter(boot, "envoy.filters.http.grpc_json_transcoder")
    assert transcoder["max_request_body_size"] >= 64 * 1024 * 1024
    assert transcoder["max_request_body_size"] <= MAX_MESSAGE_BYTES


def test_storefront_route_only_when_a_file_server_is_given(contracts) -> None:  # type: ignore[no-untyped-def]
    import re

    without = _bootstrap(contracts, list(registry.PROCESSES))
    names = [c["name"] for c in without["static_resources"]["clusters"]]
    assert config.WEB_CLUSTER not in names

    boot = _bootstrap(contracts, list(registry.PROCESSES), web_addr="127.0.0.1:18088")
    web = [c for c in boot["static_resources"]["clusters"] if c["name"] == config.WEB_CLUSTER]
    assert len(web) == 1 and web[0]["health_checks"][0]["http_health_check"] == {"path": "/"}
    # Plain HTTP/1.1 to the file server, not the services' HTTP/2.
    assert "typed_extension_protocol_options" not in web[0]
    routes = _hcm(boot)["route_config"]["virtual_hosts"][0]["routes"]
    (route,) = [r for r in routes if r.get("route", {}).get("cluster") == config.WEB_CLUSTER]
    pattern = re.compile(route["match"]["safe_regex"]["regex"])
    for path in ("/", "/index.html", "/assets/index-DPnMg77N.js"):
        assert pattern.search(path), path
    for path in ("/v1/search", "/assets/../pyproject.toml", "/web/package.json", "/assets/a/b.js",
                 "/.env"):
        assert not pattern.search(path), path
    methods = route["match"]["headers"][0]["string_match"]["safe_regex"]["regex"]
    assert re.fullmatch(methods, "GET") and not re.fullmatch(methods, "POST")
    # The files need no token; the default rule still wants one everywhere else.
    rules = _filter(boot, "envoy.filters.http.jwt_authn")["rules"]
    assert {"match": config.WEB_MATCH, "requires": rules[1]["requires"]} in rules
    assert rules[-1] == {"match": {"prefix": "/"}, "requires": {"provider_name": "ecom"}}


def test_a_service_with_replicas_has_one_endpoint_each(contracts) -> None:  # type: ignore[no-untyped-def]
    users = registry.process_named("users")
    c = config.cluster(users, "127.0.0.1:6001,127.0.0.1:6101", 1.0)
    endpoints = [e["endpoint"]["address"]["socket_address"]
                 for e in c["load_assignment"]["endpoints"][0]["lb_endpoints"]]
    assert endpoints == [{"address": "127.0.0.1", "port_value": 6001},
                         {"address": "127.0.0.1", "port_value": 6101}]
    assert c["type"] == "STATIC" and c["lb_policy"] == "ROUND_ROBIN"
