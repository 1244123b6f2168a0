"""Tokens (`auth.tokens`), permissions (`auth.permissions.can`) and the `token` command.

Every key kind the service accepts is exercised with a key made here, and
every forgery the issue names is made by hand where PyJWT would refuse to
make it. JWKS keys come from a small HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.algorithms import RSAAlgorithm

from {{ cookiecutter.package_name }}.__main__ import main
from {{ cookiecutter.package_name }}.auth import permissions
from {{ cookiecutter.package_name }}.auth.tokens import (
    ANONYMOUS,
    Authenticator,
    Identity,
    InvalidToken,
    mint,
)
from {{ cookiecutter.package_name }}.limits import ECHOED
from {{ cookiecutter.package_name }}.settings import Settings, get_settings

pytestmark = pytest.mark.anyio

SECRET = "a-test-secret-of-at-least-32-bytes"
OTHER_SECRET = "another-secret-of-at-least-32-bytes"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def claims(sub: str = "alice", expires_in: float = 60, **extra: Any) -> dict[str, Any]:
    return {"sub": sub, "exp": int(time.time() + expires_in), **extra}


def pem(key: PrivateKey) -> str:
    """The PEM text of `key`'s public half, as AUTH_PUBLIC_KEY holds it."""
    public = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    return public.decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(
    header: dict[str, Any], payload: dict[str, Any], sign: Callable[[bytes], bytes]
) -> str:
    """A JWT assembled without PyJWT, for tokens PyJWT refuses to make."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64url(sign(signing_input.encode()))}"


async def verified(settings: Settings, token: str | None) -> Identity:
    return await Authenticator(settings).authenticate(token)


def with_secret(**options: Any) -> Settings:
    return Settings(_env_file=None, auth_secret=SECRET, **options)


# --- Shared secrets (AUTH_SECRET, HS256) --------------------------------------


async def test_a_valid_hs256_token_proves_its_sub_expiry_and_patterns() -> None:
    token = mint(SECRET, "alice", ttl=60, channels=["chat:*", "news"], publish=["chat:*"])
    identity = await verified(with_secret(), token)
    assert identity.user == "alice"
    assert not identity.anonymous
    assert identity.expires_at is not None
    assert 0 < identity.expires_at - time.time() <= 60
    assert identity.channels == ("chat:*", "news")
    assert identity.publish == ("chat:*",)
    assert identity.claims["sub"] == "alice"


async def test_an_expired_token_is_refused() -> None:
    token = mint(SECRET, "alice", ttl=-10)
    with pytest.raises(InvalidToken, match="expired"):
        await verified(with_secret(), token)


async def test_leeway_accepts_a_token_that_expired_within_it() -> None:
    token = jwt.encode(claims(expires_in=-5), SECRET, algorithm="HS256")
    assert (await verified(with_secret(auth_leeway=30), token)).user == "alice"
    with pytest.raises(InvalidToken, match="expired"):
        await verified(with_secret(auth_leeway=1), token)


async def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = mint(OTHER_SECRET, "alice", ttl=60)
    with pytest.raises(InvalidToken, match="Signature verification failed"):
        await verified(with_secret(), token)


@pytest.mark.parametrize("token", ["", "not-a-token", "a.b.c"], ids=["empty", "no-dots", "junk"])
async def test_a_missing_or_malformed_token_is_refused(token: str) -> None:
    with pytest.raises(InvalidToken):
        await verified(with_secret(), token or None)


async def test_a_token_whose_exp_is_past_the_year_9999_is_refused() -> None:
    # Such an exp is no date: a timer for it overflowed (a 1011 instead of a 4001).
    token = jwt.encode({"sub": "alice", "exp": 10**309}, SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken, match="9999"):
        await verified(with_secret(), token)


async def test_a_token_without_sub_is_refused() -> None:
    token = jwt.encode({"exp": int(time.time() + 60)}, SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken, match="sub"):
        await verified(with_secret(), token)


async def test_a_token_without_exp_is_refused() -> None:
    token = jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken, match="exp"):
        await verified(with_secret(), token)


@pytest.mark.parametrize(
    "extra",
    [
        {"channels": "chat:*"},
        {"channels": ["chat:*", 7]},
        {"publish": {"chat:*": True}},
        {"publish": [None]},
    ],
    ids=["channels-a-string", "channels-with-a-number", "publish-an-object", "publish-with-null"],
)
async def test_patterns_that_are_not_a_list_of_strings_are_refused(extra: dict[str, Any]) -> None:
    token = jwt.encode(claims(**extra), SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken, match="must be a list of strings"):
        await verified(with_secret(), token)


async def test_issuer_and_audience_are_checked_when_configured() -> None:
    settings = with_secret(auth_issuer="https://id.example.com", auth_audience="realtime")
    good = claims(iss="https://id.example.com", aud="realtime")
    assert (await verified(settings, jwt.encode(good, SECRET, algorithm="HS256"))).user == "alice"
    for wrong, problem in [
        ({**good, "iss": "https://evil.example.com"}, r"(?i)issuer"),
        ({**good, "aud": "another-service"}, r"(?i)audience"),
        ({k: v for k, v in good.items() if k != "aud"}, "aud"),
        ({k: v for k, v in good.items() if k != "iss"}, "iss"),
    ]:
        with pytest.raises(InvalidToken, match=problem):
            await verified(settings, jwt.encode(wrong, SECRET, algorithm="HS256"))


async def test_a_token_meant_for_an_audience_is_refused_when_none_is_configured() -> None:
    # A token issued for another service must not open this one.
    token = jwt.encode(claims(aud="another-service"), SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken, match=r"(?i)audience"):
        await verified(with_secret(), token)


async def test_an_unsigned_alg_none_token_is_refused() -> None:
    token = hand_made({"alg": "none", "typ": "JWT"}, claims(), lambda _: b"")
    with pytest.raises(InvalidToken):
        await verified(with_secret(), token)


# --- Public keys (AUTH_PUBLIC_KEY) ------------------------------------------


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


KEY_KINDS: dict[str, tuple[str, Callable[[], PrivateKey]]] = {
    "RS256": ("RS256", lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    "ES256": ("ES256", lambda: ec.generate_private_key(ec.SECP256R1())),
    "EdDSA": ("EdDSA", ed25519.Ed25519PrivateKey.generate),
}


@pytest.mark.parametrize("kind", list(KEY_KINDS))
async def test_a_token_signed_with_the_private_key_is_accepted(kind: str) -> None:
    algorithm, generate = KEY_KINDS[kind]
    key = generate()
    token = jwt.encode(claims(channels=["chat:*"]), key, algorithm=algorithm)
    identity = await verified(Settings(_env_file=None, auth_public_key=pem(key)), token)
    assert identity.user == "alice"
    assert identity.channels == ("chat:*",)
    # Another key pair of the same kind is not enough.
    forged = jwt.encode(claims(), generate(), algorithm=algorithm)
    with pytest.raises(InvalidToken, match="Signature verification failed"):
        await verified(Settings(_env_file=None, auth_public_key=pem(key)), forged)


async def test_an_hs256_token_keyed_with_the_public_key_is_refused(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    # Algorithm confusion (RFC 8725 section 2.1): the public key is public, so
    # a verifier that let the token pick HS256 would take it as the secret.
    public_pem = pem(rsa_key)
    token = hand_made(
        {"alg": "HS256", "typ": "JWT"},
        claims(channels=["*"], publish=["*"]),
        lambda data: hmac.new(public_pem.encode(), data, hashlib.sha256).digest(),
    )
    with pytest.raises(InvalidToken, match="alg value is not allowed"):
        await verified(Settings(_env_file=None, auth_public_key=public_pem), token)


async def test_an_unsigned_token_is_refused_with_a_public_key(rsa_key: rsa.RSAPrivateKey) -> None:
    token = hand_made({"alg": "none", "typ": "JWT"}, claims(), lambda _: b"")
    with pytest.raises(InvalidToken):
        await verified(Settings(_env_file=None, auth_public_key=pem(rsa_key)), token)


# --- Key sets (AUTH_JWKS_URL) -----------------------------------------------


class KeySetServer:
    """JWK Sets served over HTTP on 127.0.0.1, one per path, in a thread."""

    def __init__(self) -> None:
        self.documents: dict[str, bytes] = {}
        documents = self.documents

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = documents.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the test output for the tests

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll: shutdown() waits up to one poll interval.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def offer(self, path: str, *keys: dict[str, Any]) -> str:
        """Serve `keys` as a JWK Set at `path`; its URL."""
        self.documents[path] = json.dumps({"keys": list(keys)}).encode()
        return self.url(path)

    def __enter__(self) -> KeySetServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture(scope="module")
def key_sets() -> Iterator[KeySetServer]:
    with KeySetServer() as server:
        yield server


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    assert isinstance(jwk, dict)
    return {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


async def test_a_token_whose_kid_is_in_the_key_set_is_accepted(
    key_sets: KeySetServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    url = key_sets.offer("/jwks.json", rsa_jwk(other, "old"), rsa_jwk(rsa_key, "current"))
    settings = Settings(_env_file=None, auth_jwks_url=url)
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "current"})
    assert (await verified(settings, token)).user == "alice"
    # Signed with a key of the set, but naming another one of its keys.
    misnamed = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "old"})
    with pytest.raises(InvalidToken, match="Signature verification failed"):
        await verified(settings, misnamed)
    unknown = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "retired"})
    with pytest.raises(InvalidToken, match="signing key"):
        await verified(settings, unknown)


async def test_a_refusal_quotes_at_most_a_short_prefix_of_what_the_token_holds(
    key_sets: KeySetServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    # PyJWT quotes an unknown `kid` whole; a 401 or an error frame would echo it.
    url = key_sets.offer("/echo.json", rsa_jwk(rsa_key, "current"))
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "k" * 10_000})
    with pytest.raises(InvalidToken, match="signing key") as refused:
        await verified(Settings(_env_file=None, auth_jwks_url=url), token)
    assert len(str(refused.value)) <= ECHOED + len("...")


async def test_a_key_set_offering_a_shared_secret_is_refused(key_sets: KeySetServer) -> None:
    # An `oct` key is a secret: whoever can read the key set could sign with it.
    shared = {"kty": "oct", "k": b64url(SECRET.encode()), "kid": "shared", "alg": "HS256"}
    url = key_sets.offer("/oct.json", shared)
    token = jwt.encode(claims(), SECRET, algorithm="HS256", headers={"kid": "shared"})
    with pytest.raises(InvalidToken, match="shared secret"):
        await verified(Settings(_env_file=None, auth_jwks_url=url), token)


async def test_an_hs256_token_is_refused_by_a_key_set_of_public_keys(
    key_sets: KeySetServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    url = key_sets.offer("/confusion.json", rsa_jwk(rsa_key, "current"))
    public_pem = pem(rsa_key)
    token = hand_made(
        {"alg": "HS256", "typ": "JWT", "kid": "current"},
        claims(),
        lambda data: hmac.new(public_pem.encode(), data, hashlib.sha256).digest(),
    )
    with pytest.raises(InvalidToken, match="alg value is not allowed"):
        await verified(Settings(_env_file=None, auth_jwks_url=url), token)


async def test_an_unreachable_key_set_refuses_the_token() -> None:
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(_env_file=None, auth_jwks_url=f"http://127.0.0.1:{port}/jwks.json")
    token = jwt.encode(claims(), SECRET, algorithm="HS256", headers={"kid": "any"})
    with pytest.raises(InvalidToken, match="could not be fetched"):
        await verified(settings, token)


# --- Authentication off -------------------------------------------------------


@pytest.mark.parametrize("token", [None, "anything at all"], ids=["no-token", "junk-token"])
async def test_without_a_key_every_connection_is_anonymous(token: str | None) -> None:
    authenticator = Authenticator(Settings(_env_file=None))
    assert not authenticator.enabled
    assert await authenticator.authenticate(token) == ANONYMOUS


async def test_with_a_key_a_token_is_required() -> None:
    authenticator = Authenticator(with_secret())
    assert authenticator.enabled
    with pytest.raises(InvalidToken, match="required"):
        await authenticator.authenticate(None)


# --- Permissions (permissions.can) --------------------------------------------


def holder(channels: tuple[str, ...] = (), publish: tuple[str, ...] = ()) -> Identity:
    return Identity(
        user="alice", expires_at=int(time.time()) + 60, channels=channels, publish=publish
    )


@pytest.mark.parametrize(
    ("pattern", "channel", "allowed"),
    [
        ("chat:42", "chat:42", True),
        ("chat:42", "chat:420", False),
        ("chat:42", "chat:4", False),
        ("chat:*", "chat:42", True),
        ("chat:*", "chat:", True),
        ("chat:*", "chat", False),
        ("chat:*", "chatroom", False),
        ("chat*", "chatroom", True),
        ("*", "anything.at-all:1", True),
        ("*:typing", "chat:typing", False),
        ("chat:*:typing", "chat:1:typing", False),
    ],
)
async def test_a_pattern_is_an_exact_name_or_a_prefix_before_a_final_star(
    pattern: str, channel: str, allowed: bool
) -> None:
    identity = holder(channels=(pattern,), publish=(pattern,))
    assert await permissions.can(identity, "subscribe", channel) is allowed
    assert await permissions.can(identity, "publish", channel) is allowed


async def test_channels_grant_subscribing_and_publish_grants_publishing() -> None:
    identity = holder(channels=("news", "chat:*"), publish=("chat:*",))
    assert await permissions.can(identity, "subscribe", "news")
    assert not await permissions.can(identity, "publish", "news")
    assert await permissions.can(identity, "publish", "chat:1")
    assert not await permissions.can(identity, "subscribe", "sports")
    assert not await permissions.can(holder(publish=("news",)), "subscribe", "news")


async def test_a_user_may_always_subscribe_to_its_own_channel_but_not_publish_to_it() -> None:
    nobody = holder()
    assert await permissions.can(nobody, "subscribe", "user:alice")
    assert not await permissions.can(nobody, "subscribe", "user:bob")
    assert not await permissions.can(nobody, "subscribe", "user:alice2")
    assert not await permissions.can(nobody, "publish", "user:alice")
    assert await permissions.can(holder(publish=("user:alice",)), "publish", "user:alice")


@pytest.mark.parametrize("action", ["subscribe", "publish"])
async def test_while_authentication_is_off_anyone_may_do_anything(
    action: permissions.Action,
) -> None:
    assert await permissions.can(ANONYMOUS, action, "user:alice")
    assert await permissions.can(ANONYMOUS, action, "anything")


# --- The token command ------------------------------------------------------


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """The process environment for `main`, without a key or a developer's `.env`."""
    monkeypatch.chdir(tmp_path)
    for name in ("ENVIRONMENT", "AUTH_SECRET", "AUTH_PUBLIC_KEY", "AUTH_JWKS_URL"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


async def test_the_token_command_prints_a_token_the_service_accepts(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    environment.setenv("AUTH_SECRET", SECRET)
    argv = ["token", "--sub", "alice", "--channels", "chat:*,news", "--publish", "chat:*"]
    main([*argv, "--ttl", "60"])
    token = capsys.readouterr().out.strip()
    identity = await verified(with_secret(), token)
    assert identity.user == "alice"
    assert identity.channels == ("chat:*", "news")
    assert identity.publish == ("chat:*",)
    assert identity.expires_at is not None
    assert 55 <= identity.expires_at - time.time() <= 60


def test_the_token_command_refuses_in_one_line_without_a_secret(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["token", "--sub", "alice"])
    message = exited.value.code
    # A string code: Python prints it to stderr and exits with status 1.
    assert isinstance(message, str)
    assert len(message.splitlines()) == 1
    assert "AUTH_SECRET" in message
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("ttl", ["0", "-5", "inf", "nan", "1e12"])
def test_the_token_command_refuses_a_ttl_that_is_no_lifetime_in_one_line(
    environment: pytest.MonkeyPatch, ttl: str
) -> None:
    environment.setenv("AUTH_SECRET", SECRET)
    with pytest.raises(SystemExit) as exited:
        main(["token", "--sub", "alice", "--ttl", ttl])
    message = exited.value.code
    assert isinstance(message, str)
    assert len(message.splitlines()) == 1
    assert "--ttl" in message
