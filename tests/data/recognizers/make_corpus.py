"""Generate corpus.jsonl: identifiers the recognizers must find, and as many near-misses they must not.

Deterministic (fixed seeds; the faker, phonenumbers, python-stdnum and
cryptography versions are recorded in the first line). Values come from faker,
from the libraries' own test vectors (phonenumbers' example numbers, the card
networks' published test numbers, stdnum's check-digit functions) and from
generators written to each format's published rules. Every near-miss is checked
here against the independent library validators (stdnum, phonenumbers,
ipaddress), never against pii_frames itself, so it really is no valid
identifier of any kind the recognizers know.

Run: ``python tests/data/recognizers/make_corpus.py [OUT]`` (default: corpus.jsonl beside this file).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import random
import string
import struct
import sys
import zlib
from importlib.metadata import version
from pathlib import Path

import phonenumbers
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from faker import Faker
from stdnum import iban as std_iban
from stdnum import luhn
from stdnum.de import idnr
from stdnum.fr import nir
from stdnum.iso7064 import mod_11_10
from stdnum.us import ssn as std_ssn

SEED = 17
B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
ALNUM = string.ascii_letters + string.digits
IBAN_LOCALES = ["de_DE", "fr_FR", "en_GB", "es_ES", "it_IT", "nl_NL", "pl_PL", "pt_PT", "fi_FI", "no_NO", "de_AT", "de_CH", "da_DK", "cs_CZ", "en_IE", "tr_TR"]
PHONE_REGIONS = ["US", "GB", "DE", "FR", "IN", "BR", "JP", "AU", "CA", "ES", "IT", "NL", "MX", "ZA", "SE"]
# Published test card numbers of the networks (Stripe/Adyen/PayPal test documentation).
TEST_CARDS = ["4242424242424242", "4000056655665556", "5555555555554444", "2223003122003222", "5200828282828210",
              "5105105105105100", "378282246310005", "371449635398431", "6011111111111117", "6011000990139424",
              "3056930009020004", "36227206271667", "3566002020360505", "6200000000000005"]
CARD_TYPES = ["visa16", "visa13", "visa19", "mastercard", "amex", "discover", "diners", "jcb15", "jcb16"]
NEGATIVE_PHONE_WORDS = ["Order", "Invoice", "Tracking number", "Ticket", "Reference", "Transaction", "Booking", "Receipt"]

rng = random.Random(SEED)
fake = Faker("en_US")
fake.seed_instance(SEED)


def rand(alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def person() -> str:
    return fake.first_name()


# --- independent "is this valid as anything?" check for near-misses ---------------------------
def valid_anywhere(value: str, luhn_ok: bool = False) -> bool:
    """``luhn_ok``: a Luhn-valid number is fine (the near-miss is a length no card brand issues)."""
    compact = "".join(ch for ch in value if ch.isalnum())
    checks = [
        not luhn_ok and compact.isdigit() and 13 <= len(compact) <= 19 and luhn.is_valid(compact),
        std_iban.is_valid(compact),
        len(compact) == 9 and compact.isdigit() and std_ssn.is_valid(compact),
        # stdnum checks the NIR key only; months 13-19 are never issued (INSEE).
        len(compact) == 15 and nir.is_valid(compact) and not 13 <= int(compact[3:5]) <= 19,
    ]
    if any(checks):
        return True
    for region in ("US", None):
        try:
            matches = list(phonenumbers.PhoneNumberMatcher(value, region or "US"))
        except Exception:
            matches = []
        if matches:
            return True
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False


records: list[dict] = []


def add(kind: str, category: str, label: str, template: str, value: str, luhn_ok: bool = False) -> None:
    """``template`` has one ``{}`` where ``value`` goes."""
    if kind == "near_miss" and category not in ("phone", "secret", "email", "url", "ip") and valid_anywhere(value, luhn_ok):
        raise AssertionError(f"near-miss {value!r} is valid after all")
    before, after = template.split("{}")
    records.append({"kind": kind, "category": category, "label": label, "text": before + value + after,
                    "value": value, "start": len(before), "end": len(before) + len(value)})


def spaced(digits: str, groups: list[int], sep: str) -> str:
    out, i = [], 0
    for g in groups:
        out.append(digits[i:i + g])
        i += g
    if i < len(digits):
        out.append(digits[i:])
    return sep.join(out)


def card_format(number: str) -> str:
    style = rng.randrange(3)
    if style == 0:
        return number
    sep = " " if style == 1 else "-"
    return spaced(number, [4, 6, 5] if len(number) == 15 and number[:2] in ("34", "37") else [4, 4, 4, 4], sep)


CARD_TEMPLATES = ["{n} paid with card {{}} yesterday.", "Please charge {{}} for {n}'s order.",
                  "Card number: {{}} (exp 09/27), holder {n}.", "{n} wrote: my Visa is {{}}, thanks"]


def cards() -> None:
    numbers = list(TEST_CARDS)
    for card_type in CARD_TYPES:
        numbers += [fake.credit_card_number(card_type) for _ in range(4)]
    for number in numbers:
        add("valid", "payment_card", "account_number", rng.choice(CARD_TEMPLATES).format(n=person()), card_format(number))
    for i, number in enumerate(numbers):
        while True:
            if i % 2 == 0:  # one digit off: the Luhn check fails
                pos = rng.randrange(len(number))
                digit = str((int(number[pos]) + rng.randrange(1, 10)) % 10)
                bad = number[:pos] + digit + number[pos + 1:]
            else:  # Luhn-valid, but a length the brand never issues
                prefix, length = rng.choice([("4", 17), ("4", 14), ("4", 15), ("37", 16), ("34", 14), ("51", 15), ("55", 17)])
                body = prefix + rand(string.digits, length - len(prefix) - 1)
                bad = body + luhn.calc_check_digit(body)
            shown = card_format(bad)
            if not valid_anywhere(shown, luhn_ok=i % 2 == 1):
                break
        add("near_miss", "payment_card", "account_number", rng.choice(CARD_TEMPLATES).format(n=person()), shown, i % 2 == 1)


def ibans() -> None:
    templates = ["Transfer to IBAN {} by Friday.", "{n}'s account: {}.", "Bank details — IBAN: {}, BIC on file.",
                 "Refund sent to {} for {n}"]
    values = []
    for locale in IBAN_LOCALES:
        f = Faker(locale)
        f.seed_instance(SEED)
        values += [f.iban() for _ in range(3)]
    for value in values:
        shown = std_iban.format(value) if rng.random() < 0.5 else value
        add("valid", "iban", "account_number", rng.choice(templates).replace("{n}", person()), shown)
    for i, value in enumerate(values):
        if i % 2 == 0:  # one character changed: mod-97 fails
            pos = rng.randrange(4, len(value))
            alphabet = string.digits if value[pos].isdigit() else string.ascii_uppercase
            bad = value[:pos] + rng.choice([c for c in alphabet if c != value[pos]]) + value[pos + 1:]
        else:  # a BBAN character dropped and the check digits recomputed: mod-97 passes, the length is wrong
            pos = rng.randrange(4, len(value))
            stub = value[:2] + "00" + value[4:pos] + value[pos + 1:]
            bad = value[:2] + std_iban.calc_check_digits(stub) + stub[4:]
        shown = std_iban.format(bad) if rng.random() < 0.5 else bad
        add("near_miss", "iban", "account_number", rng.choice(templates).replace("{n}", person()), shown)


def ssns() -> None:
    templates = ["{n}'s SSN is {}.", "Social Security number {} on the W-2.", "SSN: {} (verify before payroll)",
                 "Employee {n}, ssn {}"]
    for i in range(40):
        value = fake.ssn()
        if i % 4 == 1:
            value = value.replace("-", " ")
        elif i % 4 == 3:
            value = value.replace("-", "")
        add("valid", "us_ssn", "account_number", rng.choice(templates).replace("{n}", person()), value)
    bad_values = []
    while len(bad_values) < 40:
        area, group, serial = rng.randint(1, 899), rng.randint(1, 99), rng.randint(1, 9999)
        flaw = len(bad_values) % 5
        if flaw == 0:
            area = rng.choice([0, 666, rng.randint(900, 999)])
        elif flaw == 1:
            group = 0
        elif flaw == 2:
            serial = 0
        value = f"{area:03d}-{group:02d}-{serial:04d}"
        if flaw == 3:
            value = value + str(rng.randrange(10))  # one digit too many
        elif flaw == 4:
            value = value[:-1]  # one digit short
        if not valid_anywhere(value):
            bad_values.append(value)
    for value in bad_values:
        add("near_miss", "us_ssn", "account_number", rng.choice(templates).replace("{n}", person()), value)


def phones() -> None:
    templates = ["Call {n} at {} after 5pm.", "Phone: {}", "You can reach me on {} (mobile).", "{n}'s office line is {}."]
    numbers = []
    for region in PHONE_REGIONS:
        for kind in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE):
            numbers.append((region, phonenumbers.example_number_for_type(region, kind)))
    valid = []
    for region, number in numbers:
        valid.append(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL))
        style = phonenumbers.PhoneNumberFormat.NATIONAL if region == "US" else phonenumbers.PhoneNumberFormat.E164
        valid.append(phonenumbers.format_number(number, style))
    for value in valid:
        add("valid", "phone", "private_phone", rng.choice(templates).replace("{n}", person()), value)
    for i, (region, number) in enumerate(numbers):
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        # An order number that is a valid phone number by its digits alone.
        national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL) if region == "US" else e164
        digits = "".join(c for c in national if c.isdigit() or c == "+")
        add("near_miss", "phone", "private_phone", f"{NEGATIVE_PHONE_WORDS[i % len(NEGATIVE_PHONE_WORDS)]} #{{}} has shipped.", digits)
        # A number one digit short or long for its region.
        for cut in [e164[:-k] for k in range(1, 6)] + [e164 + "0" * k for k in range(1, 8)]:
            if not phonenumbers.is_valid_number(phonenumbers.parse(cut, None)) and not list(phonenumbers.PhoneNumberMatcher(cut, "US")):
                add("near_miss", "phone", "private_phone", rng.choice(templates).replace("{n}", person()), cut)
                break
        else:
            raise AssertionError(f"no invalid length variant of {e164}")


def crc_token(prefix: str) -> str:
    body = rand(ALNUM, 30)
    n, crc = zlib.crc32(body.encode()), ""
    while n:
        n, r = divmod(n, 62)
        crc = B62[r] + crc
    return prefix + body + crc.rjust(6, "0")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(header: dict, payload: dict) -> str:
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())
    signature = hmac.new(rand(ALNUM, 32).encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def _prime(bits: int) -> int:
    while True:
        n = rng.getrandbits(bits) | (1 << (bits - 1)) | 1
        if all(pow(a, n - 1, n) == 1 for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)):
            d, s = n - 1, 0
            while d % 2 == 0:
                d, s = d // 2, s + 1
            if all(_mr(n, a, d, s) for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)):
                return n


def _mr(n: int, a: int, d: int, s: int) -> bool:
    x = pow(a, d, n)
    if x in (1, n - 1):
        return True
    for _ in range(s - 1):
        x = pow(x, 2, n)
        if x == n - 1:
            return True
    return False


def rsa_pem() -> str:
    e = 65537
    while True:
        p, q = _prime(512), _prime(512)
        phi = (p - 1) * (q - 1)
        if p != q and phi % e:
            break
    d = pow(e, -1, phi)
    numbers = rsa.RSAPrivateNumbers(p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q),
                                    rsa.RSAPublicNumbers(e, p * q))
    key = numbers.private_key(unsafe_skip_rsa_key_validation=True)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()


def openssh_pem() -> str:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    lines = pem.decode().strip().splitlines()
    blob = bytearray(base64.b64decode("".join(lines[1:-1])))
    # The format's two random "checkint" words would make the file differ on every run; fix them from the seed.
    offset = len(b"openssh-key-v1\0")
    for _ in range(3):  # ciphername, kdfname, kdfoptions
        offset += 4 + struct.unpack(">I", blob[offset:offset + 4])[0]
    offset += 4  # number of keys
    offset += 4 + struct.unpack(">I", blob[offset:offset + 4])[0]  # public key
    offset += 4  # length of the private section
    check = rng.randbytes(4)
    blob[offset:offset + 8] = check + check
    body = base64.b64encode(bytes(blob)).decode()
    return "\n".join([lines[0], *(body[i:i + 70] for i in range(0, len(body), 70)), lines[-1]])


def ec_pem(fmt: serialization.PrivateFormat) -> str:
    key = ec.derive_private_key(rng.getrandbits(250) + 1, ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode().strip()


def secrets() -> None:
    sentence = ["Rotate this key: {} (leaked in the build log)", "export TOKEN={}", "Authorization: Bearer {}",
                "{n} pasted {} into the chat.", "config: key = {} # do not commit"]
    tok: list[str] = []
    for _ in range(5):
        tok.append("AKIA" + rand("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16))
        tok.append(crc_token(rng.choice(["ghp_", "gho_", "ghs_", "ghu_", "ghr_"])))
        tok.append("github_pat_" + rand(ALNUM, 22) + "_" + rand(ALNUM, 59))
        tok.append("glpat-" + rand(ALNUM + "_-", 20))
        tok.append("xoxb-" + rand(string.digits, 12) + "-" + rand(string.digits, 13) + "-" + rand(ALNUM, 24))
        tok.append("sk_live_" + rand(ALNUM, 24 + rng.randrange(76)))
        tok.append("sk-proj-" + rand(ALNUM + "_-", 40) + "T3BlbkFJ" + rand(ALNUM + "_-", 40))
        tok.append("sk-" + rand(ALNUM, 20) + "T3BlbkFJ" + rand(ALNUM, 20))
        tok.append(jwt({"alg": "HS256", "typ": "JWT"}, {"sub": fake.user_name(), "name": fake.name(), "iat": rng.randrange(10**9, 2 * 10**9)}))
    for value in tok:
        add("valid", "secret", "secret", rng.choice(sentence).replace("{n}", person()), value)
    hook = "https://hooks.slack.com/services/T" + rand(string.ascii_uppercase + string.digits, 8) + "/B" + rand(string.ascii_uppercase + string.digits, 8) + "/" + rand(ALNUM, 24)
    add("valid", "secret", "secret", "Post alerts to {} please", hook)
    for pem in [rsa_pem().strip(), rsa_pem().strip(), openssh_pem(), ec_pem(serialization.PrivateFormat.PKCS8),
                ec_pem(serialization.PrivateFormat.TraditionalOpenSSL)]:
        add("valid", "secret", "secret", "key file contents:\n{}\nend of paste", pem)
    password_lines = ["db.password={}", "DB_PASSWORD=\"{}\"", "2024-05-01 12:00:03 INFO login user=admin password={} ok",
                      "{{\"username\": \"svc\", \"password\": \"{}\"}}", "api_key: {}", "client_secret = '{}'"]
    for i in range(12):
        value = fake.password(length=12 + rng.randrange(8), special_chars=False) if i % 2 else rand(ALNUM, 16) + "!#"
        add("valid", "secret", "secret", password_lines[i % len(password_lines)], value)

    bad: list[tuple[str, str]] = []
    for _ in range(5):
        good = crc_token("ghp_")
        bad.append((rng.choice(sentence), good[:-1] + rng.choice([c for c in B62 if c != good[-1]])))  # CRC broken
        bad.append((rng.choice(sentence), "AKIA" + rand("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 15)))  # too short
        bad.append((rng.choice(sentence), "AKIA" + rand("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 12) + "0189"))  # not base32
        bad.append((rng.choice(sentence), "glpat-" + "x" * 20))
        bad.append((rng.choice(sentence), "xoxb-" + rand(string.digits, 5) + "-" + rand(ALNUM, 24)))  # wrong shape
        bad.append((rng.choice(sentence), "sk_live_" + "x" * 24))
        bad.append((rng.choice(sentence), "sk-" + rand(ALNUM, 48)))  # no OpenAI marker
        bad.append((rng.choice(sentence), b64url(b'{"typ":"JWT"}') + "." + b64url(b'{"sub":"1"}') + "." + rand(ALNUM, 43)))  # no alg
        bad.append((rng.choice(sentence), b64url(b'{"alg":"HS256",') + "." + b64url(b'{"sub":"1"}') + "." + rand(ALNUM, 43)))  # not JSON
    bad.append(("Slack says {} is revoked", "xoxb-000000000000-0000000000000-xxxxxxxxxxxxxxxxxxxxxxxx"))
    bad += [("key file contents:\n{}\nend of paste", "-----BEGIN PRIVATE KEY-----\n<paste your key here>\n-----END PRIVATE KEY-----"),
            ("key file contents:\n{}\nend of paste", "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----"),
            ("key file contents:\n{}\nend of paste", ec_pem(serialization.PrivateFormat.PKCS8).replace("PRIVATE", "PUBLIC")),
            ("key file contents:\n{}\nend of paste", "-----BEGIN OPENSSH PRIVATE KEY-----\nREDACTED\n-----END OPENSSH PRIVATE KEY-----"),
            ("key file contents:\n{}\nend of paste", "-----BEGIN EC PRIVATE KEY-----\n" + "*" * 64 + "\n-----END EC PRIVATE KEY-----")]
    placeholders = ["********", "${DB_PASSWORD}", "<password>", "null", "{{ vault_secret }}", "xxxxxxxx",
                    "%(password)s", "$SECRET_KEY", "changeit", "[REDACTED]", "none", "••••••"]
    for i, value in enumerate(placeholders):
        bad.append((password_lines[i % len(password_lines)], value))
    for template, value in bad:
        # No "TOKEN=" here: an assignment to a secret-named key is a secret whatever its format.
        template = template.replace("export TOKEN={}", "the docs show {} as the format")
        add("near_miss", "secret", "secret", template.replace("{n}", person()), value)


def emails() -> None:
    templates = ["Write to {} for details.", "From: {n} <{}>", "cc {} and me", "{n}'s address is {}."]
    values = [fake.email() for _ in range(14)] + [fake.free_email() for _ in range(6)]
    values += ["josé.garcía@correo.es", "müller@bücher.de", "info@пример.рф", "user+tag@xn--bcher-kva.de",
               "o'brien@example.ie", "李雷@例子.中国"]
    for value in values:
        add("valid", "email", "private_email", rng.choice(templates).replace("{n}", person()), value)
    bad = ["root@localhost", "jane.doe@example", "ops@exa_mple.com", "a@-example.com", "name(at)example.com",
           "bob at example dot com", "@example.com", "admin@", "user@example.c", "x@y", "first..last@example.com"]
    while len(bad) < len(values):
        bad.append(fake.user_name() + "@" + fake.domain_word())  # no top-level domain
    for value in bad:
        add("near_miss", "email", "private_email", rng.choice(templates).replace("{n}", person()), value)


def urls() -> None:
    templates = ["See {} for the report.", "Link: {}", "{n} shared {} in Slack.", "Open {} (login required)"]
    values = [fake.url() + fake.uri_path() for _ in range(12)] + [fake.uri() for _ in range(6)]
    values += ["https://bücher.de/suche?q=1", "www.example.org/team/" + fake.user_name(), "http://10.1.2.3:8080/admin",
               "ftp://files.example.com/pub/x.tar.gz"]
    for value in values:
        add("valid", "url", "private_url", rng.choice(templates).replace("{n}", person()), value)
    bad = ["http://localhost:8080/", "https://exa_mple/", "https://999.1.1.1/", "http://-bad-.com/", "htp//example.com",
           "https://", "http://.com/", "www.", "https://intranet/", "http://example.c/x", "hxxp://example[.]com"]
    while len(bad) < len(values):
        bad.append("https://" + fake.domain_word() + "/" + fake.uri_path())
    for value in bad:
        add("near_miss", "url", "private_url", rng.choice(templates).replace("{n}", person()), value)


def ips() -> None:
    templates = ["Login from {} was blocked.", "host={} port=22", "{n} connected via {}.", "client ip: {}"]
    values = [fake.ipv4() for _ in range(12)] + [fake.ipv4_private() for _ in range(4)] + [fake.ipv6() for _ in range(8)]
    values += ["2001:db8::8a2e:370:7334", "fe80::1ff:fe23:4567:890a", "::ffff:192.0.2.128", "10.0.0.1"]
    for value in values:
        add("valid", "ip", "private_url", rng.choice(templates).replace("{n}", person()), value)
    bad = ["999.12.1.1", "256.256.256.256", "1.2.3", "01.02.03.04", "12:30:45", "2001:db8:::1", "1:2:3:4:5:6:7:8:9",
           "gggg::1", "00:1A:2B:3C:4D:5E"]
    while len(bad) < len(values):
        bad.append(f"version {rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 20)}.{rng.randint(0, 200)}")
    for value in bad:
        template = "Upgraded to {} today." if value.startswith("version") else rng.choice(templates).replace("{n}", person())
        add("near_miss", "ip", "private_url", template, value)


NINO_FIRST = "ABCEGHJKLMNOPRSTWXYZ"
NINO_SECOND = "ABCEGHJKLMNPRSTWXYZ"


def ninos() -> None:
    templates = ["National Insurance number {} for {n}.", "NINO: {}", "{n} (NI {}) starts Monday."]
    values = []
    while len(values) < 20:
        prefix = rng.choice(NINO_FIRST) + rng.choice(NINO_SECOND)
        if prefix in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ"):
            continue
        digits = rand(string.digits, 6)
        value = prefix + digits + rng.choice("ABCD")
        values.append(value if len(values) % 2 else f"{prefix} {digits[:2]} {digits[2:4]} {digits[4:]} {value[-1]}")
    for value in values:
        add("valid", "uk_nino", "account_number", rng.choice(templates).replace("{n}", person()), value)
    bad = []
    for i in range(20):
        digits = rand(string.digits, 6)
        flaw = i % 4
        if flaw == 0:
            bad.append(rng.choice("DFIQUV") + rng.choice(NINO_SECOND) + digits + "A")
        elif flaw == 1:
            bad.append(rng.choice(["BG", "GB", "NK", "TN", "ZZ"]) + digits + "B")
        elif flaw == 2:
            bad.append(rng.choice(NINO_FIRST[:10]) + rng.choice(NINO_SECOND[:10]) + digits + rng.choice("EFGXYZ"))
        else:
            bad.append(rng.choice(NINO_FIRST[:10]) + rng.choice(NINO_SECOND[:10]) + digits[:5] + "C")
    for value in bad:
        add("near_miss", "uk_nino", "account_number", rng.choice(templates).replace("{n}", person()), value)


def steuer_ids() -> None:
    templates = ["Steuer-ID: {}", "Ihre Steuerliche Identifikationsnummer lautet {}.", "{n}, IdNr {} (bitte prüfen)"]
    values = []
    while len(values) < 20:
        first10 = str(rng.randint(1, 9)) + rand(string.digits, 9)
        candidate = first10 + mod_11_10.calc_check_digit(first10)
        if idnr.is_valid(candidate):
            values.append(candidate if len(values) % 2 else idnr.format(candidate))
    for value in values:
        add("valid", "de_steuer_id", "account_number", rng.choice(templates).replace("{n}", person()), value)
    for i, value in enumerate(values):
        compact = value.replace(" ", "")
        if i % 2 == 0:
            bad = compact[:-1] + str((int(compact[-1]) + 1) % 10)  # check digit off by one
        else:
            bad = compact[:-1]  # ten digits
        assert not idnr.is_valid(bad)
        if valid_anywhere(bad):  # ten digits can be a valid phone number; such a near-miss tests nothing
            bad = bad[0] + bad[2:] + "0" if i % 2 else bad
            bad = bad if not valid_anywhere(bad) else "0" + bad[1:]
        add("near_miss", "de_steuer_id", "account_number", rng.choice(templates).replace("{n}", person()), bad)


def insee() -> None:
    templates = ["N° de sécurité sociale : {}", "INSEE {} pour {n}.", "{n} — NIR {}"]
    values = []
    while len(values) < 20:
        body = str(rng.choice([1, 2])) + f"{rng.randint(40, 99):02d}{rng.randint(1, 12):02d}"
        body += rng.choice([f"{rng.randint(1, 95):02d}", "2A", "2B"]) + f"{rng.randint(1, 990):03d}{rng.randint(1, 999):03d}"
        value = body + nir.calc_check_digits(body + "00")
        assert nir.is_valid(value)
        values.append(value if len(values) % 2 else nir.format(value))
    for value in values:
        add("valid", "fr_insee", "account_number", rng.choice(templates).replace("{n}", person()), value)
    for i, value in enumerate(values):
        compact = value.replace(" ", "")
        bad = compact[:-1] + str((int(compact[-1]) + 1) % 10) if i % 2 == 0 else compact[:3] + "13" + compact[5:]
        if i % 2 == 1:  # month 13 does not exist; the key is recomputed so only the month is wrong
            bad = bad[:13] + nir.calc_check_digits(bad[:13] + "00")
        add("near_miss", "fr_insee", "account_number", rng.choice(templates).replace("{n}", person()), bad)


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("corpus.jsonl")
    for step in (cards, ibans, ssns, phones, secrets, emails, urls, ips, ninos, steuer_ids, insee):
        step()
    meta = {"meta": {"seed": SEED, **{name: version(name) for name in ("faker", "phonenumbers", "python-stdnum", "cryptography")}}}
    with out.open("w", encoding="utf-8") as fh:
        fh.write(json.dumps(meta, ensure_ascii=False) + "\n")
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    counts: dict[tuple[str, str], int] = {}
    for record in records:
        counts[record["category"], record["kind"]] = counts.get((record["category"], record["kind"]), 0) + 1
    print(f"wrote {len(records)} records to {out}: " + ", ".join(f"{c}/{k}={n}" for (c, k), n in sorted(counts.items())))


if __name__ == "__main__":
    main()
