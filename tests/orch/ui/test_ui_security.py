"""Who may reach an ``orch ui`` server, and what its pages may load: the token off loopback
(header, query then cookie, compared in constant time), the Host check that stops DNS
rebinding, cross-site form posts refused, and the CSP and other headers on every response,
refusals and errors included. The CLI's own rules are checked in test_ui_cli.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import MakeClient

from orch.ui import CSP, require_token
from traces import DirectoryStore, MemoryStore

TOKEN = "t" * 20 + "-secret"


def assert_secured(headers: object) -> None:
    h = dict(headers)  # type: ignore[call-overload]
    csp = h["content-security-policy"]
    assert csp == CSP
    for rule in (
        "default-src 'self'",
        "script-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ):
        assert rule in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert h["x-content-type-options"] == "nosniff"
    assert h["referrer-policy"] == "no-referrer"


def test_every_response_carries_the_headers(quick_store: Path, make_client: MakeClient) -> None:
    client = make_client(DirectoryStore(quick_store))
    run_id = DirectoryStore(quick_store).run_ids()[0]
    urls = ("/", f"/runs/{run_id}", f"/runs/{run_id}.json", "/static/ui.js", "/nope", "/runs/.x")
    for url in urls:
        assert_secured(client.get(url).headers)
    assert_secured(client.post("/verify", data={"run": run_id}).headers)


def test_off_loopback_the_token_is_required(make_client: MakeClient) -> None:
    client = make_client(
        MemoryStore(), token=TOKEN, allowed_hosts=None, base_url="http://192.0.2.7:8765"
    )
    refused = client.get("/")
    assert refused.status_code == 401 and "token" in refused.text
    assert_secured(refused.headers)
    assert client.get("/static/ui.css").status_code == 401  # assets too
    wrong = {"Authorization": "Bearer wrong-token-xxxxxxxx"}
    assert client.get("/", headers=wrong).status_code == 401
    assert client.get("/?token=" + TOKEN[:-1]).status_code == 401
    assert client.get("/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert client.get("/runs.json", headers={"X-Orch-Token": TOKEN}).status_code == 200
    # ?token= is traded for a cookie and dropped from the address.
    traded = client.get(f"/?status=ok&token={TOKEN}", follow_redirects=False)
    assert traded.status_code == 303 and traded.headers["location"] == "/?status=ok"
    cookie = traded.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert client.get("/?status=ok").status_code == 200  # the client kept the cookie
    client.cookies.clear()
    assert client.get("/").status_code == 401


def test_the_token_redirect_never_leaves_the_site(make_client: MakeClient) -> None:
    client = make_client(MemoryStore(), token=TOKEN, allowed_hosts=None)
    traded = client.get(f"//evil.example/x?token={TOKEN}", follow_redirects=False)
    assert traded.status_code in (303, 401, 404)
    if traded.status_code == 303:
        assert traded.headers["location"].startswith("/") and not traded.headers[
            "location"
        ].startswith("//")


def test_a_loopback_server_answers_to_its_own_names_only(make_client: MakeClient) -> None:
    client = make_client(MemoryStore())
    assert client.get("/").status_code == 200
    for host in ("localhost:8765", "[::1]:8765", "127.0.0.1"):
        assert client.get("/", headers={"Host": host}).status_code == 200
    rebound = client.get("/", headers={"Host": "evil.example:8765"})
    assert rebound.status_code == 400 and "host" in rebound.text
    assert_secured(rebound.headers)


def test_a_form_from_another_site_cannot_post(make_client: MakeClient) -> None:
    client = make_client(MemoryStore())
    cross = client.post("/verify", data={"run": ""}, headers={"Origin": "http://evil.example"})
    assert cross.status_code == 403
    fetched = client.post("/verify", data={"run": ""}, headers={"Sec-Fetch-Site": "cross-site"})
    assert fetched.status_code == 403
    own = client.post("/verify", data={"run": ""}, headers={"Origin": "http://127.0.0.1:8765"})
    assert own.status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.7", "::", "example.com"])
def test_the_rule_refuses_any_other_address_without_a_token(host: str) -> None:
    with pytest.raises(ValueError, match="--token"):
        require_token(host, None)
    require_token(host, TOKEN)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "localhost"])
def test_loopback_needs_no_token(host: str) -> None:
    require_token(host, None)
