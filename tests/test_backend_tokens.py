from __future__ import annotations

import base64
import json
import logging
from datetime import datetime, timezone
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

import vault_audit.backend as backend
from vault_audit.backend.tokens import (
    CHECKS,
    TokenPolicy,
    TokenRejected,
    VerificationKeys,
    decode_unverified,
    generate_es256_keypair,
    public_jwk,
    sign_access_token,
    signature_status,
    verify_access_token,
)
from vault_audit.errors import UsageError
from vault_audit.settings import Settings

NOW = 1_750_000_000
SECRET = b"super-secret-jwt-token-with-at-least-32-characters-long"


def _claims(**overrides: Any) -> dict[str, Any]:
    claims = {
        "iss": "https://project.supabase.co/auth/v1",
        "sub": "9f1c1a52-7c1e-4a53-9a4b-5f3c2d1e0a11",
        "aud": "authenticated",
        "iat": NOW - 600,
        "exp": NOW + 3000,
        "email": "ana@example.com",
        "phone": "",
        "role": "authenticated",
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": NOW - 600}],
        "session_id": "3b0d8a57-2d0e-4a3f-8f57-4b1f0e2c9d10",
        "is_anonymous": False,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value).encode())


def _with_payload(token: str, payload: dict[str, Any]) -> str:
    header, _, signature = token.split(".")
    return f"{header}.{_segment(payload)}.{signature}"


def _with_header(token: str, header: dict[str, Any]) -> str:
    _, payload, signature = token.split(".")
    return f"{_segment(header)}.{payload}.{signature}"


def _tamper_signature(token: str) -> str:
    header, payload, signature = token.split(".")
    flipped = "A" if signature[4] != "A" else "B"
    return f"{header}.{payload}.{signature[:4]}{flipped}{signature[5:]}"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    # RSA generation is slow: once per module.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def signers(rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey) -> dict[str, Any]:
    """Per algorithm: the signing key, a key set that verifies it, and one that should not."""
    ec_key, ec_jwks = generate_es256_keypair("es-1", seed=1)
    other_ec_key, other_ec_jwks = generate_es256_keypair("es-1", seed=2)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    other_ed_key = ed25519.Ed25519PrivateKey.generate()
    return {
        "HS256": (
            SECRET,
            None,
            VerificationKeys(secret=SECRET),
            VerificationKeys(secret=b"x" * 40),
        ),
        "RS256": (
            rsa_key,
            "rs-1",
            VerificationKeys(jwks={"keys": [public_jwk(rsa_key, kid="rs-1")]}),
            VerificationKeys(jwks={"keys": [public_jwk(other_rsa_key, kid="rs-1")]}),
        ),
        "ES256": (
            ec_key,
            "es-1",
            VerificationKeys(jwks=ec_jwks),
            VerificationKeys(jwks=other_ec_jwks),
        ),
        "EdDSA": (
            ed_key,
            "ed-1",
            VerificationKeys(jwks={"keys": [public_jwk(ed_key, kid="ed-1")]}),
            VerificationKeys(jwks={"keys": [public_jwk(other_ed_key, kid="ed-1")]}),
        ),
    }


ALGORITHMS = ("HS256", "RS256", "ES256", "EdDSA")


# --- signature_status ------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_token_signed_by_a_given_key_is_valid(algorithm: str, signers: dict[str, Any]) -> None:
    key, kid, keys, _ = signers[algorithm]
    token = sign_access_token(_claims(), key, kid=kid)

    assert decode_unverified(token)[0]["alg"] == algorithm
    assert signature_status(token, keys) == "valid"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_token_signed_by_another_key_is_invalid(algorithm: str, signers: dict[str, Any]) -> None:
    key, kid, _, wrong_keys = signers[algorithm]
    token = sign_access_token(_claims(), key, kid=kid)

    assert signature_status(token, wrong_keys) == "invalid"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_tampered_payload_or_signature_is_invalid(
    algorithm: str, signers: dict[str, Any]
) -> None:
    key, kid, keys, _ = signers[algorithm]
    token = sign_access_token(_claims(), key, kid=kid)

    promoted = _with_payload(token, _claims(role="service_role"))
    assert signature_status(promoted, keys) == "invalid"
    assert signature_status(_tamper_signature(token), keys) == "invalid"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_without_keys_every_signed_token_is_unverified(
    algorithm: str, signers: dict[str, Any]
) -> None:
    key, kid, _, _ = signers[algorithm]
    token = sign_access_token(_claims(), key, kid=kid)

    assert signature_status(token, VerificationKeys()) == "unverified"


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_the_secret_verifies_every_hs_algorithm(algorithm: str) -> None:
    token = sign_access_token(_claims(), SECRET, algorithm=algorithm)

    assert signature_status(token, VerificationKeys(secret=SECRET)) == "valid"


@pytest.mark.parametrize("algorithm", ["RS384", "PS256", "PS512"])
def test_an_rsa_key_without_declared_alg_verifies_every_rsa_algorithm(
    algorithm: str, rsa_key: rsa.RSAPrivateKey
) -> None:
    jwk = public_jwk(rsa_key, kid="rs-1")
    del jwk["alg"]
    token = sign_access_token(_claims(), rsa_key, algorithm=algorithm, kid="rs-1")

    assert signature_status(token, VerificationKeys(jwks={"keys": [jwk]})) == "valid"


def test_a_key_that_declares_its_alg_does_not_verify_another(rsa_key: rsa.RSAPrivateKey) -> None:
    keys = VerificationKeys(jwks={"keys": [public_jwk(rsa_key, kid="rs-1", algorithm="RS256")]})
    token = sign_access_token(_claims(), rsa_key, algorithm="RS512", kid="rs-1")

    assert signature_status(token, keys) == "invalid"


@pytest.mark.parametrize("with_keys", [True, False])
def test_alg_none_is_always_invalid(with_keys: bool) -> None:
    unsigned = f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(_claims())}."
    shouting = f"{_segment({'alg': 'NONE'})}.{_segment(_claims())}."
    keys = VerificationKeys(secret=SECRET) if with_keys else VerificationKeys()

    assert decode_unverified(unsigned)[1]["sub"] == _claims()["sub"]
    assert signature_status(unsigned, keys) == "invalid"
    assert signature_status(shouting, keys) == "invalid"


@pytest.mark.parametrize("alg", ["HS1024", "ES521", "RSA-OAEP", None, 256, ["HS256"]])
def test_an_unknown_algorithm_is_invalid_even_without_keys(alg: Any) -> None:
    token = _with_header(sign_access_token(_claims(), SECRET), {"alg": alg, "typ": "JWT"})

    assert signature_status(token, VerificationKeys(secret=SECRET)) == "invalid"
    assert signature_status(token, VerificationKeys()) == "invalid"


def test_a_kid_missing_from_the_jwks_is_unverified(signers: dict[str, Any]) -> None:
    ec_key, _, keys, _ = signers["ES256"]
    token = sign_access_token(_claims(), ec_key, kid="rotated-away")

    assert signature_status(token, keys) == "unverified"


def test_a_kid_missing_from_the_jwks_still_checks_the_secret_for_hs256(
    signers: dict[str, Any],
) -> None:
    ec_key, _, ec_keys, _ = signers["ES256"]
    keys = VerificationKeys(secret=SECRET, jwks={"keys": [public_jwk(ec_key, kid="es-1")]})

    assert signature_status(sign_access_token(_claims(), SECRET, kid="legacy"), keys) == "valid"
    forged = sign_access_token(_claims(), b"y" * 40, kid="legacy")
    assert signature_status(forged, keys) == "invalid"
    assert signature_status(forged, ec_keys) == "unverified"


def test_a_token_without_kid_is_checked_against_the_keys_whose_type_fits(
    signers: dict[str, Any], rsa_key: rsa.RSAPrivateKey
) -> None:
    ec_key = signers["ES256"][0]
    mixed = VerificationKeys(
        jwks={"keys": [public_jwk(rsa_key, kid="rs-1"), public_jwk(ec_key, kid="es-1")]}
    )
    rsa_only = VerificationKeys(jwks={"keys": [public_jwk(rsa_key, kid="rs-1")]})
    token = sign_access_token(_claims(), ec_key)

    assert "kid" not in decode_unverified(token)[0]
    assert signature_status(token, mixed) == "valid"
    assert signature_status(token, rsa_only) == "unverified"
    assert signature_status(_tamper_signature(token), mixed) == "invalid"


def test_an_ec_key_on_another_curve_does_not_fit() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    p256_keys = VerificationKeys(jwks=generate_es256_keypair("es-1", seed=1)[1])
    token = sign_access_token(_claims(), p384)

    assert decode_unverified(token)[0]["alg"] == "ES384"
    assert signature_status(token, p256_keys) == "unverified"
    p384_keys = VerificationKeys(jwks={"keys": [public_jwk(p384, kid="p384")]})
    assert signature_status(token, p384_keys) == "valid"


def test_an_hs256_token_naming_an_rsa_kid_is_invalid(rsa_key: rsa.RSAPrivateKey) -> None:
    # The algorithm-confusion attack: the RSA public key used as an HMAC secret.
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": "rs-1"}
    honest = sign_access_token(_claims(), SECRET, kid="rs-1")
    forged = _with_header(honest, header)
    keys = VerificationKeys(jwks={"keys": [public_jwk(rsa_key, kid="rs-1")]})

    assert pem.startswith(b"-----BEGIN PUBLIC KEY")
    assert signature_status(forged, keys) == "invalid"


def test_a_malformed_token_is_invalid_with_keys_and_unverified_without() -> None:
    for bad in ("not-a-jwt", "a.b", "@@@.e30.", f"{_segment({'alg': 'HS256'})}.e30.!!"):
        assert signature_status(bad, VerificationKeys(secret=SECRET)) == "invalid"
        assert signature_status(bad, VerificationKeys()) == "unverified"


def test_a_critical_header_extension_makes_a_token_invalid() -> None:
    token = sign_access_token(_claims(), SECRET)
    marked = _with_header(token, {"alg": "HS256", "typ": "JWT", "crit": ["exp"]})

    assert signature_status(marked, VerificationKeys(secret=SECRET)) == "invalid"
    assert signature_status(marked, VerificationKeys()) == "unverified"


def test_a_signature_spelled_non_canonically_is_read_but_invalid() -> None:
    token = sign_access_token(_claims(), SECRET)
    header, payload, signature = token.split(".")
    # HS256 signatures are 32 bytes: 43 characters whose last one carries 2 spare bits.
    spare = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = spare[spare.index(signature[-1]) ^ 1]
    respelled = f"{header}.{payload}.{signature[:-1]}{last}"

    assert respelled != token
    assert decode_unverified(respelled) == decode_unverified(token)
    assert signature_status(respelled, VerificationKeys(secret=SECRET)) == "invalid"


def test_signature_status_ignores_expiry_and_audience() -> None:
    token = sign_access_token(_claims(exp=NOW - 10_000, iat=NOW - 20_000, aud="other"), SECRET)

    assert signature_status(token, VerificationKeys(secret=SECRET)) == "valid"


def test_a_short_secret_still_verifies_and_is_logged_once_without_material(
    caplog: pytest.LogCaptureFixture,
) -> None:
    keys = VerificationKeys(secret=b"short-secret")
    tokens = [sign_access_token(_claims(iat=NOW + i), b"short-secret") for i in range(3)]

    with caplog.at_level(logging.WARNING):
        assert [signature_status(token, keys) for token in tokens] == ["valid"] * 3

    assert len(caplog.records) == 1
    assert "short-secret" not in caplog.text


# --- VerificationKeys ------------------------------------------------------------------


def test_the_secret_comes_from_the_named_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VAULT_JWT_SECRET", SECRET.decode())

    keys = VerificationKeys.from_env("VAULT_JWT_SECRET")

    assert signature_status(sign_access_token(_claims(), SECRET), keys) == "valid"
    assert keys == VerificationKeys(secret=SECRET)


@pytest.mark.parametrize("value", [None, ""])
def test_a_missing_or_empty_secret_variable_is_a_usage_error_naming_it(
    value: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VAULT_JWT_SECRET", raising=False)
    if value is not None:
        monkeypatch.setenv("VAULT_JWT_SECRET", value)

    with pytest.raises(UsageError, match="VAULT_JWT_SECRET"):
        VerificationKeys.from_env("VAULT_JWT_SECRET")


def test_a_secret_that_looks_like_a_key_file_is_a_usage_error(rsa_key: rsa.RSAPrivateKey) -> None:
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for secret in (pem, b'{"kty": "oct", "k": "abc"}'):
        with pytest.raises(UsageError, match="not an HMAC secret") as raised:
            VerificationKeys(secret=secret)
        middle = len(secret) // 2
        assert secret.decode()[middle : middle + 10] not in str(raised.value)


def test_keys_never_show_their_material(rsa_key: rsa.RSAPrivateKey) -> None:
    jwk = public_jwk(rsa_key, kid="rs-1")
    keys = VerificationKeys(secret=SECRET, jwks={"keys": [jwk]})

    shown = repr(keys) + str(keys)
    assert SECRET.decode() not in shown
    assert jwk["n"][:20] not in shown
    assert "jwks_keys=1" in shown
    assert len(keys.fingerprint) == 64
    assert SECRET.decode() not in keys.fingerprint


def test_the_fingerprint_follows_the_key_material_not_its_order(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    ec_jwk = generate_es256_keypair("es-1", seed=1)[1]["keys"][0]
    rsa_jwk = public_jwk(rsa_key, kid="rs-1")

    one = VerificationKeys(jwks={"keys": [ec_jwk, rsa_jwk]})
    same = VerificationKeys(jwks={"keys": [rsa_jwk, ec_jwk]})
    other = VerificationKeys(jwks={"keys": [generate_es256_keypair("es-1", seed=2)[1]["keys"][0]]})

    assert one.fingerprint == same.fingerprint
    assert one.fingerprint != other.fingerprint
    assert (
        VerificationKeys(secret=b"a" * 32).fingerprint
        != VerificationKeys(secret=b"b" * 32).fingerprint
    )
    assert VerificationKeys().is_empty and not one.is_empty


def test_private_members_of_a_jwks_are_dropped(rsa_key: rsa.RSAPrivateKey) -> None:
    from jwt.algorithms import RSAAlgorithm

    private = dict(RSAAlgorithm.to_jwk(rsa_key, as_dict=True), kid="rs-1", alg="RS256")
    public = public_jwk(rsa_key, kid="rs-1")
    public.pop("use")

    from_private = VerificationKeys(jwks={"keys": [private]})
    assert from_private.fingerprint == VerificationKeys(jwks={"keys": [public]}).fingerprint
    token = sign_access_token(_claims(), rsa_key, kid="rs-1")
    assert signature_status(token, from_private) == "valid"


def test_a_jwks_file_is_read(tmp_path: Any, signers: dict[str, Any]) -> None:
    ec_key = signers["ES256"][0]
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(generate_es256_keypair("es-1", seed=1)[1]))

    keys = VerificationKeys.from_jwks_file(path)

    assert signature_status(sign_access_token(_claims(), ec_key, kid="es-1"), keys) == "valid"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read JWKS file"),
        ("{not json", "is not JSON"),
        ("[]", "not a JSON object"),
        ('{"keys": "x"}', "no 'keys' list"),
        ('{"keys": []}', "no key that can check"),
        (
            '{"keys": [{"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA", "kid": "k"}]}',
            "cannot be read",
        ),
        ('{"keys": [{"kty": "RSA", "alg": "ES256", "n": "AQAB", "e": "AQAB"}]}', "does not fit"),
        (
            '{"keys": [{"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}]}',
            "no key that can check",
        ),
    ],
)
def test_an_unusable_jwks_file_is_a_usage_error(
    tmp_path: Any, content: str | None, message: str
) -> None:
    path = tmp_path / "jwks.json"
    if content is not None:
        path.write_text(content)

    with pytest.raises(UsageError, match=message) as raised:
        VerificationKeys.from_jwks_file(path)
    assert str(path) in str(raised.value)


def test_an_oct_jwk_with_broken_material_does_not_leak_it() -> None:
    with pytest.raises(UsageError) as raised:
        VerificationKeys(jwks={"keys": [{"kty": "oct", "k": 12345678, "kid": "h"}]})

    assert "12345678" not in str(raised.value)


def test_keys_come_from_settings(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ec_key, jwks = generate_es256_keypair("es-1", seed=1)
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    monkeypatch.setenv("SUPABASE_JWT_SECRET", SECRET.decode())

    keys = VerificationKeys.from_settings(
        Settings(jwks=str(path), jwt_secret_env="SUPABASE_JWT_SECRET")
    )

    assert signature_status(sign_access_token(_claims(), ec_key, kid="es-1"), keys) == "valid"
    assert signature_status(sign_access_token(_claims(), SECRET), keys) == "valid"
    assert VerificationKeys.from_settings(Settings()).is_empty


# --- verify_access_token ---------------------------------------------------------------


def _rejection(
    token: str, keys: VerificationKeys, policy: TokenPolicy | None = None
) -> TokenRejected:
    with pytest.raises(TokenRejected) as raised:
        verify_access_token(token, keys, policy, now=NOW)
    rejected = raised.value
    assert rejected.check in CHECKS
    for part in token.split("."):
        if len(part) > 8:
            assert part not in rejected.message
    return rejected


def test_a_good_token_is_accepted_with_its_claims() -> None:
    token = sign_access_token(_claims(), SECRET)

    claims = verify_access_token(token, VerificationKeys(secret=SECRET), now=NOW)

    assert claims["session_id"] == _claims()["session_id"]
    moment = datetime.fromtimestamp(NOW, tz=timezone.utc)
    assert verify_access_token(token, VerificationKeys(secret=SECRET), now=moment) == claims


@pytest.mark.parametrize(
    ("token", "check"),
    [
        ("not-a-jwt", "malformed"),
        (f"{_segment({'alg': 'HS256'})}.{_b64(b'[1, 2]')}.c2ln", "malformed"),
        (f"{_segment({'alg': 'none'})}.{_segment(_claims())}.", "algorithm"),
        (f"{_segment({'alg': 'HS999'})}.{_segment(_claims())}.c2ln", "algorithm"),
    ],
)
def test_a_token_that_cannot_be_checked_is_rejected(token: str, check: str) -> None:
    assert _rejection(token, VerificationKeys(secret=SECRET)).check == check


def test_a_token_whose_key_is_unknown_is_rejected(signers: dict[str, Any]) -> None:
    ec_key, _, keys, _ = signers["ES256"]

    rejected = _rejection(sign_access_token(_claims(), ec_key, kid="gone"), keys)
    assert rejected.check == "unknown_key"
    assert "'gone'" in rejected.message
    assert (
        _rejection(sign_access_token(_claims(), SECRET), VerificationKeys()).check == "unknown_key"
    )


def test_a_bad_signature_is_rejected() -> None:
    token = sign_access_token(_claims(), SECRET)

    assert (
        _rejection(_tamper_signature(token), VerificationKeys(secret=SECRET)).check == "signature"
    )
    assert _rejection(token, VerificationKeys(secret=b"z" * 40)).check == "signature"


def test_a_token_expires_at_exp_plus_leeway() -> None:
    keys = VerificationKeys(secret=SECRET)
    at_exp = sign_access_token(_claims(exp=NOW, iat=NOW - 3600), SECRET)
    one_left = sign_access_token(_claims(exp=NOW + 1, iat=NOW - 3599), SECRET)

    rejected = _rejection(at_exp, keys)
    assert rejected.check == "expired"
    assert "expired at 2025-06-15T15:06:40Z" in rejected.message
    assert verify_access_token(one_left, keys, now=NOW)["exp"] == NOW + 1
    assert verify_access_token(at_exp, keys, TokenPolicy(leeway=1), now=NOW)["exp"] == NOW


def test_a_token_issued_in_the_future_is_not_yet_valid() -> None:
    keys = VerificationKeys(secret=SECRET)
    future = sign_access_token(_claims(iat=NOW + 30, exp=NOW + 3630), SECRET)
    nbf = sign_access_token(_claims(nbf=NOW + 30), SECRET)

    assert _rejection(future, keys).check == "not_yet_valid"
    assert _rejection(nbf, keys).check == "not_yet_valid"
    assert verify_access_token(future, keys, TokenPolicy(leeway=30), now=NOW)["iat"] == NOW + 30


def test_a_token_living_longer_than_policy_is_rejected() -> None:
    keys = VerificationKeys(secret=SECRET)
    exactly = sign_access_token(_claims(iat=NOW - 10, exp=NOW + 3590), SECRET)
    longer = sign_access_token(_claims(iat=NOW - 10, exp=NOW + 3591), SECRET)

    assert verify_access_token(exactly, keys, now=NOW)["exp"] == NOW + 3590
    rejected = _rejection(longer, keys)
    assert rejected.check == "lifetime"
    assert "3601 s" in rejected.message


@pytest.mark.parametrize("aud", ["anon", ["other", "service"], None])
def test_a_token_for_another_audience_is_rejected(aud: Any) -> None:
    token = sign_access_token(_claims(aud=aud), SECRET)

    assert _rejection(token, VerificationKeys(secret=SECRET)).check == "audience"


def test_an_audience_list_that_includes_ours_is_accepted() -> None:
    token = sign_access_token(_claims(aud=["authenticated", "other"]), SECRET)

    assert (
        verify_access_token(token, VerificationKeys(secret=SECRET), now=NOW)["aud"][0]
        == "authenticated"
    )
    anything = TokenPolicy(audience=None)
    assert verify_access_token(
        sign_access_token(_claims(aud="x"), SECRET),
        VerificationKeys(secret=SECRET),
        anything,
        now=NOW,
    )


def test_a_token_from_another_issuer_is_rejected_when_an_issuer_is_set() -> None:
    keys = VerificationKeys(secret=SECRET)
    token = sign_access_token(_claims(iss="https://evil.example/auth/v1"), SECRET)
    policy = TokenPolicy(issuer="https://project.supabase.co/auth/v1")

    assert _rejection(token, keys, policy).check == "issuer"
    assert verify_access_token(token, keys, now=NOW)["iss"].startswith("https://evil")
    assert verify_access_token(sign_access_token(_claims(), SECRET), keys, policy, now=NOW)


@pytest.mark.parametrize("claim", ["sub", "session_id", "iat", "exp", "role"])
def test_a_token_lacking_a_required_claim_is_rejected(claim: str) -> None:
    claims = _claims()
    del claims[claim]

    rejected = _rejection(sign_access_token(claims, SECRET), VerificationKeys(secret=SECRET))
    assert rejected.check == "missing_claim"
    assert repr(claim) in rejected.message


def test_an_anon_key_without_sub_is_rejected_by_default_and_accepted_without_requirements() -> None:
    anon = {
        "iss": "supabase",
        "role": "anon",
        "iat": NOW - 10,
        "exp": NOW + 3000,
        "aud": "authenticated",
    }
    token = sign_access_token(anon, SECRET)
    lenient = TokenPolicy(required_claims=())

    assert _rejection(token, VerificationKeys(secret=SECRET)).check == "missing_claim"
    assert (
        verify_access_token(token, VerificationKeys(secret=SECRET), lenient, now=NOW)["role"]
        == "anon"
    )


def test_a_non_numeric_exp_is_malformed() -> None:
    token = sign_access_token(_claims(exp="tomorrow"), SECRET)

    assert _rejection(token, VerificationKeys(secret=SECRET)).check == "malformed"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_passes_full_verification(algorithm: str, signers: dict[str, Any]) -> None:
    key, kid, keys, wrong = signers[algorithm]
    token = sign_access_token(_claims(), key, kid=kid)

    assert verify_access_token(token, keys, now=NOW)["sub"] == _claims()["sub"]
    assert _rejection(token, wrong).check == "signature"


# --- decoding, signing, policy ---------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b.c.d",
        f"{_b64(b'not json')}.{_segment(_claims())}.",
        f"{_segment({'alg': 'HS256'})}.{_b64(json.dumps('a string').encode())}.",
        f"{_segment({'alg': 'HS256'})}.{_segment(_claims())}.***",
    ],
)
def test_a_string_that_is_not_a_jws_object_is_malformed(token: str) -> None:
    with pytest.raises(TokenRejected) as raised:
        decode_unverified(token)

    assert raised.value.check == "malformed"


def test_decode_unverified_reads_an_unsigned_header_and_payload() -> None:
    token = sign_access_token(_claims(), SECRET, kid="legacy")

    header, payload = decode_unverified(token)

    assert header == {"alg": "HS256", "typ": "JWT", "kid": "legacy"}
    assert payload == _claims()


def test_seeded_es256_keys_and_their_tokens_are_reproducible() -> None:
    first_key, first_jwks = generate_es256_keypair("es-1", seed=42)
    second_key, second_jwks = generate_es256_keypair("es-1", seed=42)

    assert first_jwks == second_jwks
    assert first_jwks != generate_es256_keypair("es-2", seed=42)[1]
    assert first_jwks["keys"][0]["kid"] == "es-1" and "d" not in first_jwks["keys"][0]
    token = sign_access_token(_claims(), first_key, kid="es-1")
    assert token == sign_access_token(_claims(), second_key, kid="es-1")
    assert generate_es256_keypair("es-1")[1] != first_jwks


def test_the_policy_follows_the_settings() -> None:
    settings = Settings(leeway=5, max_token_lifetime=7200, issuer="https://x/auth/v1")

    policy = TokenPolicy.from_settings(settings)

    assert policy == TokenPolicy(
        audience="authenticated", issuer="https://x/auth/v1", leeway=5, max_lifetime=7200
    )
    assert TokenPolicy.from_settings(Settings(audience="api")).audience == "api"


def test_the_backend_package_exports_its_public_api() -> None:
    assert sorted(backend.__all__) == [
        "AuthorizationState",
        "Decision",
        "DeviceSession",
        "DeviceSessionRegistry",
        "RegistryError",
        "TokenPolicy",
        "TokenRejected",
        "UnknownDeviceSession",
        "VaultEvent",
        "VerificationKeys",
        "decode_unverified",
        "generate_es256_keypair",
        "public_jwk",
        "seeded_id_factory",
        "sign_access_token",
        "signature_status",
        "verify_access_token",
    ]
    assert all(hasattr(backend, name) for name in backend.__all__)
