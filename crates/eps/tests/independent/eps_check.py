#!/usr/bin/env python3
"""Independent check of an EPS R2 prescription signature.

Written from the EPS signing rules (as in crates/eps/tests/data/PROVENANCE.md,
summarised below), not from the Rust code it checks: its own XPath, libxml2's
exclusive C14N through lxml, and OpenSSL for RSA.

  1. Fragments, in order: {author/time, id[0]} of the pertinentPrescription;
     the author's AgentPerson; the ParentPrescription's recordTarget; each
     pertinentLineItem without repeatNumber/low and without
     pertinentInformation4. Each is copied into the urn:hl7-org:v3 namespace.
  2. Wrapped as <FragmentsToBeHashed><Fragment>...</Fragment>...
     </FragmentsToBeHashed>, whitespace-only text dropped, canonicalised with
     exclusive C14N and hashed (SHA-1 or SHA-256) into DigestValue.
  3. SignedInfo, whitespace-only text dropped, canonicalised the same way and
     signed with RSA PKCS#1 v1.5 (rsa-sha1 or rsa-sha256).

Usage:
  eps_check.py FILE
      Verify. Prints "OK" (exit 0), or one "FAIL <check>: <why>" line per
      failed check (exit 1). Checks: format, certificate, signature, digest.
      Exit 2 when FILE is not a prescription or a tool is missing.
  eps_check.py --emit fragments FILE
  eps_check.py --emit signed-info FILE
      Write the canonical fragments document / the canonical SignedInfo of
      FILE to standard output (exact bytes) and exit 0.

Needs Debian's python3 with python3-lxml, and the openssl command.
"""

import argparse
import base64
import copy
import hashlib
import os
import subprocess
import sys
import tempfile

from lxml import etree

HL7 = "urn:hl7-org:v3"
DSIG = "http://www.w3.org/2000/09/xmldsig#"
XML_NS = "http://www.w3.org/XML/1998/namespace"

DIGEST_METHODS = {
    "http://www.w3.org/2000/09/xmldsig#sha1": "sha1",
    "http://www.w3.org/2001/04/xmlenc#sha256": "sha256",
}
SIGNATURE_METHODS = {
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1": "sha1",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": "sha256",
}


class NotAPrescription(Exception):
    """The file lacks the structure the fragments need."""


def step(name):
    """An XPath step for an HL7 element (HL7 namespace or none)."""
    return "*[local-name()='%s' and (namespace-uri()='%s' or namespace-uri()='')]" % (name, HL7)


def xpath(node, *names):
    return node.xpath("/".join(step(n) for n in names))


def first(node, *names):
    found = xpath(node, *names)
    if not found:
        raise NotAPrescription("missing " + "/".join(names))
    return found[0]


def dsig(node, name):
    """All descendants of node in the XML-DSig namespace called name."""
    return node.xpath(".//ds:%s" % name, namespaces={"ds": DSIG})


def blank(text):
    return text is None or text.strip(" \t\r\n") == ""


def is_hl7_element(node, name):
    if not isinstance(node.tag, str):
        return False
    qname = etree.QName(node)
    return qname.localname == name and qname.namespace in (None, HL7)


def find_parent_prescription(tree):
    found = tree.xpath("//" + step("ParentPrescription"))
    if not found:
        raise NotAPrescription("no ParentPrescription")
    return found[0]


def prefix_of(node, namespace):
    """The prefix bound to namespace where node is (for namespaced attributes)."""
    for prefix, uri in node.nsmap.items():
        if prefix and uri == namespace:
            return prefix
    raise NotAPrescription("no prefix for namespace " + namespace)


def copy_hl7(source, parent, is_root, pruned):
    """Copy source under parent, into the HL7 namespace, without whitespace-only
    text, comments or processing instructions, leaving out children for which
    pruned(child, source) is true."""
    nsmap = {None: HL7} if is_root else {}
    for name in source.attrib:
        namespace = etree.QName(name).namespace
        if namespace and namespace != XML_NS:
            nsmap[prefix_of(source, namespace)] = namespace
    element = etree.SubElement(parent, "{%s}%s" % (HL7, etree.QName(source).localname), nsmap=nsmap)
    for name, value in source.attrib.items():
        element.set(name, value)
    last = None

    def add_text(text):
        nonlocal last
        if blank(text):
            return
        if last is None:
            element.text = (element.text or "") + text
        else:
            last.tail = (last.tail or "") + text

    add_text(source.text)
    for child in source:
        if isinstance(child.tag, str) and not pruned(child, source):
            last = copy_hl7(child, element, False, pruned)
        add_text(child.tail)
    return element


def never(child, parent):
    return False


def fragments_document(parent_prescription):
    prescription = first(parent_prescription, "pertinentInformation1", "pertinentPrescription")
    author = first(prescription, "author")
    time = first(author, "time")
    prescription_id = first(prescription, "id")
    agent = first(author, "AgentPerson")
    record_target = first(parent_prescription, "recordTarget")
    items = xpath(prescription, "pertinentInformation2", "pertinentLineItem")

    root = etree.Element("FragmentsToBeHashed")

    def fragment(*sources, pruned=never):
        holder = etree.SubElement(root, "Fragment")
        for source in sources:
            copy_hl7(source, holder, True, pruned)

    fragment(time, prescription_id)
    fragment(agent)
    fragment(record_target)
    for item in items:

        def line_item_pruning(child, parent, item=item):
            if parent is item:
                return is_hl7_element(child, "pertinentInformation4")
            return (
                is_hl7_element(child, "low")
                and is_hl7_element(parent, "repeatNumber")
                and parent.getparent() is item
            )

        fragment(item, pruned=line_item_pruning)
    return root


def exc_c14n(element):
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)


def canonical_signed_info(signed_info):
    clean = copy.deepcopy(signed_info)
    clean.tail = None
    for node in clean.iter():
        if blank(node.text):
            node.text = None
        if node is not clean and blank(node.tail):
            node.tail = None
    return exc_c14n(clean)


def signature_parts(parent_prescription):
    """(SignedInfo, SignatureValue bytes, certificate DER list) or a format failure."""
    signature_text = first(parent_prescription, "pertinentInformation1", "pertinentPrescription", "author", "signatureText")
    signed_info = dsig(signature_text, "SignedInfo")
    values = [v for v in dsig(signature_text, "SignatureValue") if not blank(v.text)]
    certificates = dsig(signature_text, "X509Certificate")
    missing = []
    if not signed_info:
        missing.append("SignedInfo")
    if not values:
        missing.append("SignatureValue")
    if not any(not blank(c.text) for c in certificates):
        missing.append("X509Certificate")
    if missing:
        return None, "missing " + ", ".join(missing)
    decode = lambda text: base64.b64decode("".join(text.split()), validate=True)
    return (signed_info[0], decode(values[0].text), [decode(c.text or "") for c in certificates]), None


def openssl_verify(hash_name, certificate_der, data, signature):
    with tempfile.TemporaryDirectory() as directory:
        def path(name, content):
            full = os.path.join(directory, name)
            with open(full, "wb") as f:
                f.write(content)
            return full

        cert = path("cert.der", certificate_der)
        pubkey = subprocess.run(
            ["openssl", "x509", "-inform", "DER", "-in", cert, "-pubkey", "-noout"],
            capture_output=True,
        )
        if pubkey.returncode != 0:
            return False, "openssl cannot read the certificate: " + pubkey.stderr.decode(errors="replace").strip()
        result = subprocess.run(
            [
                "openssl", "dgst", "-" + hash_name,
                "-verify", path("pubkey.pem", pubkey.stdout),
                "-signature", path("signature.bin", signature),
                path("signed-info.xml", data),
            ],
            capture_output=True,
        )
        output = (result.stdout + result.stderr).decode(errors="replace").strip()
        return result.returncode == 0 and "Verified OK" in output, output.splitlines()[0] if output else ""


def verify(parent_prescription):
    failures = []
    parts, problem = signature_parts(parent_prescription)
    if problem:
        return [("format", problem)]
    signed_info, signature_value, certificates = parts
    if len(certificates) != 1:
        return [("certificate", "expected one X509Certificate, found %d" % len(certificates))]

    method = signed_info.xpath("ds:SignatureMethod/@Algorithm", namespaces={"ds": DSIG})
    hash_name = SIGNATURE_METHODS.get(method[0] if method else None)
    if hash_name is None:
        failures.append(("signature", "unsupported SignatureMethod %r" % (method[0] if method else None)))
    else:
        ok, output = openssl_verify(hash_name, certificates[0], canonical_signed_info(signed_info), signature_value)
        if not ok:
            failures.append(("signature", "RSA-%s signature over the canonical SignedInfo does not verify (openssl: %s)" % (hash_name.upper(), output)))

    digest_method = signed_info.xpath("ds:Reference/ds:DigestMethod/@Algorithm", namespaces={"ds": DSIG})
    digest_name = DIGEST_METHODS.get(digest_method[0] if digest_method else None)
    digest_value = signed_info.xpath("ds:Reference/ds:DigestValue/text()", namespaces={"ds": DSIG})
    if digest_name is None:
        failures.append(("digest", "unsupported DigestMethod %r" % (digest_method[0] if digest_method else None)))
    elif not digest_value:
        failures.append(("digest", "no DigestValue"))
    else:
        expected = base64.b64decode("".join(digest_value[0].split()))
        actual = hashlib.new(digest_name, exc_c14n(fragments_document(parent_prescription))).digest()
        if actual != expected:
            failures.append((
                "digest",
                "the fragments hash to %s but DigestValue is %s" % (
                    base64.b64encode(actual).decode(), base64.b64encode(expected).decode()),
            ))
    return failures


def main():
    parser = argparse.ArgumentParser(description="Independent EPS R2 prescription-signature check.")
    parser.add_argument("--emit", choices=["fragments", "signed-info"])
    parser.add_argument("file")
    args = parser.parse_args()
    try:
        tree = etree.parse(args.file, etree.XMLParser(resolve_entities=False, no_network=True))
        parent_prescription = find_parent_prescription(tree)
        if args.emit == "fragments":
            sys.stdout.buffer.write(exc_c14n(fragments_document(parent_prescription)))
            return 0
        if args.emit == "signed-info":
            signed_info = dsig(parent_prescription, "SignedInfo")
            if not signed_info:
                raise NotAPrescription("no SignedInfo")
            sys.stdout.buffer.write(canonical_signed_info(signed_info[0]))
            return 0
        failures = verify(parent_prescription)
    except (NotAPrescription, etree.XMLSyntaxError, ValueError) as error:
        print("ERROR %s: %s" % (args.file, error))
        return 2
    except FileNotFoundError as error:
        print("ERROR: %s" % error)
        return 2
    if not failures:
        print("OK")
        return 0
    for check, why in failures:
        print("FAIL %s: %s" % (check, why))
    return 1


if __name__ == "__main__":
    sys.exit(main())
