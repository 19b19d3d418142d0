"""Signed statements: a JWS over the statement, carried as a signature attachment."""

from __future__ import annotations

import base64
from typing import Any

import orjson
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from lrs.xapi.errors import BadRequest
from lrs.xapi.statements import comparable

ALGORITHMS = ("RS256", "RS384", "RS512")

# joserfc's defaults (512-byte header, 128 kB payload) are too small for an x5c certificate
# chain in the header and for a large statement as payload.
_REGISTRY = jws.JWSRegistry(algorithms=list(ALGORITHMS))
_REGISTRY.max_header_length = 64 * 1024
_REGISTRY.max_payload_length = 8 * 1024 * 1024
_REGISTRY.max_signature_length = 4096


def verify(token: bytes, statement: dict[str, Any], path: str) -> None:
    """400 unless ``token`` is an RS256/384/512 JWS whose payload is this statement.

    When the JWS header carries an X.509 chain (``x5c``), the signature is checked against
    its first certificate's key; without one there is no key to check it against, and only
    its form and payload are checked (as the spec allows).
    """
    try:
        text = token.decode("ascii").strip()
        signed = jws.extract_compact(text.encode("ascii"), registry=_REGISTRY)
    except (UnicodeDecodeError, ValueError, JoseError) as exc:
        raise BadRequest(f"{path}: the signature is not a compact JWS ({exc})") from None
    header = signed.protected
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise BadRequest(f"{path}: the signature uses {alg!r}; use RS256, RS384 or RS512")
    try:
        payload = orjson.loads(signed.payload)
    except orjson.JSONDecodeError:
        raise BadRequest(f"{path}: the signature's payload is not a JSON statement") from None
    if not isinstance(payload, dict):
        raise BadRequest(f"{path}: the signature's payload is not a JSON statement")
    chain = header.get("x5c")
    if chain:
        _check_with_certificate(text, chain, path)
    flags = {"keep_id": "id" in payload, "keep_timestamp": "timestamp" in payload, "keep_attachments": False}
    if comparable(payload, **flags) != comparable(statement, **flags):
        raise BadRequest(f"{path}: the signed payload differs from the statement")


def _check_with_certificate(token: str, chain: Any, path: str) -> None:
    try:
        cert = x509.load_der_x509_certificate(base64.b64decode(chain[0]))
        pem = cert.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        key = RSAKey.import_key(pem)
        jws.deserialize_compact(token, key, registry=_REGISTRY)
    except (ValueError, TypeError, IndexError, JoseError) as exc:
        raise BadRequest(
            f"{path}: the signature does not verify with its x5c certificate ({exc.__class__.__name__})"
        ) from None
