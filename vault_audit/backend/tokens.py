"""Supabase access tokens as Vault's backend sees them.

Two questions, kept apart:

- ``signature_status``: does the signature verify with the keys the investigator
  gave? Only the signature; expiry and audience are the verdicts' business. Called
  once per distinct token during ingestion, so parsed keys are cached.
- ``verify_access_token``: the full check Vault does per request (signature,
  audience, issuer, expiry with leeway, issue time, lifetime, required claims).

pyjwt (with cryptography) is the only signature verifier in vault-audit. The code
here reads the compact form, decides which keys to try, and hands the signing input,
the signature and the key (parsed once by pyjwt, then cached) to pyjwt's algorithm
objects; it never computes or compares a signature itself.

A raw token is never logged or put into an error message; key material never
appears in a repr, a log line or a message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import os
import re
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import Algorithm, ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from jwt.api_jwk import PyJWK
from jwt.api_jws import PyJWS
from jwt.exceptions import PyJWTError
from jwt.utils import der_to_raw_signature
from jwt.warnings import InsecureKeyLengthWarning

from vault_audit.errors import UsageError

if TYPE_CHECKING:
    from vault_audit.settings import Settings

logger = logging.getLogger(__name__)

SignatureStatus = Literal["valid", "invalid", "unverified"]

# The algorithms a JWKS key or the JWT secret can verify, and the key type each needs.
_KEY_TYPE_OF_ALGORITHM = {
    "HS256": "oct",
    "HS384": "oct",
    "HS512": "oct",
    "RS256": "RSA",
    "RS384": "RSA",
    "RS512": "RSA",
    "PS256": "RSA",
    "PS384": "RSA",
    "PS512": "RSA",
    "ES256": "EC",
    "ES384": "EC",
    "ES512": "EC",
    "ES256K": "EC",
    "EdDSA": "OKP",
}
SUPPORTED_ALGORITHMS = frozenset(_KEY_TYPE_OF_ALGORITHM)
_CURVE_OF_ALGORITHM = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521", "ES256K": "secp256k1"}
_EDDSA_CURVES = frozenset({"Ed25519", "Ed448"})

# JWK members that hold private material; verification needs only the public part.
_PRIVATE_MEMBERS = {
    "RSA": ("d", "p", "q", "dp", "dq", "qi", "oth"),
    "EC": ("d",),
    "OKP": ("d",),
    "oct": (),
}

_FINGERPRINT_MEMBERS = ("kty", "kid", "alg", "crv", "n", "e", "x", "y", "k")

CHECKS = (
    "malformed",
    "algorithm",
    "unknown_key",
    "signature",
    "expired",
    "not_yet_valid",
    "audience",
    "issuer",
    "lifetime",
    "missing_claim",
)

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")


class TokenRejected(Exception):
    """Vault's backend would refuse this token; ``check`` names the check that failed.

    ``check`` is one of ``CHECKS``; ``message`` says in plain words what failed and
    never contains the token.
    """

    def __init__(self, check: str, message: str) -> None:
        super().__init__(message)
        self.check = check
        self.message = message


@dataclass(frozen=True)
class TokenPolicy:
    """What Vault's backend demands of an access token beyond its signature."""

    audience: str | None = "authenticated"
    issuer: str | None = None
    leeway: int = 0
    max_lifetime: int = 3600
    required_claims: tuple[str, ...] = ("sub", "session_id", "iat", "exp", "role")

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenPolicy:
        """The policy of the ``audience``, ``issuer``, ``leeway`` and lifetime settings."""
        return cls(
            audience=settings.audience or "authenticated",
            issuer=settings.issuer,
            leeway=settings.leeway,
            max_lifetime=settings.max_token_lifetime,
        )


class _Key:
    """One verification key (a JWKS entry or the JWT secret) and its pyjwt forms.

    A ``PyJWK`` binds one algorithm, so an RSA key that verifies RS256 and PS256
    gets one ``PyJWK`` per algorithm, built on first use and kept with its prepared
    key: parsing a key costs far more than checking one signature.
    """

    __slots__ = ("jwk", "kty", "kid", "crv", "declared_alg", "_verifiers")

    def __init__(self, jwk: dict[str, Any]) -> None:
        self.jwk = jwk
        self.kty: str = jwk["kty"]
        self.kid: str | None = jwk.get("kid")
        self.crv: str | None = jwk.get("crv")
        self.declared_alg: str | None = jwk.get("alg")
        self._verifiers: dict[str, tuple[Algorithm, Any]] = {}

    # Pickled (for a worker process) as its JWK: the prepared keys are built again there.
    def __getstate__(self) -> dict[str, Any]:
        return self.jwk

    def __setstate__(self, jwk: dict[str, Any]) -> None:
        self.__init__(jwk)  # type: ignore[misc]

    def fits(self, algorithm: str) -> bool:
        """Whether this key can verify a signature made with ``algorithm``."""
        if self.declared_alg is not None and self.declared_alg != algorithm:
            return False
        if _KEY_TYPE_OF_ALGORITHM.get(algorithm) != self.kty:
            return False
        if self.kty == "EC":
            return self.crv == _CURVE_OF_ALGORITHM[algorithm]
        if self.kty == "OKP":
            return self.crv in _EDDSA_CURVES
        return True

    def verifier(self, algorithm: str) -> tuple[Algorithm, Any]:
        """pyjwt's algorithm object and the prepared key, built once per algorithm."""
        cached = self._verifiers.get(algorithm)
        if cached is None:
            pyjwk = PyJWK(self.jwk, algorithm=algorithm)
            prepared = pyjwk.Algorithm.prepare_key(pyjwk.key)
            if pyjwk.Algorithm.check_key_length(prepared) is not None:
                logger.warning(
                    "a verification key (type %s) is shorter than recommended for %s",
                    self.kty,
                    algorithm,
                )
            cached = self._verifiers[algorithm] = (pyjwk.Algorithm, prepared)
        return cached


class VerificationKeys:
    """The keys a token's signature is checked with: the HS* JWT secret, a JWKS, both.

    The repr names how many keys there are and their fingerprint, never the material.
    """

    def __init__(
        self, secret: bytes | str | None = None, jwks: Mapping[str, Any] | None = None
    ) -> None:
        if isinstance(secret, str):
            secret = secret.encode("utf-8")
        if secret is not None and not secret:
            raise UsageError("the JWT secret is empty")

        self._secret_key = None if secret is None else _read_secret(secret)
        self._jwks_keys: tuple[_Key, ...] = () if jwks is None else _read_jwks(jwks)
        self._fingerprint = _fingerprint(secret, self._jwks_keys)

    @classmethod
    def from_env(cls, var_name: str) -> VerificationKeys:
        """The HS* JWT secret held by the environment variable ``var_name``."""
        return cls(secret=_read_secret_variable(var_name))

    @classmethod
    def from_jwks_file(cls, path: str | Path) -> VerificationKeys:
        """The keys of a JWKS file (``{"keys": [...]}``, or a single JWK)."""
        return _keys_with_jwks_file(path, secret=None)

    @classmethod
    def from_settings(cls, settings: Settings) -> VerificationKeys:
        """The keys named by the ``jwks`` and ``jwt_secret_env`` settings (maybe none)."""
        secret = None
        if settings.jwt_secret_env:
            secret = _read_secret_variable(settings.jwt_secret_env)
        if settings.jwks:
            return _keys_with_jwks_file(settings.jwks, secret=secret)
        return cls(secret=secret)

    @property
    def is_empty(self) -> bool:
        """True when no key was given: every signature status is then ``unverified``."""
        return self._secret_key is None and not self._jwks_keys

    @property
    def fingerprint(self) -> str:
        """SHA-256 hex over a canonical form of the key material (not the material)."""
        return self._fingerprint

    @property
    def has_secret(self) -> bool:
        """Whether an HS* JWT secret was given."""
        return self._secret_key is not None

    @property
    def jwks_key_count(self) -> int:
        """How many JWKS keys can check a signature."""
        return len(self._jwks_keys)

    def _candidates(self, algorithm: str, kid: str | None) -> tuple[list[_Key], bool]:
        """The keys to try for a token, and whether a key chosen by kid did not fit.

        A token with a ``kid`` is checked against the JWKS keys with that kid; one
        without against every JWKS key whose type fits its algorithm. The JWT secret
        is tried for every HS* token, with or without kid.
        """
        keys: list[_Key] = []
        kid_key_unfit = False
        if kid is None:
            keys = [key for key in self._jwks_keys if key.fits(algorithm)]
        else:
            for key in self._jwks_keys:
                if key.kid != kid:
                    continue
                if key.fits(algorithm):
                    keys.append(key)
                else:
                    kid_key_unfit = True
        if self._secret_key is not None and _KEY_TYPE_OF_ALGORITHM[algorithm] == "oct":
            keys.append(self._secret_key)
        return keys, kid_key_unfit

    def __repr__(self) -> str:
        return (
            f"VerificationKeys(secret={'set' if self.has_secret else 'none'}, "
            f"jwks_keys={self.jwks_key_count}, fingerprint={self._fingerprint[:16]})"
        )

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VerificationKeys):
            return NotImplemented
        return self._fingerprint == other._fingerprint

    def __hash__(self) -> int:
        return hash(self._fingerprint)


def _read_secret(secret: bytes) -> _Key:
    key = _Key({"kty": "oct", "k": _b64url(secret)})
    try:
        key.verifier("HS256")
    except PyJWTError:
        # pyjwt refuses an HMAC secret that looks like a PEM, SSH or JSON key.
        raise UsageError(
            "the JWT secret looks like an asymmetric key or a JWK, not an HMAC secret; "
            "give a JWKS with --jwks instead"
        ) from None
    return key


def _read_secret_variable(var_name: str) -> bytes:
    # A value that is no variable name may be the secret (or a token) itself, given
    # by mistake: it is not repeated back.
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", var_name):
        raise UsageError(
            "--jwt-secret-env takes the name of an environment variable that holds the JWT "
            "secret, not the secret itself; the value given is not a variable name (not shown)"
        )
    value = os.environ.get(var_name)
    if not value:
        raise UsageError(
            f"environment variable {var_name} is not set or empty; it should hold the JWT secret"
        )
    return value.encode("utf-8")


def _keys_with_jwks_file(path: str | Path, *, secret: bytes | None) -> VerificationKeys:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or "not UTF-8 text"
        raise UsageError(f"cannot read JWKS file {path}: {reason}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(
            f"JWKS file {path} is not JSON ({error.msg} at line {error.lineno})"
        ) from None

    if isinstance(document, dict) and "keys" not in document and "kty" in document:
        document = {"keys": [document]}
    if not isinstance(document, dict):
        raise UsageError(f"JWKS file {path} is not a JSON object with a 'keys' list")
    try:
        return VerificationKeys(secret=secret, jwks=document)
    except UsageError as error:
        raise UsageError(f"JWKS file {path}: {error}") from None


def _read_jwks(jwks: Mapping[str, Any]) -> tuple[_Key, ...]:
    """The usable signature keys of a JWKS; a contradictory or broken key is an error.

    Keys meant for encryption, and key types or algorithms pyjwt cannot verify, are
    left out with a log line, as a JWKS may publish more than signing keys.
    """
    entries = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(entries, list):
        raise UsageError("the JWKS has no 'keys' list")

    keys: list[_Key] = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, Mapping):
            raise UsageError(f"JWKS key {number} is not a JSON object")
        key = _read_jwk(number, dict(entry))
        if key is not None:
            keys.append(key)

    if not keys:
        raise UsageError("the JWKS holds no key that can check a JWT signature")
    return tuple(keys)


def _read_jwk(number: int, entry: dict[str, Any]) -> _Key | None:
    kty, kid, alg = entry.get("kty"), entry.get("kid"), entry.get("alg")
    name = f"JWKS key {number}" + (f" (kid {kid!r})" if isinstance(kid, str) else "")

    if kid is not None and not isinstance(kid, str):
        raise UsageError(f"{name}: 'kid' is not a string")
    if entry.get("use", "sig") != "sig":
        logger.info("%s is not a signature key (use %r); left out", name, entry.get("use"))
        return None
    if kty not in _PRIVATE_MEMBERS:
        logger.warning("%s has key type %r, which cannot check a JWT; left out", name, kty)
        return None
    if alg is not None and alg not in SUPPORTED_ALGORITHMS:
        logger.warning("%s is for algorithm %r, which is not supported; left out", name, alg)
        return None

    public = {
        member: value for member, value in entry.items() if member not in _PRIVATE_MEMBERS[kty]
    }
    key = _Key(public)
    natural = alg or _natural_algorithm(key)
    if natural is None:
        logger.warning("%s has curve %r, which is not supported; left out", name, key.crv)
        return None
    if not key.fits(natural):
        raise UsageError(f"{name}: algorithm {alg!r} does not fit key type {kty!r}")

    try:
        key.verifier(natural)
    except (PyJWTError, TypeError, ValueError, KeyError):
        # pyjwt's message may quote the JWK, so only its class is named.
        raise UsageError(f"{name}: the {kty} key material cannot be read") from None
    return key


def _natural_algorithm(key: _Key) -> str | None:
    if key.kty == "oct":
        return "HS256"
    if key.kty == "RSA":
        return "RS256"
    if key.kty == "OKP":
        return "EdDSA" if key.crv in _EDDSA_CURVES else None
    for algorithm, curve in _CURVE_OF_ALGORITHM.items():
        if key.crv == curve:
            return algorithm
    return None


def _fingerprint(secret: bytes | None, keys: Sequence[_Key]) -> str:
    # The canonical form keeps what decides verification (material, kid, alg) and
    # sorts the keys, as their order in a JWKS carries no meaning.
    material = [
        {member: key.jwk[member] for member in _FINGERPRINT_MEMBERS if member in key.jwk}
        for key in keys
    ]
    canonical = {
        "secret": None if secret is None else _b64url(secret),
        "jwks": sorted(
            json.dumps(item, sort_keys=True, separators=(",", ":")) for item in material
        ),
    }
    text = "vault-audit verification keys v1\n" + json.dumps(canonical, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- reading the compact form ---------------------------------------------------------


def _pad(segment: str) -> str:
    return segment + "=" * (-len(segment) % 4)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode_segment(segment: str, name: str, *, canonical: bool = True) -> bytes:
    # Like pyjwt: base64url with optional padding and, for verification, only the
    # canonical encoding, so one signature cannot be spelled two ways.
    stripped = segment.rstrip("=")
    if not _BASE64URL.fullmatch(segment) or len(stripped) % 4 == 1:
        raise TokenRejected("malformed", f"the token's {name} is not base64url")
    try:
        decoded = base64.urlsafe_b64decode(_pad(stripped))
    except (binascii.Error, ValueError):
        raise TokenRejected("malformed", f"the token's {name} is not base64url") from None
    if canonical and _b64url(decoded) != stripped:
        raise TokenRejected("malformed", f"the token's {name} is not canonical base64url")
    return decoded


def _decode_object(segment: str, name: str) -> dict[str, Any]:
    raw = _decode_segment(segment, name)
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise TokenRejected("malformed", f"the token's {name} is not JSON") from None
    if not isinstance(value, dict):
        raise TokenRejected("malformed", f"the token's {name} is not a JSON object")
    return value


def _split(token: str) -> list[str]:
    if not isinstance(token, str):
        raise TokenRejected("malformed", "the token is not a string")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenRejected(
            "malformed", f"the token has {len(parts)} dot-separated parts, not 3 (a compact JWS)"
        )
    return parts


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and payload of a compact JWS, without checking anything else.

    Raises ``TokenRejected("malformed")`` when the string is not a JWS or its header
    or payload is not a JSON object: the cases ingestion quarantines.
    """
    header_segment, payload_segment, signature_segment = _split(token)
    header = _decode_object(header_segment, "header")
    payload = _decode_object(payload_segment, "payload")
    # A signature with stray trailing bits is still a JWS; its status will be invalid.
    _decode_segment(signature_segment, "signature", canonical=False)
    return header, payload


def _read_signed_parts(token: str) -> tuple[dict[str, Any], bytes, bytes]:
    """The header, the signing input and the signature of a compact JWS."""
    header_segment, payload_segment, signature_segment = _split(token)
    header = _decode_object(header_segment, "header")
    signature = _decode_segment(signature_segment, "signature")
    if "kid" in header and not isinstance(header["kid"], str):
        raise TokenRejected("malformed", "the token's kid is not a string")
    signing_input = f"{header_segment}.{payload_segment}".encode("ascii")
    return header, signing_input, signature


# --- signature ------------------------------------------------------------------------


@dataclass(frozen=True)
class _SignatureOutcome:
    status: SignatureStatus
    check: str | None  # the TokenRejected check when not valid
    message: str


def _describe(value: Any) -> str:
    # Header values are attacker controlled: quote them, and keep them short.
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_signature(token: str, keys: VerificationKeys) -> _SignatureOutcome:
    try:
        header, signing_input, signature = _read_signed_parts(token)
    except TokenRejected as rejected:
        status: SignatureStatus = "unverified" if keys.is_empty else "invalid"
        return _SignatureOutcome(status, "malformed", rejected.message)

    algorithm, kid = header.get("alg"), header.get("kid")
    if isinstance(algorithm, str) and algorithm.lower() == "none":
        return _SignatureOutcome("invalid", "algorithm", "the token is unsigned (alg none)")
    if not isinstance(algorithm, str) or algorithm not in SUPPORTED_ALGORITHMS:
        return _SignatureOutcome(
            "invalid", "algorithm", f"the token's algorithm {_describe(algorithm)} is not supported"
        )

    if keys.is_empty:
        return _SignatureOutcome("unverified", "unknown_key", "no verification key was given")
    candidates, kid_key_unfit = keys._candidates(algorithm, kid)
    if not candidates:
        if kid_key_unfit:
            return _SignatureOutcome(
                "invalid",
                "signature",
                f"the key with kid {_describe(kid)} cannot verify algorithm {algorithm}",
            )
        which = f"kid {_describe(kid)}" if kid is not None else f"algorithm {algorithm}"
        return _SignatureOutcome(
            "unverified", "unknown_key", f"no given key fits the token's {which}"
        )

    if "crit" in header:
        # RFC 7515: a critical extension the verifier does not understand fails the
        # token, and Vault honours none (Supabase sets none).
        return _SignatureOutcome("invalid", "malformed", "the token names a critical extension")
    if any(_verifies(signing_input, signature, key, algorithm) for key in candidates):
        return _SignatureOutcome("valid", None, "the signature verifies")
    return _SignatureOutcome(
        "invalid", "signature", f"the {algorithm} signature does not verify with any fitting key"
    )


def _verifies(signing_input: bytes, signature: bytes, key: _Key, algorithm: str) -> bool:
    try:
        verifier, prepared = key.verifier(algorithm)
        return bool(verifier.verify(signing_input, prepared, signature))
    except (PyJWTError, ValueError, TypeError):
        return False


def signature_status(token: str, keys: VerificationKeys) -> SignatureStatus:
    """``valid``, ``invalid`` or ``unverified``: the signature alone, per the contract.

    - ``alg: none`` and an algorithm vault-audit cannot check are ``invalid``, with or
      without keys: the token claims to be signed in a way nothing could verify.
    - The keys tried follow the token's ``kid`` (JWKS keys with that kid), else its
      ``alg`` (JWKS keys of a fitting type and curve); the JWT secret is tried for
      every HS* token. ``valid`` when one of them verifies, ``invalid`` when none does.
      A key chosen by kid that cannot produce the token's algorithm (an RSA key named
      by an HS256 token) makes the token ``invalid``, not ``unverified``.
    - ``unverified`` when no given key fits: nothing was checked.
    - A string that is not a compact JWS is ``invalid`` when keys were given (it
      cannot verify), ``unverified`` when none were. Never raises for a bad token.
    """
    return _check_signature(token, keys).status


# --- full verification ----------------------------------------------------------------


def verify_access_token(
    token: str,
    keys: VerificationKeys,
    policy: TokenPolicy | None = None,
    now: datetime | float | None = None,
) -> dict[str, Any]:
    """The token's claims when Vault's backend would accept it; else ``TokenRejected``.

    Checks, in order: the compact form, the algorithm, a fitting key, the signature,
    the required claims, expiry (``now >= exp + leeway`` is expired), issue time
    (``iat`` or ``nbf`` later than ``now + leeway``), lifetime (``exp - iat`` above
    ``max_lifetime``), audience, issuer.
    """
    policy = policy or TokenPolicy()
    at = _epoch_seconds(now)
    _, claims = decode_unverified(token)

    outcome = _check_signature(token, keys)
    if outcome.status != "valid":
        raise TokenRejected(outcome.check or "signature", outcome.message)

    missing = [name for name in policy.required_claims if claims.get(name) is None]
    if missing:
        raise TokenRejected("missing_claim", f"the token lacks the claim {missing[0]!r}")

    exp, iat, nbf = (_numeric_claim(claims, name) for name in ("exp", "iat", "nbf"))
    if exp is not None and at >= exp + policy.leeway:
        raise TokenRejected(
            "expired",
            f"the token expired at {_rfc3339(exp)}, before {_rfc3339(at)} "
            f"(leeway {policy.leeway} s)",
        )
    if iat is not None and iat > at + policy.leeway:
        raise TokenRejected(
            "not_yet_valid",
            f"the token was issued at {_rfc3339(iat)}, after {_rfc3339(at)} "
            f"(leeway {policy.leeway} s)",
        )
    if nbf is not None and nbf > at + policy.leeway:
        raise TokenRejected(
            "not_yet_valid", f"the token is not valid before {_rfc3339(nbf)}, after {_rfc3339(at)}"
        )
    if exp is not None and iat is not None and exp - iat > policy.max_lifetime:
        raise TokenRejected(
            "lifetime",
            f"the token lives {exp - iat:g} s, more than the {policy.max_lifetime} s allowed",
        )

    if policy.audience is not None:
        _check_audience(claims.get("aud"), policy.audience)
    if policy.issuer is not None and claims.get("iss") != policy.issuer:
        raise TokenRejected(
            "issuer", f"the token's issuer {_describe(claims.get('iss'))} is not {policy.issuer!r}"
        )
    return claims


def _check_audience(aud: Any, expected: str) -> None:
    audiences = aud if isinstance(aud, list) else [aud]
    if expected not in audiences:
        raise TokenRejected(
            "audience", f"the token's audience {_describe(aud)} does not include {expected!r}"
        )


def _numeric_claim(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TokenRejected("malformed", f"the token's {name} claim is not a number of seconds")
    return float(value)


def _epoch_seconds(now: datetime | float | None) -> float:
    if now is None:
        return time.time()
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("now must be a timezone-aware datetime")
        return now.timestamp()
    return float(now)


def _rfc3339(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    timespec = "seconds" if moment.microsecond == 0 else "microseconds"
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")


# --- signing, for the simulator and tests ----------------------------------------------


class _DeterministicECAlgorithm(ECAlgorithm):
    """ECDSA signing with RFC 6979 nonces, so a seeded simulation writes the same tokens.

    Only signing differs from pyjwt's; verification is pyjwt's own.
    """

    def sign(self, msg: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
        der = key.sign(msg, ec.ECDSA(self.hash_alg(), deterministic_signing=True))
        return der_to_raw_signature(der, key.curve)


def _signer() -> PyJWS:
    signer = PyJWS()
    for name, hash_alg, curve in (
        ("ES256", ECAlgorithm.SHA256, ec.SECP256R1),
        ("ES384", ECAlgorithm.SHA384, ec.SECP384R1),
        ("ES512", ECAlgorithm.SHA512, ec.SECP521R1),
    ):
        signer.unregister_algorithm(name)
        signer.register_algorithm(name, _DeterministicECAlgorithm(hash_alg, curve))
    return signer


_SIGNER = _signer()


def _algorithm_for(key: Any) -> str:
    if isinstance(key, (bytes, str)):
        return "HS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        curves = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
        return curves.get(key.curve.name, "ES256K")
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        return "EdDSA"
    raise TypeError(f"cannot sign with a {type(key).__name__}")


def sign_access_token(
    claims: Mapping[str, Any],
    key: Any,
    *,
    algorithm: str | None = None,
    kid: str | None = None,
) -> str:
    """A compact JWS of ``claims``: HS* with a secret, or a private key's algorithm.

    ``algorithm`` defaults to HS256 for a secret, ES256/384/512, RS256 or EdDSA for
    a private key. ECDSA signatures are deterministic (RFC 6979).
    """
    algorithm = algorithm or _algorithm_for(key)
    headers = {"kid": kid} if kid is not None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return _SIGNER.encode(
            json.dumps(dict(claims), separators=(",", ":")).encode("utf-8"),
            key,
            algorithm=algorithm,
            headers={"typ": "JWT", **(headers or {})},
        )


def public_jwk(private_key: Any, *, kid: str, algorithm: str | None = None) -> dict[str, Any]:
    """The public JWK of an asymmetric private key, with ``kid``, ``alg`` and ``use``."""
    algorithm = algorithm or _algorithm_for(private_key)
    kty = _KEY_TYPE_OF_ALGORITHM[algorithm]
    writer: Any = {"RSA": RSAAlgorithm, "EC": ECAlgorithm, "OKP": OKPAlgorithm}[kty]
    jwk = dict(writer.to_jwk(private_key.public_key(), as_dict=True))
    jwk.update(kid=kid, alg=algorithm, use="sig")
    return jwk


# The order of the P-256 group, for deriving a private scalar from a seed.
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def generate_es256_keypair(
    kid: str, *, seed: int | None = None
) -> tuple[ec.EllipticCurvePrivateKey, dict[str, Any]]:
    """A P-256 private key and the JWKS (``{"keys": [...]}``) that publishes it.

    With ``seed`` the key is derived from the seed and kid, so a seeded simulation
    is reproducible; such a key is for simulated data only.
    """
    if seed is None:
        private_key = ec.generate_private_key(ec.SECP256R1())
    else:
        digest = hashlib.sha256(f"vault-audit simulated ES256 key {seed} {kid}".encode()).digest()
        scalar = int.from_bytes(digest, "big") % (_P256_ORDER - 1) + 1
        private_key = ec.derive_private_key(scalar, ec.SECP256R1())
    return private_key, {"keys": [public_jwk(private_key, kid=kid, algorithm="ES256")]}
