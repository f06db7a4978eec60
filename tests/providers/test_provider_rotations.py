"""Full rotations of every provider against the fakes, checked against the official specs.

Each rotation runs the provider steps the engine runs (generate or supply, validate,
revoke, verify revocation); the requests are then checked against tests/data/specs, and
the canary test checks that no issued secret reaches a log record or an error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from provider_fakes import FakeWorld, MakeCtx
from provider_specs import problems

from providers.base import Generated
from providers.gcp_identity import GcpIdentityApiKeyProvider
from providers.google_oauth import GoogleOAuthClientSecretProvider
from providers.resend import ResendProvider
from providers.stripe import StripeProvider
from rotator.errors import NeedsPersonError, ProviderError
from rotator.secret import Secret

Seen = list[object]  # everything a rotation returned or raised, for the canary


def rotate_resend(world: FakeWorld, make_ctx: MakeCtx, seen: Seen) -> None:
    old_id, old_token = world.resend.add_key("bootstrap key")
    world.resend.add_key("other service")
    world.resend.add_key("another")  # three keys: the list needs two pages
    provider = ResendProvider()
    ctx = make_ctx("BANDOFBAKERS_RESEND_API_KEY", current=Secret(old_token), current_ref=old_id)
    new = provider.generate(ctx)
    seen.append(new)
    assert world.resend.keys[new.ref]["token"] == new.value.reveal()
    assert len(world.resend.keys) == 4
    provider.validate(ctx, new.value)
    promoted = make_ctx(
        "BANDOFBAKERS_RESEND_API_KEY", current=new.value, current_ref=new.ref, rotation_id="r2"
    )
    assert provider.verify_revoked(promoted, old_id, Secret(old_token)) is False
    seen.append(provider.revoke(promoted, old_id, Secret(old_token)))
    assert old_id not in world.resend.keys
    assert provider.verify_revoked(promoted, old_id, Secret(old_token)) is True


def rotate_stripe(world: FakeWorld, make_ctx: MakeCtx, seen: Seen) -> None:
    old = world.stripe.new_key("rk")
    provider = StripeProvider()
    ctx = make_ctx("BANDOFBAKERS_STRIPE_SECRET_KEY", current=Secret(old))
    with pytest.raises(NeedsPersonError) as asked:
        provider.generate(ctx)
    seen.append(asked.value)
    assert "rotate supply BANDOFBAKERS_STRIPE_SECRET_KEY" in asked.value.instruction
    new = world.stripe.new_key("rk")
    world.stripe.no_balance_permission.add(new)  # restricted key without balance read
    accepted = provider.accept_supplied(ctx, Secret(new))
    seen.append(accepted)
    assert accepted.ref == "supplied:2026q3-01"
    with pytest.raises(NeedsPersonError) as asked:
        provider.revoke(ctx, "previous", Secret(old))
    seen.append(asked.value)
    assert "--step revoke" in asked.value.instruction
    assert provider.verify_revoked(ctx, "previous", Secret(old)) is False
    world.stripe.expire(old)
    assert provider.verify_revoked(ctx, "previous", Secret(old)) is True


def rotate_gcp(world: FakeWorld, make_ctx: MakeCtx, seen: Seen) -> None:
    restrictions = {
        "browserKeyRestrictions": {"allowedReferrers": ["https://bandofbakers.co.uk/*"]},
        "apiTargets": [
            {"service": "identitytoolkit.googleapis.com"},
            {"service": "securetoken.googleapis.com"},
        ],
    }
    old = world.google.add_key("idp-web-2026-q2", restrictions)
    world.google.propagation_answers = 1
    provider = GcpIdentityApiKeyProvider()
    options = {
        "project": world.google.project,
        "allowed_referrers": ["https://bandofbakers.co.uk/*"],
    }
    ctx = make_ctx(
        "BANDOFBAKERS_GCP_IDENTITY_PLATFORM_API_KEY",
        options=options,
        current=Secret(old["keyString"]),
        current_ref=old["name"],
    )
    new = provider.generate(ctx)
    seen.append(new)
    created = world.google.keys[new.ref]
    assert created["restrictions"] == restrictions  # copied from the current key
    assert new.value.reveal() == created["keyString"]
    provider.validate(ctx, new.value)  # waits out one propagation answer
    notes = provider.revoke(ctx, old["name"], Secret(old["keyString"]))
    seen.append(notes)
    assert notes and "30 days" in notes["undelete"]
    assert world.google.keys[old["name"]].get("deleteTime")
    assert provider.verify_revoked(ctx, old["name"], Secret(old["keyString"])) is True
    assert world.google.token_requests == 1  # the access token is cached


def rotate_google_oauth(world: FakeWorld, make_ctx: MakeCtx, seen: Seen) -> None:
    client_id = "123-abc.apps.googleusercontent.com"
    world.google.oauth_clients[client_id] = {"GOCSPX-old-secret-value-0001"}
    provider = GoogleOAuthClientSecretProvider()
    ctx = make_ctx(
        "GOOGLE_CLIENT_SECRET",
        scope_env="staging",
        options={"client_id": client_id, "redirect_uri": "https://staging.example/api/auth"},
    )
    with pytest.raises(NeedsPersonError) as asked:
        provider.generate(ctx)
    seen.append(asked.value)
    assert "rotate supply GOOGLE_CLIENT_SECRET --env staging" in asked.value.instruction
    assert client_id in asked.value.instruction
    world.google.oauth_clients[client_id].add("GOCSPX-new-secret-value-0002")
    accepted = provider.accept_supplied(ctx, Secret("GOCSPX-new-secret-value-0002"))
    seen.append(accepted)
    old = Secret("GOCSPX-old-secret-value-0001")
    with pytest.raises(NeedsPersonError) as asked:
        provider.revoke(ctx, "previous", old)
    seen.append(asked.value)
    assert "rotate confirm GOOGLE_CLIENT_SECRET --env staging --step revoke" in (
        asked.value.instruction
    )
    assert provider.verify_revoked(ctx, "previous", old) is False
    world.google.oauth_clients[client_id].discard(old.reveal())
    assert provider.verify_revoked(ctx, "previous", old) is True


Rotation = Callable[[FakeWorld, MakeCtx, Seen], None]
ROTATIONS: dict[str, Rotation] = {
    "resend": rotate_resend,
    "stripe": rotate_stripe,
    "gcp-identity": rotate_gcp,
    "google-oauth": rotate_google_oauth,
}


@pytest.fixture(params=sorted(ROTATIONS))
def rotation(request: pytest.FixtureRequest, sa_key: dict[str, Any]) -> Rotation:
    return ROTATIONS[request.param]


def test_full_rotation_requests_match_the_specs(
    world: FakeWorld, make_ctx: MakeCtx, rotation: Rotation
) -> None:
    rotation(world, make_ctx, [])
    assert world.requests
    assert problems(world.requests) == []


def test_spec_checker_catches_strays(world: FakeWorld) -> None:
    import httpx

    strays = [
        httpx.Request("POST", "https://api.resend.com/api-keys", json={"name": "x", "ttl": 1}),
        httpx.Request("GET", "https://api.resend.com/api-keys?page=2"),
        httpx.Request("PUT", "https://api.resend.com/api-keys/abc"),
        httpx.Request(
            "POST",
            "https://apikeys.googleapis.com/v2/projects/p/locations/global/keys?keyId=k",
            json={"restrictions": {"browserKeyRestrictions": {"referrers": []}}},
        ),
        httpx.Request("GET", "https://api.stripe.com/v1/charges"),
    ]
    assert len(problems(strays)) == 5


def test_no_secret_reaches_logs_errors_or_reprs(
    world: FakeWorld,
    make_ctx: MakeCtx,
    sa_key: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    root = logging.getLogger()
    old_levels = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    caplog.set_level(logging.DEBUG)
    for name in old_levels:
        logging.getLogger(name).setLevel(logging.DEBUG)  # worst case: someone turned them on
    seen: Seen = []
    try:
        for rotation in ROTATIONS.values():
            rotation(world, make_ctx, seen)
        # Failures too: an invalid key, a refused probe.
        for call in (
            lambda: ResendProvider().validate(make_ctx("R"), Secret("re_not_a_real_key_1234")),
            lambda: StripeProvider().validate(make_ctx("S"), Secret("sk_live_notreal123456789")),
        ):
            with pytest.raises(ProviderError) as caught:
                call()
            seen.append(caught.value)
    finally:
        for name, level in old_levels.items():
            logging.getLogger(name).setLevel(level)
    assert root.level == logging.DEBUG
    secrets = world.issued_secrets() | {
        "re_not_a_real_key_1234",
        "sk_live_notreal123456789",
        "GOCSPX-new-secret-value-0002",
        "GOCSPX-old-secret-value-0001",
    }
    pem_body = "".join(sa_key["pem"].splitlines()[1:-1])
    texts = [pem_body[:40], pem_body[-40:]]
    assert len(secrets) > 10 and all(secrets)
    rendered = [caplog.text]
    rendered += [r.getMessage() for r in caplog.records]
    rendered += [repr(r.args) for r in caplog.records]
    rendered += [repr(x) for x in seen] + [str(x) for x in seen]
    rendered += [repr(g.value) for g in seen if isinstance(g, Generated)]
    assert any(r.name == "rotator.http" for r in caplog.records)
    for text in rendered:
        for value in secrets | set(texts):
            assert value not in text


def test_httpx_request_log_is_redacted(
    world: FakeWorld, make_ctx: MakeCtx, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("httpx")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    try:
        world.http().request(
            "GET",
            "https://identitytoolkit.googleapis.com/v1/projects?key=AIzaCANARY",
            provider="p",
            operation="o",
            idempotent=True,
        )
    finally:
        logger.setLevel(level)
    assert any(r.name == "httpx" for r in caplog.records)
    assert "AIzaCANARY" not in caplog.text


def test_httpx_request_log_is_redacted_once_the_cli_scrubs_every_record(
    world: FakeWorld, make_ctx: MakeCtx, caplog: pytest.LogCaptureFixture
) -> None:
    """`rotate` installs a record factory that formats each message as it is created,
    before the httpx logger's own URL filter runs: the factory must drop the query too."""
    from rotator import redact

    redact.install_logging()
    redact.register("re_some_value_the_process_holds")
    logger = logging.getLogger("httpx")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    try:
        world.http().request(
            "GET",
            "https://identitytoolkit.googleapis.com/v1/projects?key=AIzaCANARY2",
            provider="p",
            operation="o",
            idempotent=True,
        )
    finally:
        logger.setLevel(level)
        redact.forget_all()
    assert any(r.name == "httpx" for r in caplog.records)
    assert "AIzaCANARY2" not in caplog.text
    assert "identitytoolkit.googleapis.com/v1/projects" in caplog.text
