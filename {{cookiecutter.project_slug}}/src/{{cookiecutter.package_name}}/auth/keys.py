"""Public keys a token may be verified with, and the JWS algorithms each kind allows.

The algorithms follow from the key, never from the token (RFC 8725 section 2.1),
so this is also where a key the service cannot use is refused: at startup, by
the settings, rather than at the first token.
"""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

# Curves named by the JWS algorithms that use them (RFC 7518 section 3.4).
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
SUPPORTED = "RSA, EC (P-256, P-384, P-521), Ed25519 or Ed448"


def public_key(pem: str) -> tuple[Any, tuple[str, ...]]:
    """A PEM public key, and the algorithms that key kind verifies.

    Raises ValueError, in one line saying what is wrong, for text that is not a PEM
    public key or a key of a kind no JWS algorithm uses.
    """
    if "PRIVATE KEY-----" in pem:
        raise ValueError(
            "this is a private key: give its public half (openssl pkey -in key.pem -pubout)"
        )
    try:
        key = load_pem_public_key(pem.encode())
    except (ValueError, UnsupportedAlgorithm):
        # cryptography's own message is a paragraph about passwords and ASN.1.
        raise ValueError(
            f"not a PEM public key (-----BEGIN PUBLIC KEY----- ...) of {SUPPORTED}"
        ) from None
    if isinstance(key, rsa.RSAPublicKey):
        return key, _RSA_ALGORITHMS
    if isinstance(key, ec.EllipticCurvePublicKey):
        algorithm = _EC_ALGORITHMS.get(key.curve.name)
        if algorithm is None:
            raise ValueError(f"EC curve {key.curve.name} has no JWS algorithm: use {SUPPORTED}")
        return key, (algorithm,)
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return key, ("EdDSA",)
    raise ValueError(f"{type(key).__name__} keys are not supported: use {SUPPORTED}")
