"""Attachments and signed statements: real multipart bodies over HTTP."""

from __future__ import annotations

import base64
import datetime as dt
import email.parser
import email.policy
import hashlib
import json
import os
import uuid
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from joserfc import jws
from joserfc.jwk import OctKey, RSAKey

from tests.factories import activity, statement

SIGNATURE = "http://adlnet.gov/expapi/attachments/signature"
BOUNDARY = "lrs-test-boundary-7f3a"


def attachment_meta(
    content: bytes,
    content_type: str = "application/pdf",
    usage: str = "http://kommune.example.no/attachment/certificate",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "usageType": usage,
        "display": {"nb": "Kursbevis"},
        "contentType": content_type,
        "length": len(content),
        "sha2": hashlib.sha256(content).hexdigest(),
        **extra,
    }


def multipart(
    statements: Any, parts: list[tuple[bytes, dict[str, str]]], first_type: str = "application/json"
) -> bytes:
    out = [
        f"--{BOUNDARY}\r\nContent-Type: {first_type}\r\n\r\n".encode()
        + json.dumps(statements).encode()
        + b"\r\n"
    ]
    for content, headers in parts:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        out.append(f"--{BOUNDARY}\r\n{head}\r\n".encode() + content + b"\r\n")
    out.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(out)


def part_headers(content: bytes, content_type: str = "application/pdf", **extra: str) -> dict[str, str]:
    return {
        "Content-Type": content_type,
        "Content-Transfer-Encoding": "binary",
        "X-Experience-API-Hash": hashlib.sha256(content).hexdigest(),
        **extra,
    }


async def send(client: httpx.AsyncClient, body: bytes, method: str = "POST", **params: str) -> httpx.Response:
    return await client.request(
        method,
        "/statements",
        params=params,
        content=body,
        headers={"Content-Type": f"multipart/mixed; boundary={BOUNDARY}"},
    )


def parse_multipart(response: httpx.Response) -> list[tuple[dict[str, str], bytes]]:
    raw = (f"Content-Type: {response.headers['content-type']}\r\n\r\n").encode() + response.content
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    return [(dict(part.items()), part.get_payload(decode=True) or b"") for part in message.iter_parts()]


async def test_batch_with_binary_attachments_round_trips(client):
    pdf = os.urandom(300_000)
    image = bytes(range(256)) * 100
    course = activity()
    a = statement(obj=course, attachments=[attachment_meta(pdf)])
    b = statement(obj=course, attachments=[attachment_meta(pdf), attachment_meta(image, "image/png")])
    body = multipart([a, b], [(pdf, part_headers(pdf)), (image, part_headers(image, "image/png"))])
    r = await send(client, body)
    assert r.status_code == 200, r.text
    ids = r.json()

    r = await client.get("/statements", params={"activity": course["id"], "attachments": "true"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("multipart/mixed")
    assert "X-Experience-API-Consistent-Through" in r.headers
    parts = parse_multipart(r)
    result = json.loads(parts[0][1])
    assert {s["id"] for s in result["statements"]} == set(ids)
    by_hash = {h["X-Experience-API-Hash"]: (h, data) for h, data in parts[1:]}
    assert len(parts) == 3  # each attachment once, though pdf is used twice
    assert by_hash[hashlib.sha256(pdf).hexdigest()][1] == pdf
    png_headers, png = by_hash[hashlib.sha256(image).hexdigest()]
    assert png == image and png_headers["Content-Type"] == "image/png"
    assert png_headers["Content-Transfer-Encoding"] == "binary"

    single = await client.get("/statements", params={"statementId": ids[0], "attachments": "true"})
    parts = parse_multipart(single)
    assert json.loads(parts[0][1])["id"] == ids[0]
    assert [data for _, data in parts[1:]] == [pdf]
    plain = await client.get("/statements", params={"statementId": ids[0], "attachments": "false"})
    assert plain.headers["content-type"] == "application/json"


async def test_put_with_attachment(client):
    sid = str(uuid.uuid4())
    data = b"recorded audio"
    r = await send(
        client,
        multipart(
            statement(attachments=[attachment_meta(data, "audio/ogg")]),
            [(data, part_headers(data, "audio/ogg"))],
        ),
        method="PUT",
        statementId=sid,
    )
    assert r.status_code == 204, r.text
    parts = parse_multipart(
        await client.get("/statements", params={"statementId": sid, "attachments": "true"})
    )
    assert parts[1][1] == data


async def test_file_url_attachments_need_no_part(client):
    meta = attachment_meta(b"elsewhere", fileUrl="https://files.example.no/cert.pdf")
    r = await client.post("/statements", json=statement(attachments=[meta]))
    assert r.status_code == 200
    r = await send(client, multipart(statement(attachments=[meta]), []))
    assert r.status_code == 200


def _bad_bodies() -> list[tuple[str, bytes, str]]:
    data = b"certificate bytes"
    meta = attachment_meta(data)
    s = statement(attachments=[meta])
    wrong = b"tampered bytes!!!"
    return [
        ("missing part", multipart(s, []), "no part"),
        ("wrong hash", multipart(s, [(wrong, {**part_headers(data)})]), "does not match"),
        (
            "extra part",
            multipart(s, [(data, part_headers(data)), (wrong, part_headers(wrong))]),
            "declares hash",
        ),
        (
            "no hash header",
            multipart(
                s, [(data, {"Content-Type": "application/pdf", "Content-Transfer-Encoding": "binary"})]
            ),
            "X-Experience-API-Hash",
        ),
        (
            "base64 encoding",
            multipart(s, [(data, part_headers(data, **{"Content-Transfer-Encoding": "base64"}))]),
            "binary",
        ),
        (
            "content-length disagrees",
            multipart(s, [(data, part_headers(data, **{"Content-Length": "3"}))]),
            "Content-Length",
        ),
        ("content-type disagrees", multipart(s, [(data, part_headers(data, "image/png"))]), "Content-Type"),
        ("first part not json", multipart(s, [(data, part_headers(data))], "text/plain"), "first part"),
        ("no closing boundary", multipart(s, [(data, part_headers(data))])[:-20], "malformed"),
        ("no boundary at all", b"Content-Type: application/json\r\n\r\n{}", "malformed"),
    ]


@pytest.mark.parametrize(("name", "body", "message"), _bad_bodies(), ids=[c[0] for c in _bad_bodies()])
async def test_bad_multipart_is_400_and_stores_nothing(client, name, body, message):
    r = await send(client, body)
    assert r.status_code == 400, (name, r.text)
    assert message in r.json()["message"]
    sent = (
        json.loads(body.split(b"\r\n\r\n", 1)[1].split(b"\r\n--", 1)[0])
        if name != "no boundary at all"
        else None
    )
    if sent:
        listed = await client.get("/statements", params={"activity": sent["object"]["id"]})
        assert listed.json()["statements"] == []


async def test_attachments_without_parts_in_json_are_400(client):
    r = await client.post("/statements", json=statement(attachments=[attachment_meta(b"x")]))
    assert r.status_code == 400 and "multipart" in r.json()["message"]


async def test_form_data_is_refused(client):
    r = await client.post(
        "/statements",
        content=b"--x\r\n\r\n--x--",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert r.status_code == 400


async def test_attachment_size_limit(database_url, server, credential):
    from tests.harness import start_server, stop_server

    small = start_server(database_url, max_attachment_bytes="1000")
    try:
        async with httpx.AsyncClient(
            base_url=small.xapi, auth=credential.auth, headers={"X-Experience-API-Version": "2.0.0"}
        ) as c:
            data = os.urandom(5000)
            r = await send(
                c, multipart(statement(attachments=[attachment_meta(data)]), [(data, part_headers(data))])
            )
            assert r.status_code == 413
    finally:
        stop_server(small)


# --- signed statements ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signing_key() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Kursleverandør AS")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.DER)


def sign(
    payload: dict[str, Any], key: rsa.RSAPrivateKey, alg: str = "RS256", cert: bytes | None = None
) -> bytes:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    header: dict[str, Any] = {"alg": alg}
    if cert is not None:
        header["x5c"] = [base64.b64encode(cert).decode()]
    return jws.serialize_compact(
        header, json.dumps(payload).encode(), RSAKey.import_key(pem), algorithms=[alg]
    ).encode()


def signed_body(s: dict[str, Any], token: bytes) -> bytes:
    signed = dict(s, attachments=[attachment_meta(token, "application/octet-stream", usage=SIGNATURE)])
    return multipart(signed, [(token, part_headers(token, "application/octet-stream"))])


@pytest.mark.parametrize("alg", ["RS256", "RS384", "RS512"])
async def test_signed_statement_is_accepted_and_signature_kept(client, signing_key, alg):
    key, cert = signing_key
    s = statement(id=str(uuid.uuid4()), result={"duration": "PT1M30.12S"})
    token = sign(s, key, alg, cert)
    r = await send(client, signed_body(s, token))
    assert r.status_code == 200, r.text
    parts = parse_multipart(
        await client.get("/statements", params={"statementId": s["id"], "attachments": "true"})
    )
    assert parts[1][1] == token


async def test_signature_without_certificate_checks_form_and_payload(client, signing_key):
    key, _ = signing_key
    s = statement(id=str(uuid.uuid4()))
    assert (await send(client, signed_body(s, sign(s, key)))).status_code == 200


async def test_durations_compare_to_the_hundredth(client, signing_key):
    key, cert = signing_key
    s = statement(id=str(uuid.uuid4()), result={"duration": "PT0.12S"})
    token = sign(s, key, cert=cert)
    sent = dict(s, result={"duration": "PT0.1299S"})
    assert (await send(client, signed_body(sent, token))).status_code == 200


@pytest.mark.parametrize(
    "case", ["tampered", "wrong key", "hs256", "not a jws", "bad payload", "wrong content type"]
)
async def test_bad_signatures_are_400(client, signing_key, case):
    key, cert = signing_key
    s = statement(id=str(uuid.uuid4()))
    token = sign(s, key, cert=cert)
    body = None
    if case == "tampered":
        body = signed_body(dict(s, verb={"id": "http://adlnet.gov/expapi/verbs/passed"}), token)
    elif case == "wrong key":
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        body = signed_body(s, sign(s, other, cert=cert))
    elif case == "hs256":
        hs = jws.serialize_compact(
            {"alg": "HS256"}, json.dumps(s).encode(), OctKey.import_key(b"k" * 32), algorithms=["HS256"]
        ).encode()
        body = signed_body(s, hs)
    elif case == "not a jws":
        body = signed_body(s, b"this is not a signature")
    elif case == "bad payload":
        head, _, sig = token.split(b".")
        bad = base64.urlsafe_b64encode(b"{'no': json}").rstrip(b"=")
        body = signed_body(s, b".".join([head, bad, sig]))
    elif case == "wrong content type":
        signed = dict(s, attachments=[attachment_meta(token, "text/plain", usage=SIGNATURE)])
        body = multipart(signed, [(token, part_headers(token, "text/plain"))])
    assert body is not None
    r = await send(client, body)
    assert r.status_code == 400, r.text
    assert (await client.get("/statements", params={"statementId": s["id"]})).status_code == 404
