"""The built-in recognizers: each an opf label, a candidate regex and a validator.

Order is priority: where two built-ins match at the same position, the first
whose validator accepts wins (secrets before URLs, IBANs before cards, cards
before phone numbers). IP addresses are reported as ``private_url``: opf has no
network-address label, and an address is a locator like a URL.
"""

from __future__ import annotations

from .custom import Recognizer

__all__ = ["BUILTIN_NAMES", "BUILTINS", "PHONE_CONTEXT", "TRIGGERS", "builtin"]

# Words that make a digit run a phone number (raise), or an order/reference number (lower below 0.5).
PHONE_CONTEXT: dict[str, float] = {
    **dict.fromkeys(
        ("phone", "tel", "telephone", "call", "mobile", "cell", "fax", "whatsapp", "contact", "reach", "sms",
         "text", "dial", "téléphone", "telefon", "handy", "móvil", "cellulare"), 0.15),
    **dict.fromkeys(
        ("order", "invoice", "ref", "reference", "tracking", "ticket", "case", "po", "sku", "serial", "account",
         "transaction", "receipt", "booking", "confirmation", "bestellung", "commande", "facture", "rechnung",
         "version", "build"), -0.6),
}

_SECRET_KEYS = (
    r"password|passwd|pwd|passphrase|secret|client[_-]?secret|api[_-]?key|apikey|access[_-]?token|auth[_-]?token"
    r"|refresh[_-]?token|token|secret[_-]?key|aws_secret_access_key|private[_-]?key|db[_-]?pass(?:word)?"
)

BUILTINS: tuple[Recognizer, ...] = (
    # --- secrets -------------------------------------------------------------------------
    Recognizer(
        name="pem_private_key", label="secret", validator="pem_private_key", score=0.99,
        regex=r"-----BEGIN (?P<kind>(?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?)-----"
              r"[\s\S]{16,20000}?-----END (?P=kind)-----",
    ),
    Recognizer(
        name="jwt", label="secret", validator="jwt", score=0.95,
        regex=r"(?<![\w-])eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*(?![\w-])",
    ),
    Recognizer(
        name="aws_access_key", label="secret", validator="aws_access_key", score=0.95,
        regex=r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA|ASCA)[A-Z2-7]{16}(?![A-Za-z0-9])",
    ),
    Recognizer(
        name="github_token", label="secret", validator="github_token", score=0.99,
        regex=r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36}|npm_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59})(?![A-Za-z0-9_])",
    ),
    Recognizer(
        name="gitlab_token", label="secret", validator="token", score=0.95,
        regex=r"(?<![\w-])(?:glpat|gldt|glrt|glptt|glcbt|glsoat|glffct|glimt|glagent|gloas)-[A-Za-z0-9_-]{20,64}(?![\w-])",
    ),
    Recognizer(
        name="slack_token", label="secret", validator="token", score=0.95,
        regex=r"(?<![\w-])(?:xox[abposr]-(?:\d{8,14}-){1,3}[A-Za-z0-9]{24,48}|xapp-\d-[A-Z0-9]{8,14}-\d{8,14}-[a-f0-9]{32,80})(?![\w-])",
    ),
    Recognizer(
        name="slack_webhook", label="secret", validator="token", score=0.95,
        regex=r"https://hooks\.slack\.com/(?:services|workflows|triggers)/T[A-Z0-9]{8,12}/[A-Z0-9]{8,12}/[A-Za-z0-9]{20,40}(?![\w/])",
    ),
    Recognizer(
        name="stripe_key", label="secret", validator="token", score=0.95,
        regex=r"(?<![\w-])(?:(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{24,247}|whsec_[A-Za-z0-9]{32,64})(?![\w-])",
    ),
    Recognizer(
        # "T3BlbkFJ" is base64 of "OpenAI", embedded in every OpenAI key format so far.
        name="openai_key", label="secret", validator="token", score=0.97,
        regex=r"(?<![\w-])sk-(?:(?:proj|svcacct|admin)-)?[A-Za-z0-9_-]{16,200}T3BlbkFJ[A-Za-z0-9_-]{16,200}(?![\w-])",
    ),
    Recognizer(
        name="anthropic_key", label="secret", validator="token", score=0.97,
        regex=r"(?<![\w-])sk-ant-(?:api|admin|oat)\d{2}-[A-Za-z0-9_-]{80,120}AA(?![\w-])",
    ),
    Recognizer(
        name="password_assignment", label="secret", validator="secret_value", score=0.9,
        regex=r"(?i:(?<![\w-])(?:" + _SECRET_KEYS + r")[\"']?[ \t]*(?:=|:|=>)[ \t]*)"
              r"(?:\"(?P<value_dq>[^\"\n]{1,200})\"|'(?P<value_sq>[^'\n]{1,200})'|(?P<value>[^\s\"',;&<>]{1,200}))",
    ),
    # --- e-mail, URLs, IP addresses --------------------------------------------------------
    Recognizer(
        name="email", label="private_email", validator="email", score=0.95,
        regex=r"(?<![\w.%+'-])[\w%+-]+(?:[.'][\w%+-]+)*@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+(?:[^\W\d_]{2,63}|xn--[a-z0-9-]{2,59})(?![\w-])",
    ),
    Recognizer(
        name="url", label="private_url", validator="url", extractor="url", score=0.9,
        regex=r"(?i:(?<![\w@.])(?:(?:https?|ftp)://|www\.))[^\s<>\"'`]+",
    ),
    Recognizer(
        name="ipv4", label="private_url", validator="ipv4", score=0.85,
        context={"version": -0.6, "v": -0.6, "release": -0.6, "build": -0.6, "ip": 0.1, "host": 0.1},
        context_window=(24, 0),
        regex=r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)",
    ),
    Recognizer(
        name="ipv6", label="private_url", validator="ipv6", score=0.85,
        regex=r"(?<![\w:.])(?=[0-9A-Fa-f:]*:[0-9A-Fa-f]*:)(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?(?:%[A-Za-z0-9]+)?(?![\w:])",
    ),
    # --- account numbers and national IDs -----------------------------------------------------
    Recognizer(
        name="iban", label="account_number", validator="iban", extractor="iban", score=0.99,
        regex=r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:(?: ?[A-Z0-9]{4}){2,8}(?: ?[A-Z0-9]{1,3})?|[A-Z0-9]{11,30})(?![A-Za-z0-9])",
    ),
    Recognizer(
        name="uk_nino", label="account_number", validator="uk_nino", score=0.9,
        regex=r"(?<![A-Za-z0-9])[A-Z]{2}(?: ?\d{2} ?\d{2} ?\d{2}| ?\d{6}) ?[A-D](?![A-Za-z0-9])",
    ),
    Recognizer(
        name="fr_insee", label="account_number", validator="fr_insee", score=0.95,
        regex=r"(?<![\w+-])[1-478](?P<s>[ .]?)\d{2}(?P=s)\d{2}(?P=s)(?:\d{2}|2[ABab])(?P=s)\d{3}(?P=s)\d{3}(?P=s)\d{2}(?![\w-])",
    ),
    Recognizer(
        name="us_ssn", label="account_number", validator="us_ssn", score=0.9,
        context={"ssn": 0.1, "social": 0.1, "security": 0.1, **{w: -0.6 for w in ("order", "invoice", "ref", "tracking", "phone", "tel")}},
        regex=r"(?<![\w+-])\d{3}(?P<s>[- ])\d{2}(?P=s)\d{4}(?![\w-])",
    ),
    Recognizer(
        # Nine bare digits are an SSN only next to a word that says so.
        name="us_ssn_unformatted", label="account_number", validator="us_ssn", score=0.3,
        context=["ssn", "ssns", "social security", "ss#", "ss no", "taxpayer"],
        context_window=(40, 0),
        regex=r"(?<![\w+-])\d{9}(?![\w-])",
    ),
    Recognizer(
        name="payment_card", label="account_number", validator="payment_card", score=0.97,
        # (?<!\d{4}[ -]): not from inside a longer run of 4-digit groups (the tail of an IBAN).
        regex=r"(?<![\w+-])(?<!\d{4}[ -])(?:\d{4}(?P<s>[ -]?)\d{4}(?P=s)\d{4}(?P=s)\d{1,4}(?:(?P=s)\d{1,3})?"
              r"|\d{4}(?P<a>[ -]?)\d{6}(?P=a)\d{4,5}|\d{13,19})(?![\w-])",
    ),
    Recognizer(
        # Eleven digits are too common to take without context (the check digit passes 1 in 10).
        name="de_steuer_id", label="account_number", validator="de_steuer_id", score=0.3,
        context=["steuer-id", "steuerid", "steuer", "idnr", "steuer-idnr", "identifikationsnummer",
                 "steueridentifikationsnummer", "tin", "tax id", "steuerliche"],
        context_window=(48, 0),
        regex=r"(?<![\w+-])[1-9]\d(?P<s>[ /]?)\d{3}(?P=s)\d{3}(?P=s)\d{3}(?![\w-])",
    ),
    # --- phone numbers: a cheap digit-run candidate here, phonenumbers decides ----------------
    Recognizer(
        name="phone", label="private_phone", extractor="phone", score=0.8, context=PHONE_CONTEXT,
        context_window=(32, 0),
        # Dates (2024-05-01, 05/12/2023) are no candidates: phonenumbers would read some as numbers.
        regex=r"(?<![\w+.-])(?<!\d[ \t.\-/])(?!(?:19|20)\d\d-\d\d-\d\d(?!\d)|\d\d?[/.]\d\d?[/.](?:19|20)\d\d(?![\d./-]))"
              r"(?:\+|\b00)?\(?\d[\d \t().\-/\u00a0]{5,24}\d(?:[ \t]?(?:x|ext\.?|#)[ \t]?\d{1,6})?(?![\w])",
    ),
)

# Cheap tests a text must pass for a built-in to possibly match it (each is implied by the
# recognizer's regex), so that the one combined pass only carries the recognizers that can fire.
# A built-in whose regex was changed (a user's variant under the same name) loses its trigger.
TRIGGERS: dict[str, str] = {
    "pem_private_key": "-----BEGIN",
    "jwt": "eyJ",
    "aws_access_key": "re:A(?:KIA|SIA|BIA|CCA|GPA|IDA|IPA|NPA|NVA|ROA|PKA|SCA)",
    "github_token": "_",
    "gitlab_token": "-",
    "slack_token": "-",
    "slack_webhook": "hooks.slack.com",
    "stripe_key": "_",
    "openai_key": "T3BlbkFJ",
    "anthropic_key": "sk-ant-",
    "password_assignment": "re:[=:]",
    "email": "@",
    "url": "re:(?i)://|www\\.",
    "ipv4": "re:\\d\\.\\d",
    "ipv6": "re::.*:",
    "iban": "re:[A-Z]{2}\\d{2}",
    "uk_nino": "re:[A-Z]{2} ?\\d{2}",
    "fr_insee": "re:\\d(?:[ .]?[\\dABab]){12}",
    "us_ssn": "re:\\d{3}[- ]\\d{2}[- ]\\d{4}",
    "us_ssn_unformatted": "re:\\d{9}",
    "payment_card": "re:\\d(?:[ -]?\\d){12}",
    "de_steuer_id": "re:\\d(?:[ /]?\\d){10}",
    "phone": "re:\\d[\\d \\t().\\-/\\u00a0]{5,24}\\d",
}

BUILTIN_NAMES: tuple[str, ...] = tuple(r.name for r in BUILTINS)
_BY_NAME = {r.name: r for r in BUILTINS}


def builtin(name: str) -> Recognizer:
    """The built-in recognizer called ``name``.

    Example:
        >>> builtin("iban").label, builtin("phone").label
        ('account_number', 'private_phone')
        >>> builtin("passport")
        Traceback (most recent call last):
        ...
        ValueError: unknown built-in recognizer 'passport'; known: pem_private_key, jwt, aws_access_key, github_token, gitlab_token, slack_token, slack_webhook, stripe_key, openai_key, anthropic_key, password_assignment, email, url, ipv4, ipv6, iban, uk_nino, fr_insee, us_ssn, us_ssn_unformatted, payment_card, de_steuer_id, phone
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown built-in recognizer {name!r}; known: {', '.join(BUILTIN_NAMES)}") from None
