"""Validators of numeric identifiers: payment cards, IBAN, US SSN, UK NINO, DE Steuer-ID, FR INSEE.

Each validator takes the matched text (separators allowed) and returns a bool.
The check-digit arithmetic and the IBAN country registry come from
`python-stdnum <https://arthurdejong.org/python-stdnum/>`_ (maintained, with the
registries kept current) rather than from hand-written tables; what stdnum
lacks (card IIN lengths, NINO prefix rules) is written here with its source.
"""

from __future__ import annotations

import re

from stdnum import iban as _iban
from stdnum import luhn as _luhn
from stdnum.de import idnr as _de_idnr
from stdnum.fr import nir as _fr_nir
from stdnum.us import ssn as _us_ssn

__all__ = [
    "CARD_BRANDS",
    "card_brand",
    "is_de_steuer_id",
    "is_fr_insee",
    "is_iban",
    "is_luhn",
    "is_mod97",
    "is_payment_card",
    "is_uk_nino",
    "is_us_ssn",
]

_SEPARATORS = re.compile(r"[\s\-./]")

# Issuer identification number ranges and the card lengths each brand issues
# (ISO/IEC 7812 registrations as published by the brands; inclusive ranges of
# prefixes of equal length). A Luhn-valid number whose prefix/length pair is
# not here (a 17-digit "Visa", a 16-digit "Amex") is not a card number.
CARD_BRANDS: tuple[tuple[str, tuple[tuple[str, str], ...], tuple[int, ...]], ...] = (
    ("visa", (("4", "4"),), (13, 16, 19)),
    ("mastercard", (("51", "55"), ("2221", "2720")), (16,)),
    ("amex", (("34", "34"), ("37", "37")), (15,)),
    ("discover", (("6011", "6011"), ("644", "649"), ("65", "65"), ("622126", "622925")), (16, 17, 18, 19)),
    ("diners", (("300", "305"), ("3095", "3095"), ("36", "36"), ("38", "39")), (14, 15, 16, 17, 18, 19)),
    # 3500-3527 is unassigned but generators (faker) use all of 35xx for JCB.
    ("jcb", (("35", "35"),), (16, 17, 18, 19)),
    ("jcb15", (("2131", "2131"), ("1800", "1800")), (15,)),
    ("unionpay", (("62", "62"), ("81", "81")), (16, 17, 18, 19)),
    ("mir", (("2200", "2204"),), (16, 17, 18, 19)),
    ("maestro", (("50", "50"), ("56", "69")), (13, 14, 15, 16, 17, 18, 19)),
    ("rupay", (("60", "60"), ("82", "82"), ("508", "508")), (16,)),
    ("troy", (("9792", "9792"),), (16,)),
)


def _digits(text: str) -> str:
    return _SEPARATORS.sub("", text)


def is_luhn(text: str) -> bool:
    """True when the digits of ``text`` (separators ignored) pass the Luhn (mod 10) check.

    Example:
        >>> is_luhn("4111 1111 1111 1111"), is_luhn("4111 1111 1111 1112")
        (True, False)
    """
    digits = _digits(text)
    return digits.isdigit() and digits.isascii() and _luhn.is_valid(digits)


def card_brand(text: str) -> str | None:
    """The brand whose IIN range and card lengths fit ``text``'s digits, else None (no Luhn check).

    Example:
        >>> card_brand("378282246310005"), card_brand("4111111111111111"), card_brand("41111111111111111")
        ('amex', 'visa', None)
    """
    digits = _digits(text)
    if not (digits.isascii() and digits.isdigit()):
        return None
    for brand, ranges, lengths in CARD_BRANDS:
        if len(digits) not in lengths:
            continue
        for low, high in ranges:
            if low <= digits[: len(low)] <= high:
                return brand
    return None


def is_payment_card(text: str) -> bool:
    """A payment card number: 13-19 digits, Luhn-valid, length allowed for its IIN brand.

    Example:
        >>> is_payment_card("5555 5555 5555 4444"), is_payment_card("5555 5555 5555 4445")
        (True, False)
        >>> is_payment_card("4111111111111111 1")  # Luhn-valid? no matter: 17 digits is no Visa length
        False
    """
    return card_brand(text) is not None and is_luhn(text)


def is_mod97(text: str) -> bool:
    """ISO 7064 MOD 97-10 over an IBAN-shaped string (country and check digits moved to the end).

    Example:
        >>> is_mod97("GB82 WEST 1234 5698 7654 32"), is_mod97("GB82 WEST 1234 5698 7654 33")
        (True, False)
    """
    compact = _digits(text).upper()
    if len(compact) < 5 or not compact.isalnum() or not compact.isascii():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def is_iban(text: str) -> bool:
    """An IBAN (ISO 13616): mod-97 check digits and the BBAN length/structure registered for its country.

    Example:
        >>> is_iban("DE89 3704 0044 0532 0130 00"), is_iban("DE89 3704 0044 0532 0130 0")
        (True, False)
    """
    compact = _digits(text).upper()
    if not (compact.isascii() and compact.isalnum() and compact[:2].isalpha() and compact[2:4].isdigit()):
        return False
    try:
        # check_country=False: the ISO 13616 rules (registry structure and mod-97), not
        # each country's own bank-code checks, which test data generators do not follow.
        _iban.validate(compact, check_country=False)
    except Exception:  # stdnum raises ValidationError subclasses, and KeyError-like for odd input
        return False
    return True


def is_us_ssn(text: str) -> bool:
    """A US Social Security Number: area not 000, 666 or 9xx; group not 00; serial not 0000; not a known misused one.

    Example:
        >>> is_us_ssn("536-90-4399"), is_us_ssn("666-90-4399"), is_us_ssn("536-00-4399"), is_us_ssn("078-05-1120")
        (True, False, False, False)
    """
    compact = re.sub(r"[\s\-]", "", text)
    return len(compact) == 9 and compact.isascii() and _us_ssn.is_valid(compact)


# HMRC National Insurance number rules (HMRC NIM39110): no D, F, I, Q, U or V in
# the prefix, no O as its second letter, seven administrative prefixes never
# issued, six digits, a suffix A-D. NINOs carry no check digit.
_NINO = re.compile(r"(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\d{6}[A-D]")


def is_uk_nino(text: str) -> bool:
    """A UK National Insurance number (prefix rules of HMRC; NINOs have no check digit).

    Example:
        >>> is_uk_nino("AB 12 34 56 C"), is_uk_nino("GB 12 34 56 C"), is_uk_nino("AB 12 34 56 E")
        (True, False, False)
    """
    return _NINO.fullmatch(_digits(text).upper()) is not None


def is_de_steuer_id(text: str) -> bool:
    """A German tax ID (Steuerliche Identifikationsnummer): 11 digits, digit-repetition rule, ISO 7064 MOD 11,10.

    Example:
        >>> is_de_steuer_id("36 574 261 809"), is_de_steuer_id("36 574 261 890")
        (True, False)
    """
    compact = _digits(text)
    return compact.isascii() and _de_idnr.is_valid(compact)


def is_fr_insee(text: str) -> bool:
    """A French NIR/INSEE number: 15 characters (Corsica 2A/2B), key = 97 - (first 13 digits mod 97).

    Example:
        >>> is_fr_insee("2 95 10 99 126 111 93"), is_fr_insee("2 95 10 99 126 111 94")
        (True, False)
    """
    compact = re.sub(r"[\s.]", "", text).upper()
    if len(compact) != 15 or not compact.isascii():
        return False
    # stdnum checks the key only; the first digit (sex/status) and the month are checked here.
    if compact[0] not in "12378" or not (compact[3:5].isdigit() and (1 <= int(compact[3:5]) <= 12 or 20 <= int(compact[3:5]) <= 99)):
        return False
    return _fr_nir.is_valid(compact)
