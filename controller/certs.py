"""The webhook's serving certificate, kept by the controller: a CA of its own, a serving
certificate it signs, and the CA bundle the API server trusts, rotated without a failed request.

:func:`plan` is the whole decision, pure: given the Secret's data and the time, it returns the
data the Secret should hold and the bundle the webhook configurations should carry. Rotation
never leaves the API server without trust in the certificate being served:

- the serving certificate is re-issued by the same CA before it expires (the bundle does not
  change);
- a CA near its end is replaced in two passes: first a new CA is staged (``ca-next``) and joins
  the bundle, then, on a later pass once the bundle is out, it becomes the CA and signs a new
  serving certificate, while the old CA stays in the bundle (``ca-previous``) until it expires.

The caller writes the bundle before the Secret (:class:`controller.operator.certs.CertKeeper`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["CertPlan", "Validity", "bundle_of", "plan"]


@dataclass(frozen=True)
class Validity:
    serving: dt.timedelta = dt.timedelta(days=90)
    serving_renew_before: dt.timedelta = dt.timedelta(days=30)
    ca: dt.timedelta = dt.timedelta(days=3650)
    ca_renew_before: dt.timedelta = dt.timedelta(days=365)


@dataclass(frozen=True)
class CertPlan:
    data: dict[str, bytes]
    """What the Secret should hold (PEM): ca.crt, ca.key, tls.crt, tls.key, and during a CA
    switch ca-next.crt/ca-next.key or ca-previous.crt."""
    bundle: bytes
    """The CAs the API server should trust, PEM, concatenated."""
    changes: list[str] = field(default_factory=list)
    """What changed and why (empty: nothing to write)."""


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    pkcs8 = serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption())


def new_ca(name: str, now: dt.datetime, validity: dt.timedelta) -> tuple[bytes, bytes]:
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} {now:%Y%m%d%H%M%S}")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def new_serving(
    ca_pem: bytes, ca_key_pem: bytes, names: Sequence[str], now: dt.datetime, validity: dt.timedelta
) -> tuple[bytes, bytes]:
    ca = x509.load_pem_x509_certificate(ca_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = _key()
    sans: list[x509.GeneralName] = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    not_after = min(now + validity, ca.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def _cert(pem: bytes | None) -> x509.Certificate | None:
    if not pem:
        return None
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError:
        return None


def _pair_ok(cert_pem: bytes | None, key_pem: bytes | None) -> bool:
    cert = _cert(cert_pem)
    if cert is None or not key_pem:
        return False
    try:
        key = serialization.load_pem_private_key(key_pem, None)
    except (ValueError, TypeError):
        return False
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _serves(cert_pem: bytes, ca_pem: bytes, names: Sequence[str]) -> bool:
    """Signed by this CA, for exactly these names."""
    cert, ca = _cert(cert_pem), _cert(ca_pem)
    if cert is None or ca is None or cert.issuer != ca.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    have = {str(v) for v in sans.get_values_for_type(x509.DNSName)}
    have |= {str(v) for v in sans.get_values_for_type(x509.IPAddress)}
    return have == set(names)


def bundle_of(*pems: bytes | None) -> bytes:
    return b"".join(p if p.endswith(b"\n") else p + b"\n" for p in pems if p)


def plan(
    current: Mapping[str, bytes],
    now: dt.datetime,
    names: Sequence[str],
    validity: Validity | None = None,
    published: bytes = b"",
    settle: dt.timedelta = dt.timedelta(seconds=60),
    ca_name: str = "dlc-guard-webhook-ca",
) -> CertPlan:
    """The Secret data and bundle for ``now`` (see the module's docstring). ``published`` is the
    bundle the webhook configurations carry now: a staged CA signs only once it is in there and
    has been for ``settle`` (the API servers pick the change up)."""
    validity = validity or Validity()
    data = {k: bytes(v) for k, v in current.items()}
    changes: list[str] = []

    def expires(pem: bytes | None) -> dt.datetime:
        cert = _cert(pem)
        return cert.not_valid_after_utc if cert is not None else now

    if not _pair_ok(data.get("ca-next.crt"), data.get("ca-next.key")):
        data.pop("ca-next.crt", None), data.pop("ca-next.key", None)
    staged = _cert(data.get("ca-next.crt"))
    if not _pair_ok(data.get("ca.crt"), data.get("ca.key")) or expires(data.get("ca.crt")) <= now:
        # no usable CA: a fresh start (nothing valid is being served)
        data = dict(zip(("ca.crt", "ca.key"), new_ca(ca_name, now, validity.ca), strict=True))
        changes.append("new CA (none usable)")
    elif staged is not None:
        staged_at = staged.not_valid_before_utc + dt.timedelta(minutes=5)
        if data["ca-next.crt"] in published and now - staged_at >= settle:
            # the staged CA becomes the CA; the old one stays trusted until it expires
            data["ca-previous.crt"] = data["ca.crt"]
            data["ca.crt"], data["ca.key"] = data.pop("ca-next.crt"), data.pop("ca-next.key")
            data.pop("tls.crt", None)
            changes.append("staged CA now signs")
    elif expires(data["ca.crt"]) - now <= validity.ca_renew_before:
        # a CA near its end: stage its successor, trusted from this pass on
        data["ca-next.crt"], data["ca-next.key"] = new_ca(ca_name, now, validity.ca)
        changes.append("CA near its end: successor staged")
    if data.get("ca-previous.crt") and expires(data["ca-previous.crt"]) <= now:
        del data["ca-previous.crt"]
        changes.append("expired previous CA dropped")

    # the serving certificate: signed by the CA, for these names, not near its end
    cert = data.get("tls.crt")
    if (
        not cert
        or not _pair_ok(cert, data.get("tls.key"))
        or not _serves(cert, data["ca.crt"], names)
        or expires(cert) - now <= validity.serving_renew_before
    ):
        data["tls.crt"], data["tls.key"] = new_serving(data["ca.crt"], data["ca.key"], names, now, validity.serving)
        changes.append("serving certificate issued")
    bundle = bundle_of(data["ca.crt"], data.get("ca-next.crt"), data.get("ca-previous.crt"))
    return CertPlan(data, bundle, changes)
