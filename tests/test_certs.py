"""The serving-certificate plan, pure: issue, re-issue before expiry, and a CA switch in which
the API server trusts the certificate being served at every step."""

from __future__ import annotations

import datetime as dt

from cryptography import x509

from controller.certs import CertPlan, Validity, plan

NAMES = ["dlc-guard-webhook.dlc-guard.svc", "127.0.0.1"]
T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
SHORT = Validity(
    serving=dt.timedelta(hours=10),
    serving_renew_before=dt.timedelta(hours=4),
    ca=dt.timedelta(hours=48),
    ca_renew_before=dt.timedelta(hours=12),
)


def trusted(p: CertPlan) -> bool:
    """Whether a client trusting ``p.bundle`` accepts the serving certificate ``p.data`` holds."""
    cert = x509.load_pem_x509_certificate(p.data["tls.crt"])
    for ca in x509.load_pem_x509_certificates(p.bundle):
        if ca.subject == cert.issuer:
            cert.verify_directly_issued_by(ca)
            return True
    return False


def test_nothing_yet_gives_a_ca_and_a_serving_certificate_for_the_names() -> None:
    p = plan({}, T0, NAMES, SHORT)
    assert p.changes == ["new CA (none usable)", "serving certificate issued"]
    cert = x509.load_pem_x509_certificate(p.data["tls.crt"])
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [NAMES[0]]
    assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == [NAMES[1]]
    assert trusted(p)
    again = plan(p.data, T0 + dt.timedelta(minutes=1), NAMES, SHORT, published=p.bundle)
    assert again.changes == [] and again.data == p.data, "a steady state writes nothing"


def test_the_serving_certificate_is_reissued_by_the_same_ca_before_it_expires() -> None:
    first = plan({}, T0, NAMES, SHORT)
    later = plan(first.data, T0 + dt.timedelta(hours=7), NAMES, SHORT, published=first.bundle)
    assert later.changes == ["serving certificate issued"]
    assert later.bundle == first.bundle, "same CA: the API server's trust does not change"
    assert later.data["tls.crt"] != first.data["tls.crt"] and trusted(later)


def test_other_names_or_a_broken_pair_get_a_new_certificate() -> None:
    first = plan({}, T0, NAMES, SHORT)
    assert plan(first.data, T0, [*NAMES, "extra.example"], SHORT).changes == ["serving certificate issued"]
    broken = {**first.data, "tls.key": plan({}, T0, NAMES, SHORT).data["tls.key"]}
    assert plan(broken, T0, NAMES, SHORT).changes == ["serving certificate issued"]


def test_a_ca_switch_keeps_the_served_certificate_trusted_at_every_step() -> None:
    step = plan({}, T0, NAMES, SHORT)
    published = step.bundle
    now = T0
    seen: list[str] = []
    while now < T0 + dt.timedelta(hours=120):
        now += dt.timedelta(minutes=30)
        new = plan(step.data, now, NAMES, SHORT, published=published, settle=dt.timedelta(minutes=20))
        # the keeper publishes the bundle before it writes the Secret: both old and new hold
        assert trusted(CertPlan(step.data, new.bundle)), f"{now}: the certificate still served is trusted"
        assert trusted(new), f"{now}: the new certificate is trusted"
        seen += new.changes
        step, published = new, new.bundle
    assert "CA near its end: successor staged" in seen and "staged CA now signs" in seen
    assert "expired previous CA dropped" in seen
    assert len(x509.load_pem_x509_certificates(step.bundle)) <= 3


def test_a_staged_ca_waits_until_the_api_server_trusts_it() -> None:
    near = T0 + dt.timedelta(hours=37)  # inside the CA's renewal window
    first = plan({}, T0, NAMES, SHORT)
    staged = plan(first.data, near, NAMES, SHORT, published=first.bundle)
    assert "ca-next.crt" in staged.data and staged.data["ca-next.crt"] in staged.bundle
    # not yet in the published bundle: the staged CA does not sign, however long it waits
    waiting = plan(staged.data, near + dt.timedelta(hours=1), NAMES, SHORT, published=first.bundle)
    assert "ca-next.crt" in waiting.data and "staged CA now signs" not in waiting.changes
    done = plan(staged.data, near + dt.timedelta(hours=1), NAMES, SHORT, published=staged.bundle)
    assert "staged CA now signs" in done.changes and done.data["ca-previous.crt"] == first.data["ca.crt"]
