"""The values that fill template slots: one persona per entity index (name, e-mail, phone, address, ...),
secrets, identifiers, and context that is not personal data, all drawn from a seeded faker and a seeded
stdlib RNG so a record depends only on its seed.
"""

from __future__ import annotations

import base64
import random
import re
import string
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Callable

from faker import Faker

# --------------------------------------------------------------------------------------------------------------
# Slot values
# --------------------------------------------------------------------------------------------------------------

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_SYLLABLES = ("qu", "in", "dle", "ed", "gar", "al", "an", "ma", "ri", "ko", "vel", "thra", "sen", "lo", "wick",
              "ton", "ber", "ly", "nix", "tes", "or", "ra", "fen", "mo", "zu", "bel", "dra", "kin", "ash", "ver")
_GENERIC_EMAIL_DOMAINS = ("example.com", "example.org", "mail.com", "proton.me", "outlook.com", "gmail.com",
                          "openai.com", "company.io", "corp.example.net")
_PUBLIC_URLS = ("https://docs.python.org/3/library/json.html", "https://en.wikipedia.org/wiki/Data_protection",
                "https://github.com/pola-rs/polars", "https://duckdb.org/docs/sql/introduction",
                "https://pandas.pydata.org/docs/", "https://www.w3.org/TR/html52/",
                "https://developer.mozilla.org/en-US/docs/Web/HTTP/Status",
                "https://arrow.apache.org/docs/python/", "https://pytorch.org/get-started/locally/",
                "https://www.gov.uk/bank-holidays", "https://europa.eu/youreurope/")
_PRODUCTS = ("Atlas", "Nimbus Sync", "DataPilot", "Ledgerly", "Orbit CRM", "PixelForge", "QuickShip",
             "StreamDeck Pro", "Helios Analytics", "Tandem Notes", "Vault Drive", "Beacon")
_SERVICES = ("checkout-api", "auth-service", "billing-worker", "search-indexer", "gateway", "notifier")
_PACKAGES = ("polars", "duckdb", "requests", "numpy", "rich", "tqdm", "pyarrow")
_SUBJECTS = ("Q3 planning", "Contract renewal", "Re: your request", "Meeting notes", "Budget update",
             "Project kickoff", "Follow-up", "Travel arrangements", "Onboarding", "Access request")
_DEPTS = ("Finance", "Engineering", "Sales", "Marketing", "Customer Success", "Legal", "Operations", "Research")
_TEAMS = ("data platform", "mobile", "payments", "growth", "security", "design")
_SYMPTOMS = ("chest pain", "persistent cough", "migraine", "shortness of breath", "lower back pain", "fever",
             "dizziness", "abdominal pain", "a skin rash", "fatigue")
_DRUGS = ("amoxicillin", "ibuprofen", "metformin", "lisinopril", "atorvastatin", "omeprazole", "salbutamol",
          "sertraline")
_DOSES = ("500 mg twice daily", "200 mg as needed", "10 mg once daily", "20 mg at night", "2 puffs as needed")
_VACCINES = ("influenza", "hepatitis B", "tetanus", "MMR", "COVID-19")
_LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"}
_PASS_WORDS = ("privacy", "filter", "sunset", "dragon", "harbor", "violet", "coffee", "rocket", "maple",
               "winter", "falcon", "garden", "silver", "thunder", "pepper", "orbit")


def _alnum(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _digits(rng: random.Random, n: int) -> str:
    return str(rng.randint(1, 9)) + "".join(rng.choice(string.digits) for _ in range(n - 1))


def _ascii_slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.replace("ß", "ss"))
    return re.sub(r"[^a-z0-9]", "", folded.encode("ascii", "ignore").decode().lower())


@dataclass
class _Persona:
    first: str
    last: str
    full: str
    email: str
    phone: str
    address: str
    street: str
    dob: str
    profile: str


class _RenderContext:
    """Random sources for one record: a seeded faker for the locale plus a seeded stdlib RNG."""

    def __init__(self, fake: Faker, rng: random.Random, locale: str, language: str | None):
        self.fake = fake
        self.rng = rng
        self.locale = locale
        self.english = language is None
        self._personas: dict[int, _Persona] = {}

    # -- people --------------------------------------------------------------------------------------------
    def persona(self, index: int) -> _Persona:
        if index not in self._personas:
            self._personas[index] = self._new_persona()
        return self._personas[index]

    def _invented_name(self) -> str:
        parts = self.rng.randint(2, 3)
        return "".join(self.rng.choice(_SYLLABLES) for _ in range(parts)).capitalize()

    def _new_persona(self) -> _Persona:
        rng, fake = self.rng, self.fake
        # Some names are invented so the model learns to rely on context, not on a list of known names.
        if rng.random() < 0.15:
            first, last = self._invented_name(), self._invented_name()
        else:
            first, last = fake.first_name(), fake.last_name()
        full = f"{first} {rng.choice(string.ascii_uppercase)}. {last}" if rng.random() < 0.08 else f"{first} {last}"
        first_slug, last_slug = _ascii_slug(first) or "user", _ascii_slug(last) or "name"
        local = rng.choice((f"{first_slug}.{last_slug}", f"{first_slug[0]}.{last_slug}", f"{first_slug}{last_slug}",
                            f"{first_slug}_{last_slug}", f"{first_slug}{rng.randint(1, 99)}",
                            f"{last_slug}.{first_slug}"))
        domain = rng.choice((fake.free_email_domain(), fake.domain_name(), rng.choice(_GENERIC_EMAIL_DOMAINS)))
        email = fake.email() if rng.random() < 0.2 else f"{local}@{domain}"
        handle = rng.choice((f"{first_slug}{last_slug}", f"{first_slug}-{last_slug}", f"{first_slug[0]}{last_slug}"))
        profile = rng.choice((
            f"https://www.linkedin.com/in/{first_slug}-{last_slug}-{_alnum(rng, 4, '0123456789abcdef')}",
            f"https://github.com/{handle}",
            f"https://twitter.com/{handle}",
            f"https://{handle}.{rng.choice(('dev', 'me', 'net', 'com'))}",
            f"https://www.instagram.com/{handle}/",
            f"https://{handle}.github.io/portfolio",
        ))
        street = self._street()
        return _Persona(first=first, last=last, full=full, email=email, phone=self.phone(),
                        address=self._address(street), street=street,
                        dob=self.format_date(self._random_date(1940, 2006)), profile=profile)

    # -- contact data --------------------------------------------------------------------------------------
    def phone(self) -> str:
        rng = self.rng
        if rng.random() < 0.6:
            return self.fake.phone_number()
        area, mid, tail = rng.randint(201, 989), rng.randint(200, 999), rng.randint(0, 9999)
        return rng.choice((f"({area}) {mid}-{tail:04d}", f"+1 {area} {mid}-{tail:04d}", f"{area}-{mid}-{tail:04d}",
                           f"+1 ({area}) {mid} {tail:04d}", f"+44 7700 9{rng.randint(0, 99999):05d}",
                           f"+49 30 {rng.randint(1000000, 9999999)}", f"+33 6 {rng.randint(10, 99)} "
                           f"{rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}"))

    def _street(self) -> str:
        if self.rng.random() < 0.15 and self.english:
            return (f"{self.rng.randint(1, 9999)} {self.rng.choice(('Beautiful', 'Maple', 'Cedar', 'Nowhere', 'Oak', 'Harbor'))} "
                    f"{self.rng.choice(('Court', 'Lane', 'Street', 'Avenue', 'Road', 'Drive', 'Way'))}")
        return _clean_spaces(self.fake.street_address().replace("\n", ", "))

    def _address(self, street: str) -> str:
        if self.rng.random() < 0.5:
            return _clean_spaces(self.fake.address().replace("\n", ", "))
        return f"{street}, {self.fake.postcode()} {self.fake.city()}" if not self.locale.startswith("en") \
            else f"{street}, {self.fake.city()}"

    # -- dates ---------------------------------------------------------------------------------------------
    def _random_date(self, first_year: int, last_year: int) -> date:
        start = date(first_year, 1, 1)
        return start + timedelta(days=self.rng.randrange((date(last_year, 12, 31) - start).days))

    def format_date(self, day: date) -> str:
        numeric = (f"{day:%Y-%m-%d}", f"{day:%d/%m/%Y}", f"{day.month}/{day.day}/{day.year}", f"{day:%d.%m.%Y}",
                   f"{day.month}/{day.day}", f"{day:%d-%m-%Y}")
        if not self.english:
            return self.rng.choice(numeric)
        month = _MONTHS[day.month - 1]
        worded = (f"{month} {day.day}, {day.year}", f"{day.day} {month} {day.year}", f"{month[:3]} {day.day}",
                  f"{month} {day.day}", f"{day.day} {month[:3]} {day.year}", f"{_ordinal(day.day)} of {month}")
        return self.rng.choice(numeric + worded)

    def date(self) -> str:
        return self.format_date(self._random_date(2015, 2030))


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _clean_spaces(text: str) -> str:
    return re.sub(r"\s+,", ",", re.sub(r"[ \t]+", " ", text)).strip()


# -- secrets -------------------------------------------------------------------------------------------------

def _api_key(rng: random.Random) -> str:
    return rng.choice((
        lambda: "sk-" + _alnum(rng, rng.randint(20, 48)),
        lambda: "sk-proj-" + _alnum(rng, rng.randint(24, 40)),
        lambda: f"sk-{rng.choice(('test', 'live'))}-" + _alnum(rng, rng.randint(6, 24)),
        lambda: f"{rng.choice(('sk', 'pk', 'rk'))}_{rng.choice(('live', 'test'))}_" + _alnum(rng, 24),
        lambda: "ghp_" + _alnum(rng, 36),
        lambda: "github_pat_" + _alnum(rng, 22) + "_" + _alnum(rng, 30),
        lambda: "AIza" + _alnum(rng, 35, string.ascii_letters + string.digits + "-_"),
        lambda: "glpat-" + _alnum(rng, 20),
        lambda: _alnum(rng, 32, "0123456789abcdef"),
    ))()


def _aws_id(rng: random.Random) -> str:
    return "AKIA" + _alnum(rng, 16, string.ascii_uppercase + string.digits)


def _aws_secret(rng: random.Random) -> str:
    return _alnum(rng, 40, string.ascii_letters + string.digits + "/+")


def _slack_token(rng: random.Random) -> str:
    return f"xox{rng.choice('bpa')}-{_digits(rng, 12)}-{_digits(rng, 13)}-{_alnum(rng, 24)}"


def _b64url(rng: random.Random, n_bytes: int) -> str:
    return base64.urlsafe_b64encode(rng.randbytes(n_bytes)).decode().rstrip("=")


def _token(rng: random.Random) -> str:
    return rng.choice((
        lambda: "eyJ" + _b64url(rng, 24) + "." + _b64url(rng, rng.randint(30, 60)) + "." + _b64url(rng, 32),
        lambda: _alnum(rng, rng.choice((32, 40, 64)), "0123456789abcdef"),
        lambda: _b64url(rng, rng.randint(18, 33)),
        lambda: _slack_token(rng),
        lambda: "ya29." + _alnum(rng, 40, string.ascii_letters + string.digits + "-_"),
        lambda: _alnum(rng, 8, string.ascii_uppercase + string.digits),
    ))()


def _password(ctx: _RenderContext) -> str:
    rng = ctx.rng
    if rng.random() < 0.4:
        return ctx.fake.password(length=rng.randint(8, 16), special_chars=rng.random() < 0.7)
    if rng.random() < 0.5:
        return _passphrase(rng)
    word = rng.choice(_PASS_WORDS).capitalize()
    return word + rng.choice(("!", "#", "$", "@", "")) + str(rng.randint(1, 9999)) + rng.choice(("", "!", "?"))


def _passphrase(rng: random.Random) -> str:
    words = [rng.choice(_PASS_WORDS) for _ in range(rng.randint(2, 3))]
    leet = ["".join(_LEET.get(c, c) if rng.random() < 0.35 else c for c in w).capitalize() for w in words]
    return rng.choice(("-", "_", "", ".")).join(leet) + rng.choice(("", f"-{rng.randint(2019, 2030)}",
                                                                    str(rng.randint(1, 99))))


def _secret(ctx: _RenderContext) -> str:
    return ctx.rng.choice((_api_key, _token, _aws_secret, lambda rng: _password(ctx), _passphrase))(ctx.rng)


# -- identifiers ---------------------------------------------------------------------------------------------

def _account(ctx: _RenderContext) -> str:
    rng = ctx.rng
    return rng.choice((
        lambda: _digits(rng, rng.choice((8, 10, 12, 16, 20))),
        lambda: ctx.fake.bban(),
        lambda: f"{_digits(rng, 4)}-{_digits(rng, 4)}-{_digits(rng, 4)}",
        lambda: f"{rng.choice(('ACC', 'CUST', 'AC'))}-{_digits(rng, rng.randint(6, 10))}",
    ))()


def _iban(ctx: _RenderContext) -> str:
    iban = ctx.fake.iban()
    if ctx.rng.random() < 0.4:
        return " ".join(iban[i:i + 4] for i in range(0, len(iban), 4))
    return iban


def _card(ctx: _RenderContext) -> str:
    number = ctx.fake.credit_card_number()
    if ctx.rng.random() < 0.5 and len(number) == 16:
        return ctx.rng.choice((" ", "-")).join(number[i:i + 4] for i in range(0, 16, 4))
    return number


def _national_id(ctx: _RenderContext) -> str:
    rng = ctx.rng
    if ctx.locale == "en_US" or rng.random() < 0.3:
        return f"{rng.randint(100, 899)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"
    return ctx.fake.ssn()


def _private_url(ctx: _RenderContext) -> str:
    rng, fake = ctx.rng, ctx.fake
    domain = rng.choice((fake.domain_name(), "example.org", "example.com"))
    return rng.choice((
        lambda: f"https://{rng.choice(('portal', 'account', 'id', 'login'))}.{domain}/reset?token={_alnum(rng, rng.randint(6, 24))}",
        lambda: f"https://drive.{domain}/file/d/{_b64url(rng, 18)}/view",
        lambda: f"https://docs.google.com/document/d/{_b64url(rng, 30)}/edit",
        lambda: f"https://zoom.us/j/{_digits(rng, 10)}?pwd={_alnum(rng, 20)}",
        lambda: f"https://{domain}/users/{_digits(rng, 6)}/invoices",
        lambda: f"https://app.{domain}/share/{_alnum(rng, 12)}",
        lambda: f"https://{domain}/verify?email={_ascii_slug(fake.first_name())}%40{fake.free_email_domain()}",
        lambda: ctx.persona(9).profile,
        lambda: f"http://{domain}/~{_ascii_slug(fake.last_name())}/cv.pdf",
    ))()


SlotFunction = Callable[[_RenderContext, int], tuple[str, "str | None"]]


def _persona_slot(field: str, label: str) -> SlotFunction:
    return lambda ctx, index: (getattr(ctx.persona(index), field), label)


def _plain(label: str | None, make: Callable[[_RenderContext], str]) -> SlotFunction:
    return lambda ctx, index: (make(ctx), label)


def _timestamp(ctx: _RenderContext) -> str:
    moment = datetime(2024, 1, 1) + timedelta(seconds=ctx.rng.randrange(3 * 365 * 86400))
    return ctx.rng.choice((f"{moment:%Y-%m-%dT%H:%M:%S}Z", f"{moment:%Y-%m-%d %H:%M:%S},{ctx.rng.randint(0, 999):03d}",
                           f"{moment:%b %d %H:%M:%S}", f"[{moment:%H:%M:%S}.{ctx.rng.randint(0, 999):03d}]"))


def _amount(ctx: _RenderContext) -> str:
    value = ctx.rng.randint(5, 5000) + ctx.rng.randint(0, 99) / 100
    return ctx.rng.choice((f"${value:,.2f}", f"€{value:.2f}", f"{value:.2f} EUR", f"£{value:,.2f}"))


_UNITS = ("minutes", "min", "g", "kg", "ml", "km", "items", "rows", "MB", "GB", "px", "pages", "seconds", "hours",
          "days", "%", "x", "times", "steps", "users")
_HTTP_CODES = (200, 201, 204, 301, 302, 400, 401, 403, 404, 409, 429, 500, 502, 503)


def _neutral_value(ctx: _RenderContext) -> str:
    """A number or identifier that is not personal data (quantities, codes, versions, log times, ids)."""
    rng = ctx.rng
    kind = rng.randrange(8)
    if kind == 0:
        return f"{rng.randint(1, 500)} {rng.choice(_UNITS)}"
    if kind == 1:
        return str(rng.choice(_HTTP_CODES))
    if kind == 2:
        return f"v{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"
    if kind == 3:
        return _timestamp(ctx).strip("[]")
    if kind == 4:
        return str(ctx.fake.uuid4()) if rng.random() < 0.5 else ctx.fake.sha1()[: rng.choice((7, 12))]
    if kind == 5:
        return _amount(ctx)
    if kind == 6:
        return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"
    return str(rng.randint(2, 99999))


def _public_url(ctx: _RenderContext) -> str:
    if ctx.rng.random() < 0.3:
        return f"https://www.{ctx.fake.domain_name()}/{ctx.rng.choice(('pricing', 'docs', 'blog', 'about', 'status'))}"
    return ctx.rng.choice(_PUBLIC_URLS)


_SLOTS: dict[str, SlotFunction] = {
    # personal data
    "name": _persona_slot("full", "private_person"),
    "first": _persona_slot("first", "private_person"),
    "last": _persona_slot("last", "private_person"),
    "email": _persona_slot("email", "private_email"),
    "phone": _persona_slot("phone", "private_phone"),
    "addr": _persona_slot("address", "private_address"),
    "street": _persona_slot("street", "private_address"),
    "dob": _persona_slot("dob", "private_date"),
    "profile": _persona_slot("profile", "private_url"),
    "date": _plain("private_date", lambda ctx: ctx.date()),
    "url": _plain("private_url", _private_url),
    "account": _plain("account_number", _account),
    "iban": _plain("account_number", _iban),
    "card": _plain("account_number", _card),
    "ssn": _plain("account_number", _national_id),
    "cust": _plain("account_number", lambda ctx: ctx.rng.choice(("C", "CUST-", "")) + _digits(ctx.rng, 7)),
    "emp_id": _plain("account_number", lambda ctx: f"EMP-{_digits(ctx.rng, 5)}"),
    "mrn": _plain("account_number", lambda ctx: _digits(ctx.rng, 8)),
    "policy": _plain("account_number", lambda ctx: f"{ctx.rng.choice(('POL', 'HI', 'INS'))}-{_digits(ctx.rng, 9)}"),
    "secret": _plain("secret", _secret),
    "apikey": _plain("secret", lambda ctx: _api_key(ctx.rng)),
    "password": _plain("secret", _password),
    "token": _plain("secret", lambda ctx: _token(ctx.rng)),
    "passphrase": _plain("secret", lambda ctx: _passphrase(ctx.rng)),
    "aws_id": _plain("secret", lambda ctx: _aws_id(ctx.rng)),
    "aws_secret": _plain("secret", lambda ctx: _aws_secret(ctx.rng)),
    "slack": _plain("secret", lambda ctx: _slack_token(ctx.rng)),
    # context that is not personal data
    "company": _plain(None, lambda ctx: ctx.fake.company()),
    "product": _plain(None, lambda ctx: ctx.rng.choice(_PRODUCTS)),
    "service": _plain(None, lambda ctx: ctx.rng.choice(_SERVICES)),
    "package": _plain(None, lambda ctx: ctx.rng.choice(_PACKAGES)),
    "subject": _plain(None, lambda ctx: ctx.rng.choice(_SUBJECTS)),
    "dept": _plain(None, lambda ctx: ctx.rng.choice(_DEPTS)),
    "team": _plain(None, lambda ctx: ctx.rng.choice(_TEAMS)),
    "job": _plain(None, lambda ctx: ctx.fake.job()),
    "city": _plain(None, lambda ctx: ctx.fake.city()),
    "weekday": _plain(None, lambda ctx: ctx.rng.choice(_WEEKDAYS)),
    "time": _plain(None, lambda ctx: f"{ctx.rng.randint(7, 19)}:{ctx.rng.choice(('00', '15', '30', '45'))}"),
    "ts": _plain(None, _timestamp),
    "ticket": _plain(None, lambda ctx: ctx.rng.choice(("", "TCK-", "SR-", "INC")) + _digits(ctx.rng, 6)),
    "order": _plain(None, lambda ctx: ctx.rng.choice(("#", "ORD-", "")) + _digits(ctx.rng, 7)),
    "invoice": _plain(None, lambda ctx: f"INV-{ctx.rng.randint(2019, 2026)}-{_digits(ctx.rng, 5)}"),
    "version": _plain(None, lambda ctx: f"{ctx.rng.randint(1, 9)}.{ctx.rng.randint(0, 30)}.{ctx.rng.randint(0, 9)}"),
    "amount": _plain(None, _amount),
    "qty": _plain(None, lambda ctx: str(ctx.rng.randint(1, 500))),
    "n": _plain(None, lambda ctx: str(ctx.rng.randint(2, 90000))),
    "ms": _plain(None, lambda ctx: str(ctx.rng.randint(2, 2500))),
    "duration": _plain(None, lambda ctx: str(ctx.rng.randint(10, 900))),
    "pct": _plain(None, lambda ctx: str(ctx.rng.randint(2, 80))),
    "temp": _plain(None, lambda ctx: str(ctx.rng.randint(8, 31))),
    "age": _plain(None, lambda ctx: str(ctx.rng.randint(19, 94))),
    "ext": _plain(None, lambda ctx: str(ctx.rng.randint(100, 9999))),
    "uuid": _plain(None, lambda ctx: str(ctx.fake.uuid4())),
    "sha": _plain(None, lambda ctx: ctx.fake.sha1()[: ctx.rng.choice((7, 12, 40))]),
    "ip": _plain(None, lambda ctx: ctx.fake.ipv4() if ctx.rng.random() < 0.8 else ctx.fake.ipv6()),
    "host": _plain(None, lambda ctx: f"{ctx.rng.choice(('db', 'mail', 'smtp', 'pg'))}-{ctx.rng.randint(1, 9)}."
                                     f"{ctx.rng.choice(('internal', 'prod.local', 'svc.cluster.local'))}"),
    "domain": _plain(None, lambda ctx: ctx.fake.domain_name()),
    "public_url": _plain(None, _public_url),
    "symptom": _plain(None, lambda ctx: ctx.rng.choice(_SYMPTOMS)),
    "drug": _plain(None, lambda ctx: ctx.rng.choice(_DRUGS)),
    "dose": _plain(None, lambda ctx: ctx.rng.choice(_DOSES)),
    "vaccine": _plain(None, lambda ctx: ctx.rng.choice(_VACCINES)),
    "batch": _plain(None, lambda ctx: f"{ctx.rng.choice(string.ascii_uppercase)}{_digits(ctx.rng, 5)}"),
    "neutral": _plain(None, _neutral_value),
    # real-text gaps (generate(gaps=...)): other renderings of a persona's name, and references that are not PII
    "lastfirst": lambda ctx, index: (f"{ctx.persona(index).last}, {ctx.persona(index).first}", "private_person"),
    "namelc": lambda ctx, index: (ctx.persona(index).full.lower(), "private_person"),
    "nameuc": lambda ctx, index: (ctx.persona(index).full.upper(), "private_person"),
    "intl": lambda ctx, index: (_foreign_name(ctx.rng), "private_person"),
    "ref": _plain(None, lambda ctx: _reference(ctx.rng)),
    "caseno": _plain(None, lambda ctx: _case_number(ctx.rng)),
    "cap": _plain(None, lambda ctx: ctx.rng.choice(_CAPITAL_WORDS)),
}


# -- real-text gaps (generate(gaps=...), see pii_frames.synthetic.gaps) -----------------------------------------

# Latin-script locales first (most of them), then a few other scripts; names only, never the text around them.
_FOREIGN_LOCALES = ("pl_PL", "pt_BR", "tr_TR", "sv_SE", "cs_CZ", "fi_FI", "ro_RO", "hu_HU", "vi_VN", "id_ID",
                    "en_IN", "ga_IE", "hr_HR", "da_DK", "no_NO", "yo_NG", "zu_ZA", "fil_PH", "ru_RU", "el_GR",
                    "uk_UA", "ja_JP", "zh_CN", "ko_KR")
_FAKERS: dict[str, Faker] = {}
_CAPITAL_WORDS = ("Feedback", "Update", "Reminder", "Note", "Summary", "Question", "Request", "Complaint",
                  "Thanks", "Welcome", "Urgent", "Follow-up", "Hunt", "Green", "Rose", "Young", "Bill", "Mark",
                  "Will", "Grant", "Page", "Hope", "Faith", "Joy", "Frank", "Sterling", "Lane", "Park", "Brown",
                  "Victoria", "Jordan", "Washington", "Florence", "Paris", "Sydney", "Chase", "Hall", "King")


def _foreign_name(rng: random.Random) -> str:
    locale = rng.choice(_FOREIGN_LOCALES)
    fake = shared_faker(locale)
    fake.seed_instance(rng.getrandbits(32))
    first, last = fake.first_name(), fake.last_name()
    if locale in ("ja_JP", "zh_CN"):
        return f"{last}{first}"  # family name first, no space
    if locale == "ko_KR":
        return f"{last} {first}"
    return f"{first} {last}"


def _reference(rng: random.Random) -> str:
    """A legal or technical reference: looks numeric and official, is not personal data."""
    n, k, year = rng.randint(1, 250), rng.randint(1, 12), rng.randint(1990, 2026)
    letter = rng.choice("abcdefgh")
    return rng.choice((
        f"§ {n}", f"§ {n} Abs. {k}", f"§§ {n}-{n + k}", f"§ {n}({k})", f"Art. {n}({k})", f"Art. {n}({k})({letter}) GDPR",
        f"Article {n}", f"Article {n}({k})", f"section {n}.{k}", f"s. {n}({k})", f"para. {n}", f"paras {n}-{n + k}",
        f"Rule {n}({letter})", f"Regulation (EU) {year}/{rng.randint(100, 2500)}", f"Directive {year}/{n}/EC",
        f"RFC {rng.randint(791, 9999)}", f"ISO {rng.randint(1000, 45001)}:{year}", f"CVE-{year}-{rng.randint(1000, 49999)}",
        f"version {rng.randint(1, 12)}.{rng.randint(0, 30)}.{rng.randint(0, 20)}", f"v{rng.randint(0, 9)}.{rng.randint(0, 9)}",
        f"No. {n}/{rng.randint(0, 99):02d}", f"{rng.randint(1, 50)} U.S.C. § {rng.randint(100, 9999)}", f"Chapter {n}",
        f"clause {k}.{rng.randint(1, 9)}", f"ECLI:EU:C:{year}:{rng.randint(1, 999)}", f"Annex {rng.choice('IVX' * 2)}",
        f"BGBl. I S. {rng.randint(100, 4000)}", f"{n} F.3d {rng.randint(100, 1500)}", f"[{year}] UKSC {rng.randint(1, 60)}",
    ))


def _case_number(rng: random.Random) -> str:
    """Court and file numbers (12345/67 and friends): not dates, not phone numbers."""
    yy = f"{rng.randint(0, 99):02d}"
    return rng.choice((
        f"{_digits(rng, 5)}/{yy}", f"{rng.randint(1, 99999)}/{yy}", f"{rng.randint(1, 40)} O {rng.randint(1, 999)}/{yy}",
        f"{rng.randint(1, 9)}:{yy}-cv-{_digits(rng, 5)}", f"C-{rng.randint(1, 999)}/{yy}", f"No. {rng.randint(1, 9999)}/{rng.randint(1990, 2026)}",
        f"[{rng.randint(1990, 2026)}] EWHC {rng.randint(1, 3999)} (Ch)", f"{rng.randint(1, 12)} StR {rng.randint(1, 999)}/{yy}",
        f"IV ZR {rng.randint(1, 400)}/{yy}", f"T-{rng.randint(1, 999)}/{yy}",
    ))


def shared_faker(locale: str) -> Faker:
    """One hash-independent Faker per locale for this process; callers seed it before every use."""
    if locale not in _FAKERS:
        _FAKERS[locale] = _hash_independent(Faker(locale))
    return _FAKERS[locale]


def _hash_independent(fake: Faker) -> Faker:
    """Sort the word lists some faker locales build from sets (it_IT cities), whose order follows the
    process's string-hash seed: without this a seed gives the same records only within one process."""
    for provider in fake.providers:
        if isinstance(getattr(provider, "cities", None), list):
            provider.cities = sorted(provider.cities)
    return fake
