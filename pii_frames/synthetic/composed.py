"""Composed documents: assembled from clause frames, form fields, fillers and openers of one template split,
in random order and number (``generate(composed=...)``).
"""

from __future__ import annotations

import importlib
import random

from pii_frames.synthetic.templates import _SLOT_PATTERN

# --------------------------------------------------------------------------------------------------------------
# Composed documents. Hand-written templates alone teach a small model to memorise where the slots sit; these
# documents are assembled from short clause frames (one PII value each), neutral filler sentences and
# kind-specific openers in random order and number, so the cue for a span is its own form plus a few local
# words. Frames and fillers are split like templates: every fourth one is held out.
# ``N`` in a frame is replaced by a person index (1-3), so several clauses can refer to the same person.
# --------------------------------------------------------------------------------------------------------------

_FRAMES: dict[str, list[str]] = {
    "person": [
        "my name is {nameN}", "{nameN} here", "this is {nameN}", "I'm {firstN}", "Mr. {lastN} called twice",
        "Ms. {lastN} asked for an update", "according to {nameN}", "{nameN} said it was urgent",
        "please ask {firstN}", "signed, {nameN}", "cc: {nameN}", "assigned to {nameN}", "patient {nameN}",
        "employee {nameN}", "customer {nameN}", "{nameN} ({job})", "thanks {firstN}", "hi {firstN}",
        "dear {nameN}", "{firstN} will join later", "spoke with {nameN} today", "{nameN} approved it",
        "contact person: {nameN}", "on behalf of {nameN}", "{firstN} {lastN} confirmed the booking",
        "name: {nameN}", "the account holder is {nameN}", "ask for {firstN} at the front desk",
        "{nameN} and {nameM} attended", "manager {nameN}", "reported by {nameN}", "best, {firstN}",
        "contact {nameN}", "call {nameN}", "email {firstN}", "meet {nameN} tomorrow", "{nameN} says hi",
        "{nameN} writes", "{firstN} thinks so too", "ping {firstN}", "invite {nameN}", "welcome {nameN}",
        "{nameN} reports the same", "tell {firstN}",
    ],
    "email": [
        "my email is {emailN}", "email: {emailN}", "reach me at {emailN}", "write to {emailN}",
        "send it to {emailN}", "<{emailN}>", "({emailN})", "contact {emailN}", "cc {emailN}",
        "reply to {emailN}", "{emailN} bounced", "forwarded from {emailN}", "her address is {emailN}",
        "his email: {emailN}", "login {emailN}", "e-mail {emailN}", "notify {emailN} when done",
        "the account {emailN} was locked", "new email {emailN}", "from: {emailN}", "mail {emailN} the receipt",
        "registered with {emailN}", "invite {emailN} to the call", "user {emailN} signed up",
        "or {emailN}", "email address: {emailN}", "({emailN}) wrote", "via {emailN}",
        "{emailN} is my work address", "write to {emailN} about refunds", "email {emailN} for access",
    ],
    "phone": [
        "call me at {phoneN}", "phone: {phoneN}", "tel. {phoneN}", "mobile {phoneN}", "my number is {phoneN}",
        "text {phoneN}", "ring {phoneN} after 5pm", "({phoneN})", "reach her on {phoneN}", "fax {phoneN}",
        "callback number {phoneN}", "dial {phoneN}", "his cell is {phoneN}", "phone number on file: {phoneN}",
        "WhatsApp {phoneN}", "call {phoneN} to confirm", "or {phoneN}", "contact number {phoneN}",
        "she can be reached on {phoneN}", "emergency contact phone {phoneN}",
        "call {phoneN} about the order", "reach me at {phoneN} during office hours", "text {phoneN} if late",
        "{phoneN} is my work number", "phone {phoneN} before noon", "try {phoneN} again tomorrow",
        "ring {phoneN} for directions", "{phoneN} works best",
    ],
    "address": [
        "I live at {addrN}", "address: {addrN}", "ship to {addrN}", "home address {addrN}",
        "deliver to {streetN}", "moved to {addrN}", "located at {streetN}", "mail it to {addrN}",
        "billing address: {addrN}", "she lives on {streetN}", "registered at {addrN}",
        "the parcel went to {addrN}", "residence: {addrN}", "send the keys to {streetN}", "new address {addrN}",
        "lives at {addrN}", "address on file {streetN}", "from {addrN}", "pick up at {streetN}",
        "forwarding address {addrN}",
        "{streetN} is where I live", "deliver to {addrN} before Friday", "I moved to {addrN} last year",
    ],
    "date": [
        "on {date}", "born {dobN}", "date of birth: {dobN}", "DOB {dobN}", "since {date}", "before {date}",
        "until {date}", "due {date}", "scheduled for {date}", "from {date} to {date2}", "on {weekday}, {date}",
        "last seen {date}", "appointment {date}", "started {date}", "expires {date}", "birthday {dobN}",
        "visit date: {date}", "by {date}", "dated {date}", "as of {date}", "next review {date}",
        "moving date {date}", "admitted {date}", "effective {date}",
        "{dobN} is my birthday", "on {date} at noon", "since {date} without reply", "until {date} inclusive",
    ],
    "url": [
        "link: {url}", "see {url}", "my profile {profileN}", "open {url}", "download it from {url}",
        "reset here {url}", "shared at {url}", "portfolio: {profileN}", "at {url}", "({url})",
        "website {profileN}", "join via {url}", "the page {url} shows my data", "uploaded to {url}",
        "callback URL {url}", "follow me: {profileN}", "the link {url} expired", "document: {url}",
        "her blog {profileN}", "invite link {url}",
    ],
    "secret": [
        "password: {password}", "the password is {password}", "api key {apikey}", "token={token}",
        "Bearer {token}", "secret: {secret}", "passphrase {passphrase}", "use key {apikey}",
        "API_KEY={apikey}", "pwd {password}", "credentials {password}", "access token {token}",
        "rotate secret {secret}", "temporary password {password}", "client_secret: {secret}",
        "AWS key {aws_id}", "the wifi password is {password}", "recovery code {token}",
        "new key {apikey}", "passcode {password}", "SECRET_KEY={secret}", "pin code {password}",
    ],
    "account": [
        "account {account}", "account number {account}", "IBAN {iban}", "IBAN: {iban}", "card {card}",
        "card number {card}", "customer no. {cust}", "SSN {ssn}", "tax ID {ssn}", "policy {policy}",
        "MRN {mrn}", "employee ID {emp_id}", "pay to {iban}", "charged to {card}", "acct #{account}",
        "wire it to {iban}", "membership no. {account}", "credit card {card}", "insurance number {policy}",
        "social security number {ssn}", "bank account {iban}", "customer ID {cust}",
    ],
}
_FRAME_WEIGHTS = {"person": 3, "email": 2, "phone": 2, "address": 2, "date": 2, "url": 2, "secret": 3,
                  "account": 2}

_LOG_FRAMES = [
    "user={emailN}", "email=\"{emailN}\"", "phone={phoneN}", "password={password}", "api_key={apikey}",
    "token={token}", "authorization=\"Bearer {token}\"", "card={card}", "iban={iban}", "name=\"{nameN}\"",
    "address=\"{addrN}\"", "dob={dobN}", "url={url}", "secret={secret}", "AWS_SECRET_ACCESS_KEY={aws_secret}",
    "customer={cust}", "login failed for {emailN}", "password reset for {emailN}", "sms sent to {phoneN}",
    "aws_access_key_id={aws_id}", "db_password={password}", "session={token}", "slack_token={slack}",
    "profile_url={profileN}",
]
_LOG_FILLERS = [
    "status=200 latency_ms={ms}", "request_id={uuid}", "cache miss for key {sha}", "retrying in 5s",
    "client_ip={ip}", "worker started", "connection pool size {n}", "healthcheck ok", "GET /api/v1/items 200",
    "deploy {version} complete", "gc pause {ms}ms", "queue depth {n}",
]

_FILLERS: dict[str, list[str]] = {
    "general": [
        "thanks for your patience", "let me know if you have questions", "this is urgent", "please advise",
        "see attached", "no further action needed", "escalation pending", "the office is closed on {weekday}",
        "the {product} team is looking into it", "status: open", "order {order} is on its way",
        "ticket {ticket} was updated", "version {version} fixes this", "meeting at {time}",
        "invoice {invoice} attached", "sent from my phone", "update: the issue is resolved",
        "note: do not reply to this message", "summary: customer satisfied", "escalated to tier 2",
        "waiting for {company}", "documentation: {public_url}", "request id {uuid}",
        "reach out to the {team} team", "welcome aboard", "action required", "attention: maintenance tonight",
        "the total is {amount}", "Monday works for everyone", "{company} confirmed the shipment",
        "Quarterly Business Review", "Customer Success Team", "Terms and Conditions apply",
        "see the Privacy Policy", "submitted via Web Form", "Best Practices Guide attached",
        "{company} Support", "the {city} Office", "Release Candidate {version}", "Annual Report",
        "Human Resources Department", "Product Roadmap Review", "Board Meeting Minutes",
        "room {ext} is booked", "{qty} units in stock", "build {n} passed", "request from IP {ip}",
        "order {order} total {amount}", "commit {sha} deployed", "it is {temp} degrees outside",
        "it takes {duration} seconds", "Paris office closed", "see section 4.2",
    ],
    "support_ticket": [
        "the app crashes on startup", "login fails with error 500", "refund requested", "issue reproduced on "
        "{product} {version}", "customer is frustrated", "priority: high", "workaround sent",
        "duplicate of ticket {ticket}", "closing as resolved",
    ],
    "email": [
        "hope you are well", "following up on our call", "looking forward to hearing from you",
        "sorry for the late reply", "please find the details below", "have a great weekend",
    ],
    "chat": ["lol", "ok", "sounds good", "brb", "see you soon", "👍", "haha", "can't today", "on my way",
             "did you watch Game of Thrones?", "going to Paris tomorrow", "meeting with Sales at 3",
             "Happy New Year!", "is the Google Doc updated?", "Netflix tonight?", "Monday is a holiday",
             "Slack is down again", "the Berlin trip is booked"],
    "hr_note": [
        "performance rating: exceeds expectations", "leave approved", "training completed",
        "salary band unchanged", "probation ends next month", "contract extended",
    ],
    "medical_note": [
        "blood pressure 120/80", "prescribed {drug} {dose}", "complains of {symptom}", "follow-up in two weeks",
        "no known allergies", "referred to physiotherapy", "temperature 38.2 C",
    ],
    "invoice": [
        "total due: {amount}", "VAT included", "payment terms: 30 days", "item: {product} x{qty}",
        "subtotal {amount}", "thank you for your business", "late fees apply after 30 days",
    ],
    "public_text": [
        "{company} today announced {product} {version}", "the update is available at {public_url}",
        "the weather in {city} will be mild this week", "registration opens next week",
        "{product} processed {n} rows per second on a laptop", "tickets cost {amount}",
        "train services to {city} are reduced on {weekday}", "the museum is open daily",
        "{company} reported revenue growth of {pct}%", "see {public_url} for the documentation",
        "press Ctrl+K to open the command palette", "the library hosts a free workshop",
        "a strong password is long and unique", "version {version} improves startup time by {pct}%",
        "use a password manager for every site", "Berlin, Paris and Madrid are popular destinations",
    ],
}

_OPENERS: dict[str, list[str]] = {
    "support_ticket": ["Ticket #{ticket}", "Support request {ticket}", "[{ticket}] New issue", "Case {ticket}",
                       "Customer complaint", "Escalation", "Bug report: {product} {version}", "Help desk note"],
    "email": ["Subject: {subject}", "Re: {subject}", "Fwd: {subject}", "Hello,", "Hi team,", "Dear Sir or Madam,",
              "Good morning,", "To whom it may concern,"],
    "hr_note": ["HR note", "Employee record", "Confidential - HR", "Personnel file update", "Onboarding",
                "Leave request", "Payroll change", "Exit interview"],
    "medical_note": ["Clinical note", "Patient record", "Visit summary", "Discharge note", "Referral",
                     "Lab results", "Nurse note {time}", "Prescription"],
    "invoice": ["Invoice {invoice}", "Receipt", "Payment confirmation", "Statement", "Billing notice",
                "Credit note {invoice}", "Order {order}", "Payment reminder"],
    "public_text": ["News", "Announcement", "Release notes {version}", "Tip of the day", "Weather", "Events",
                    "Changelog", "Travel update"],
}
_FORM_PII_FIELDS = [
    "Name: {nameN}", "Full name: {nameN}", "Customer: {nameN}", "Patient: {nameN}", "Employee: {nameN}",
    "Contact: {nameN}", "Email: {emailN}", "E-mail: {emailN}", "Phone: {phoneN}", "Mobile: {phoneN}",
    "Tel: {phoneN}", "Address: {addrN}", "Street: {streetN}", "Date of birth: {dobN}", "DOB: {dobN}",
    "Date: {date}", "IBAN: {iban}", "Account: {account}", "Card: {card}", "SSN: {ssn}", "Customer ID: {cust}",
    "Policy: {policy}", "Website: {profileN}", "Link: {url}", "Password: {password}", "API key: {apikey}",
    "Token: {token}", "Emergency contact: {nameN}, {phoneN}", "Requester: {nameN} <{emailN}>",
    "Home address: {addrN}", "Start date: {date}", "Bank account: {iban}",
]
_FORM_NEUTRAL_FIELDS = [
    "Company: {company}", "Department: {dept}", "Product: {product}", "City: {city}", "Order: {order}",
    "Status: open", "Priority: high", "Subject: {subject}", "Ticket: {ticket}", "Amount: {amount}",
    "Version: {version}", "Team: {team}", "Job title: {job}", "Medication: {drug}", "Symptom: {symptom}",
    "Invoice: {invoice}", "Quantity: {qty}", "Source: Web Form", "Channel: Phone Support",
    "Category: Billing Question", "Assigned team: Customer Success", "Location: {city} Office",
    "Request ID: {uuid}", "IP: {ip}", "Time: {time}", "Plan: Business", "Region: Europe West",
]
_WRAPPERS = (('"', '"'), ("'", "'"), ("(", ")"), ("[", "]"), ("", "?"), ("", "!"), ("", ")."), ("*", "*"),
             ('"', '"}'), ("<", ">"), ("(", "),"), ("", ":"), ('"', '",'))
_CLOSINGS = ["Best,", "Regards,", "Thanks,", "Kind regards,", "Cheers,", "Sincerely,"]
_CONNECTORS = [", ", " and ", "; ", " - ", ", and ", " about ", " because ", " so ", " but ", " when ", " if ",
               " then "]


def _split_items(items: list[str], split: str) -> list[str]:
    if split == "all":
        return items
    return [item for index, item in enumerate(items) if (index % 4 == 3) == (split == "heldout")]


def _with_person(frame: str, rng: random.Random) -> str:
    first, second = rng.sample((1, 1, 2, 3), 2) if rng.random() < 0.5 else (1, 2)
    if first == second:
        second = first % 3 + 1
    return frame.replace("N}", f"{first}}}").replace("M}", f"{second}}}")


def _capitalised(text: str) -> str:
    return text[0].upper() + text[1:] if text and text[0] != "{" else text


def _context_words(locale: str, rng: random.Random, low: int = 1, high: int = 4) -> str:
    """A few ordinary words of the locale's language, sometimes capitalised (not personal data)."""
    words = _word_list(locale)
    picked = [rng.choice(words) for _ in range(rng.randint(low, high))]
    if rng.random() < 0.2:
        picked = [word.capitalize() for word in picked]
    return " ".join(picked)


def _word_list(locale: str) -> tuple[str, ...]:
    if locale not in _WORD_LISTS:
        language_locale = "en_US" if locale.startswith("en") else locale
        try:
            module = importlib.import_module(f"faker.providers.lorem.{language_locale}")
        except ImportError:
            module = importlib.import_module("faker.providers.lorem.en_US")
        _WORD_LISTS[locale] = tuple(word for word in module.Provider.word_list if word.isalpha())
    return _WORD_LISTS[locale]


_WORD_LISTS: dict[str, tuple[str, ...]] = {}


def _with_context_words(clause: str, locale: str, rng: random.Random) -> str:
    """Put unrelated words right before and/or after a clause, so a span's edge is learnt from the value itself
    and not from the few words the frames happen to use."""
    if rng.random() < 0.6:
        clause = f"{clause} {_context_words(locale, rng)}"
    if rng.random() < 0.35:
        clause = f"{_context_words(locale, rng)} {clause}"
    return clause


def _noise_clause(locale: str, rng: random.Random) -> str:
    """A clause of ordinary words around one value that is not personal data, or two people apart by a few words."""
    if rng.random() < 0.3:
        return _with_person(f"{{nameN}} {_context_words(locale, rng, 1, 2)} {{nameM}}", rng)
    return (f"{_context_words(locale, rng, 0, 3)} {{neutral{rng.randint(1, 9)}}} "
            f"{_context_words(locale, rng, 0, 3)}").strip()


def _decorated(frame: str, rng: random.Random) -> str:
    """Sometimes put quotes, brackets or punctuation right around the frame's first slot (boundary practice)."""
    if rng.random() >= 0.25:
        return frame
    before, after = rng.choice(_WRAPPERS)
    return _SLOT_PATTERN.sub(lambda m: f"{before}{m.group(0)}{after}", frame, count=1)


_JSON_LOG_KEYS: dict[str, list[str]] = {
    "{emailN}": ["email", "user", "recipient", "login", "to", "account_email", "from", "username"],
    "{phoneN}": ["phone", "msisdn", "tel", "mobile", "sms_to", "callback_number", "contact_phone", "phone_number"],
    "{nameN}": ["name", "full_name", "customer", "display_name", "holder", "patient", "employee", "requester"],
    "{url}": ["url", "link", "reset_url", "callback", "redirect_uri", "share_link", "profile", "href"],
    "{password}": ["password", "pwd", "passwd", "old_password", "new_password", "pass", "secret", "pin"],
    "{token}": ["token", "access_token", "session", "refresh_token", "auth", "bearer", "id_token", "cookie"],
    "{apikey}": ["api_key", "apikey", "key", "x-api-key", "client_key", "stripe_key", "private_key", "app_key"],
    "{iban}": ["iban", "bank_account", "payout_account", "account", "debit_account", "refund_to", "acct", "sepa"],
    "{card}": ["card", "pan", "card_number", "cc", "payment_card", "card_no", "credit_card", "charged_card"],
    "{dobN}": ["dob", "birth_date", "birthday", "date_of_birth", "born", "birthdate", "dateOfBirth", "bday"],
    "{addrN}": ["address", "shipping_address", "billing_address", "home", "street_address", "deliver_to",
                "addr", "residence"],
    "{neutral}": ["latency", "status", "request_id", "version", "size", "count", "elapsed", "trace_id"],
}
_JSON_LOG_MESSAGES = ["login failed", "password reset requested", "user updated", "payment declined",
                      "profile exported", "session expired", "webhook delivered", "retrying request"]


def _json_log_line(line_number: int, rng: random.Random, split: str) -> str:
    """One structured (JSON) log line: a timestamp, a level, a message and a few fields, some of them PII."""
    fields = [f'"ts": "{{ts{line_number}}}"', f'"level": "{rng.choice(("info", "warn", "error", "INFO", "ERROR"))}"',
              f'"msg": "{rng.choice(_split_items(_JSON_LOG_MESSAGES, split))}"']
    for _ in range(rng.randint(1, 3)):
        slot = rng.choice(list(_JSON_LOG_KEYS))
        key = rng.choice(_split_items(_JSON_LOG_KEYS[slot], split))
        value = slot.replace("{neutral}", f"{{neutral{rng.randint(1, 9)}}}")
        fields.append(f'"{key}": "{_with_person(value, rng)}"')
    return "{" + ", ".join(fields) + "}"


def _compose_form(kind: str, rng: random.Random, split: str) -> str:
    fields = []
    for _ in range(rng.randint(2, 6)):
        pool = _FORM_PII_FIELDS if rng.random() < 0.6 else _FORM_NEUTRAL_FIELDS
        fields.append(_with_person(rng.choice(_split_items(pool, split)), rng))
    opener = rng.choice(_split_items(_OPENERS[kind], split)) if kind in _OPENERS else ""
    return (opener + "\n" if opener and rng.random() < 0.7 else "") + "\n".join(fields)


def _compose_text(kind: str, rng: random.Random, split: str, locale: str) -> str:
    """Template text (with {slots}) of one composed document of ``kind``."""
    if kind not in ("chat", "log", "public_text") and rng.random() < 0.3:
        return _compose_form(kind, rng, split)
    fillers = _split_items(_FILLERS["general"], split) + 2 * _split_items(_FILLERS.get(kind, []), split)
    if kind == "public_text":
        sentences = [_capitalised(rng.choice(_split_items(_FILLERS["public_text"], split)))
                     for _ in range(rng.randint(1, 4))]
        opener = rng.choice(_split_items(_OPENERS["public_text"], split))
        return (opener + "\n" if rng.random() < 0.4 else "") + ". ".join(sentences) + "."
    groups = list(_FRAME_WEIGHTS)
    weights = [_FRAME_WEIGHTS[g] for g in groups]
    if kind == "log":
        lines = []
        for line_number in range(1, rng.randint(1, 5) + 1):
            if rng.random() < 0.3:
                lines.append(_json_log_line(line_number, rng, split))
                continue
            pool = _split_items(_LOG_FRAMES, split) if rng.random() < 0.65 else _split_items(_LOG_FILLERS, split)
            body = " ".join(_with_person(rng.choice(pool), rng) for _ in range(rng.randint(1, 2)))
            level = rng.choice(("INFO", "WARN", "ERROR", "DEBUG"))
            lines.append(f"{{ts{line_number}}} {level} {{service}}: {body}")
        return "\n".join(lines)
    clauses = [_decorated(_with_person(rng.choice(_split_items(_FRAMES[rng.choices(groups, weights)[0]], split)),
                                       rng), rng)
               for _ in range(rng.randint(1, 4))]
    if rng.random() < 0.5:  # half the documents get unrelated words around their clauses
        clauses = [_with_context_words(clause, locale, rng) for clause in clauses]
        clauses += [_noise_clause(locale, rng) for _ in range(rng.randint(0, 2))]
    clauses += [rng.choice(fillers) for _ in range(rng.randint(0, 2))]
    rng.shuffle(clauses)
    if kind == "chat":
        speakers = (1, 2)
        return "\n".join(f"{{first{speakers[i % 2]}}}: {clause}" for i, clause in enumerate(clauses))
    sentences, position = [], 0
    while position < len(clauses):
        take = rng.choice((1, 1, 2))
        sentences.append(_capitalised(rng.choice(_CONNECTORS).join(clauses[position:position + take])))
        position += take
    body = "".join(sentence + (rng.choice((". ", ". ", ".\n", "? ", "! ")) if i < len(sentences) - 1 else "")
                   for i, sentence in enumerate(sentences)) + rng.choice((".", ".", "!", "?", ""))
    opener = rng.choice(_split_items(_OPENERS[kind], split))
    if rng.random() < 0.6:
        body = opener + rng.choice(("\n", "\n\n", ": ", " - ")) + body
    if kind == "email" and rng.random() < 0.6:
        body += f"\n\n{rng.choice(_CLOSINGS)}\n{{name1}}"
    return body
