"""The test control plane's certificates: a CA, a serving cert for every name the API server answers to,
client certs whose CN/O the API server maps to user/group, and a ServiceAccount signing key."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubecluster.pki import CertificateAuthority, service_account_keys


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_leaf_certificates_are_signed_by_the_ca_and_say_who_they_are(tmp_path: Path) -> None:
    ca = CertificateAuthority.create(tmp_path)
    serving = ca.issue("apiserver", "kube-apiserver", server=True, dns=("kubernetes.default.svc",), ips=("127.0.0.1",))
    admin = ca.issue("admin", "kubernetes-admin", "system:masters")
    root = load(ca.cert)
    for pair in (serving, admin):
        cert = load(pair.cert)
        cert.verify_directly_issued_by(root)
        assert (pair.key.stat().st_mode & 0o777) == 0o600
    names = load(serving.cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["kubernetes.default.svc"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    client = load(admin.cert)
    assert client.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    usage = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_a_reloaded_ca_issues_certificates_the_same_root_verifies(tmp_path: Path) -> None:
    CertificateAuthority.create(tmp_path)
    again = CertificateAuthority.load(tmp_path)
    load(again.issue("late", "late-user").cert).verify_directly_issued_by(load(tmp_path / "ca.crt"))


def test_service_account_keys_are_a_matching_pair(tmp_path: Path) -> None:
    pair = service_account_keys(tmp_path)
    private = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
    public = serialization.load_pem_public_key(pair.cert.read_bytes())
    assert private.public_key().public_numbers() == public.public_numbers()  # type: ignore[union-attr]
