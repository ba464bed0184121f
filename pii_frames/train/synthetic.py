"""Synthetic documents with exact PII spans, written in the opf example format.

Every record looks like the examples ``opf eval`` / ``opf train`` read::

    {"text": "...",
     "spans": {"private_person: Ada Lovelace": [[8, 20]], ...},
     "info": {"kind": "email", "locale": "en_GB", "template": "email.04", "seed": 123}}

Documents are rendered from hand-written templates (support tickets, chats, emails, HR notes, medical notes,
invoices, logs with credentials, and PII-free public text as negatives) whose slots are filled with
:mod:`faker` values for several locales. Offsets are computed while the text is assembled, so
``text[start:end]`` is always exactly the surface in the span key. With ``composed=`` a share of the
documents is instead assembled from short clause frames, form fields and fillers; half of those also get
unrelated words of the locale's language and non-personal numbers (quantities, codes, versions, ids) right
around their values, and log documents get some JSON lines, so a model learns where a value ends from the
value itself rather than from the few words the templates use.

A quarter of the templates of every kind are *held out*: ``generate(..., templates="heldout")`` draws only
from them, so an evaluation can measure how a model trained on ``templates="train"`` does on phrasings it has
never seen. Output is deterministic for a given seed and faker version, in every process.

This module depends only on the standard library and faker, so it can be used without the rest of
pii_frames::

    >>> from pii_frames.train.synthetic import generate
    >>> record = generate(1, seed=7)[0]
    >>> all(record["text"][s:e] == key.split(": ", 1)[1]
    ...     for key, offsets in record["spans"].items() for s, e in offsets)
    True
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import random
import re
import string
import tempfile
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Callable, Iterable

from faker import Faker

from pii_frames.model.config import DEFAULT_SPAN_CLASS_NAMES

__all__ = [
    "SPAN_LABELS",
    "LOCALES",
    "KINDS",
    "Template",
    "template_catalog",
    "generate",
    "write_jsonl",
]

#: The eight span classes of the opf v2 taxonomy, in model order.
SPAN_LABELS = DEFAULT_SPAN_CLASS_NAMES

LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL")

#: Document kinds; they double as the document classes of the embedded model's doc head.
KINDS = (
    "support_ticket",
    "chat",
    "email",
    "hr_note",
    "medical_note",
    "invoice",
    "log",
    "public_text",
)

_TEMPLATE_SPLITS = ("train", "heldout", "all")


@dataclass(frozen=True)
class Template:
    """One document template.

    ``text`` holds ``{slot}`` fields (a lowercase slot name plus an optional entity index, e.g. ``{name2}``)
    and ``<<a|b|c>>`` alternatives (one picked at random; an empty alternative makes a part optional).
    ``language`` restricts a template to locales of that language (``None``: English text, any locale).
    """

    template_id: str
    kind: str
    text: str
    language: str | None
    heldout: bool


# --------------------------------------------------------------------------------------------------------------
# Templates. Within each kind every fourth template (index 3, 7, 11, ...) is held out of training.
# Identifiers tied to one person (bank accounts, IBANs, cards, national/tax ids, customer, employee, patient
# and policy numbers) are labelled account_number; ticket, order and invoice numbers are not personal and stay
# unlabelled, as do log timestamps, request ids, commit hashes, IP addresses and public URLs.
# --------------------------------------------------------------------------------------------------------------

_RAW_TEMPLATES: dict[str, list[tuple[str | None, str]]] = {
    "support_ticket": [
        (None, "Ticket #{ticket}\nCustomer: {name1}\nEmail: {email1}\nPhone: {phone1}\n\n"
               "Hi, I can't log in since {date}. <<Please reset my password.|Can you help?|Thanks in advance.>>"),
        (None, "Subject: Refund request for order {order}\n\nHello support, this is {name1}. I was charged twice on "
               "{date} for order {order}. Please refund to account {iban}. You can call me at {phone1}."),
        (None, "{name1} ({email1}) reported that the {product} app crashes when uploading files. Last seen {date}. "
               "<<Assigned to|Escalated to|Handled by>> {name2}."),
        (None, "Customer {name1} called from {phone1} about a delivery to {addr1}. The parcel was due {date} but "
               "never arrived. Order {order}, carrier {company}."),
        (None, "[{ticket}] Priority: high\nReporter: {email1}\nDescription: After upgrading {product} to {version}, "
               "the dashboard at {url} shows someone else's data. <<Please investigate ASAP.|This looks like a "
               "privacy issue.|>>"),
        (None, "Hi team, my name is {name1} and my account number is {account}. I moved to {addr1} last month, "
               "please update my billing address. <<Best|Thanks|Cheers>>, {first1}"),
        (None, "Call summary: {first1} {last1} wanted to change the email on file from {email1} to {email2}. "
               "Verified with date of birth {dob1}."),
        (None, "Escalation: {name1} says the reset link {url} expired before they could use it. Reach them at "
               "{phone1} or {email1}."),
        (None, "Ticket {ticket} closed by {name2}. Resolution: replacement device shipped to {addr1}. "
               "Customer {name1} confirmed receipt on {date}."),
        (None, "Complaint from {name1}: \"Someone used my card {card} at {company} on {date}. Please block it "
               "immediately.\" Callback number: {phone1}."),
        (None, "Account recovery for {email1}: the caller gave the old password {password} and the phone number "
               "{phone1}. Identity not confirmed, do not proceed."),
        (None, "New ticket via web form\nName: {name1}\nCompany: {company}\nMessage: our integration fails with "
               "401 since {date}. We rotated the key to {apikey} but it still fails."),
        (None, "Ticket #{ticket}: the export button in {product} {version} does nothing on Safari. Steps to "
               "reproduce attached. <<No customer data involved.|Workaround: use Chrome.|>>"),
        (None, "Hello, I am {name1}, customer id {cust}. My new phone number is {phone1} and I would like SMS "
               "alerts sent there from {date} on."),
        (None, "Internal note: {first2} verified {name1} by the last transaction on {date}. Card on file {card}, "
               "shipping address {addr1}."),
        (None, "Ticket {ticket} reopened. {name1} writes: \"the portal still shows my old address ({addr1}), and "
               "the link you sent ({url}) gives a 404.\""),
    ],
    "chat": [
        (None, "{first1}: hey, can you send me {first2}'s number?\n{first3}: sure, it's {phone2}\n{first1}: thanks!"),
        (None, "[{time}] {first1}: my new address is {addr1}\n[{time2}] {first2}: got it, I'll send the invite there"),
        (None, "{first1}: what's the wifi password?\n{first2}: {password}\n{first1}: <<thx|🙏|thanks!>>"),
        (None, "{first1}: did you see the email from {name3}?\n{first2}: yes, she wants to meet on {date}. her "
               "email is {email3} if you need it"),
        (None, "{first1}: happy birthday!! 🎉 born {dob2}, right?\n{first2}: haha yes, thanks {first1}"),
        (None, "{first1}: here's the doc link {url}\n{first2}: it asks for access, can you add {email2}?"),
        (None, "{first1}: I'm at {street1} now, call me on {phone1} when you arrive"),
        (None, "{first1}: can you wire the money to {iban}?\n{first2}: which name is on the account?\n{first1}: "
               "{name1}"),
        (None, "{first1}: the staging token is {token}, don't share it\n{first2}: ok, I'll rotate it after the demo "
               "on {date}"),
        (None, "{first1}: anyone know a good {product} tutorial?\n{first2}: {public_url} helped me a lot\n"
               "{first1}: thanks!"),
        (None, "{first1}: lunch tomorrow?\n{first2}: can't, dentist at {time}\n{first1}: ok, {weekday} then"),
        (None, "{first1}: my linkedin is {profile1}, feel free to connect\n{first2}: done! mine is {profile2}"),
        (None, "{first1}: is {name3} still at {company}?\n{first2}: no, she moved. try {email3} or {phone3}"),
        (None, "{first1}: meeting moved to {date} {time}\n{first2}: 👍\n{first3}: works for me"),
        ("de", "{first1}: Hallo {first2}, meine neue Nummer ist {phone1}.\n{first2}: Danke! Schick mir bitte auch "
               "deine Adresse.\n{first1}: {addr1}"),
        ("fr", "{first1} : Salut {first2}, tu peux m'envoyer l'adresse mail de {name3} ?\n{first2} : oui, c'est "
               "{email3}"),
        ("es", "{first1}: Hola {first2}, mi cumpleaños es el {dob1}.\n{first2}: ¡Genial! Te llamo al {phone1}."),
        ("it", "{first1}: Ciao {first2}, ecco il mio IBAN: {iban}\n{first2}: Grazie, faccio il bonifico domani."),
        ("nl", "{first1}: Hoi {first2}, mijn adres is {addr1}.\n{first2}: Top, ik stuur het pakket op {date}."),
        ("de", "Nachricht von {name1}: Bitte ruf mich unter {phone1} zurück. Das Passwort für das Portal ist "
               "{password}, bitte nicht weitergeben."),
    ],
    "email": [
        (None, "From: {name1} <{email1}>\nTo: {name2} <{email2}>\nSubject: {subject}\n\nHi {first2},\n\n"
               "<<Following up on our call|As discussed|Quick update>>: the contract will be signed on {date}. "
               "Let me know if anything changes.\n\nBest,\n{first1}\n{phone1}"),
        (None, "Dear {name1},\n\nThank you for your application. We would like to invite you for an interview on "
               "{date}. Please confirm by replying to {email2}.\n\nKind regards,\n{name2}\n{company}"),
        (None, "Hi {first1},\n\nyour temporary password is {password}. Please change it after your first login "
               "at {url}.\n\n{company} IT"),
        (None, "Hello,\n\nplease update my mailing address to {addr1}. My customer number is {cust}.\n\n"
               "Thanks,\n{name1}"),
        (None, "Subject: Invoice {invoice}\n\nDear {name1}, please find attached the invoice for {amount}. Payment "
               "to {iban} is due on {date}.\n\nRegards, {name2}"),
        (None, "---------- Forwarded message ---------\nFrom: {email1}\nDate: {date}\nSubject: {subject}\n\n"
               "{first2}, can you handle this? {first3} is out until {date2}."),
        (None, "Hi all,\n\nplease welcome {name1} to the {team} team! {first1} joins us from {company} and can be "
               "reached at {email1} or {phone1}.\n\nCheers,\n{first2}"),
        (None, "Dear {name1},\n\nwe noticed a sign-in to your account from a new device on {date}. If this wasn't "
               "you, reset your password here: {url}\n\nThe {company} Security Team"),
        (None, "Hi {first1}, attached are the slides. The recording is at {url} (passcode {password}). "
               "Thanks, {first2}"),
        (None, "{company} newsletter: this month we shipped {product} {version}. Read the release notes at "
               "{public_url}. You are receiving this because you subscribed to product updates."),
        (None, "Hi {first1},\n\ncould you send the signed NDA to {name3} at {addr3}? Her direct line is {phone3}."
               "\n\nThanks!\n{name2}"),
        (None, "Dear Sir or Madam,\n\nI, {name1}, born on {dob1}, hereby cancel my membership (no. {account}) "
               "effective {date}.\n\nSincerely,\n{name1}\n{addr1}"),
        (None, "Hi {first1},\n\nthe quarterly numbers are in the shared folder. Nothing urgent, we can go through "
               "them on {weekday}.\n\n{first2}"),
        (None, "To: {email2}\nCc: {email3}\nSubject: {subject}\n\n{first2}, {first3} - I'll be on leave from {date} "
               "to {date2}. {name1} covers for me ({phone1})."),
        (None, "Hello {name2},\n\nmy personal site {profile1} lists my portfolio. My home address for the courier is "
               "{addr1}.\n\nRegards,\n{name1}"),
        (None, "Your one-time recovery code is {token}. It expires on {date}. If you did not request it, contact "
               "{email2}."),
        ("de", "Sehr geehrte Frau {last1},\n\nvielen Dank für Ihre Anfrage vom {date}. Bitte überweisen Sie den "
               "Betrag auf das Konto {iban}.\n\nMit freundlichen Grüßen\n{name2}"),
        ("fr", "Bonjour {first1},\n\nvoici mon nouveau numéro : {phone2}. Mon adresse e-mail reste {email2}.\n\n"
               "Cordialement,\n{name2}"),
        ("es", "Hola {first1}:\n\nte escribo para confirmar la cita del {date}. Mi dirección es {addr2}.\n\n"
               "Un saludo,\n{name2}"),
        ("nl", "Beste {first1},\n\nhierbij mijn gegevens: {name2}, {addr2}, telefoon {phone2}.\n\n"
               "Met vriendelijke groet,\n{first2}"),
        ("it", "Gentile {name1},\n\nle confermiamo l'appuntamento del {date}. Per informazioni scriva a {email2}."
               "\n\nCordiali saluti,\n{name2}"),
    ],
    "hr_note": [
        (None, "Employee: {name1}\nEmployee ID: {emp_id}\nDate of birth: {dob1}\nHome address: {addr1}\n"
               "Emergency contact: {name2}, {phone2}"),
        (None, "Performance review for {name1} ({job}), {dept}. {first1} exceeded targets this quarter. "
               "Manager: {name2}. Next review scheduled for {date}."),
        (None, "{name1} requested parental leave from {date} to {date2}. Salary continues to {iban}. "
               "Approved by {name2}."),
        (None, "Onboarding checklist - {name1}\n- laptop shipped to {addr1}\n- SSN on file: {ssn}\n"
               "- start date {date}\n- buddy: {name2}"),
        (None, "Exit interview notes: {first1} {last1} is leaving for {company}. Forwarding email: {email1}. "
               "Final paycheck to account {account}."),
        (None, "Confidential: complaint filed on {date} by {name1} against {name2} ({dept}). Investigator: "
               "{name3}, extension {ext}."),
        (None, "Payroll change: {name1}, tax ID {ssn}, new bank account {iban}, effective {date}."),
        (None, "Reference check for candidate {name1}: spoke with former manager {name2} ({phone2}) on {date}. "
               "Positive feedback overall."),
        (None, "Team offsite attendance: {first1}, {first2} and {first3} confirmed. Dietary requirements "
               "collected. Venue: {company} conference center."),
        (None, "The {dept} department moves to the third floor next month. Desks will be reassigned; no action "
               "is needed from employees."),
        (None, "Sick note received from {name1} covering {date} to {date2}. Doctor: Dr. {last2}. Employee "
               "reachable at {phone1}."),
        (None, "Relocation package for {name1}: new home address {addr1}, moving date {date}, contact {email1}."),
        (None, "Candidate {name1} ({email1}, {phone1}) accepted the {job} offer. Start date {date}; background "
               "check id {emp_id}."),
        (None, "Reminder: the annual compliance training is due at the end of the month for all {dept} staff."),
        (None, "Salary adjustment for {first1} {last1} (employee {emp_id}) approved by {name2} on {date}. "
               "Paid to card account {account}."),
        (None, "Visa paperwork for {name1}: passport copy received {date}, home address {addr1}, "
               "personal email {email1}."),
    ],
    "medical_note": [
        (None, "Patient: {name1}\nDOB: {dob1}\nMRN: {mrn}\nVisit date: {date}\n\nChief complaint: {symptom}. "
               "Prescribed {drug} {dose}. Follow-up in two weeks."),
        (None, "{name1}, {age}-year-old, presented on {date} with {symptom}. Lives at {addr1}. Next of kin: "
               "{name2} ({phone2})."),
        (None, "Discharge summary: {first1} {last1} was admitted {date} and discharged {date2}. Medications: "
               "{drug}. GP: Dr. {name3}."),
        (None, "Lab results for patient {name1} (DOB {dob1}) received {date}: values within normal range. "
               "Results sent to {email1}."),
        (None, "Appointment reminder: {name1}, you have an appointment with Dr. {last2} on {weekday}, {date} at "
               "{time}. To reschedule call {phone2}."),
        (None, "Insurance: {company} policy {policy} for {name1}. Claims portal: {url}."),
        (None, "Nurse note {time}: patient {first1} reports {symptom}, pain 4/10. Spouse {name2} at bedside."),
        (None, "Referral: Dr. {name2} refers {name1} (born {dob1}, phone {phone1}) to cardiology for evaluation "
               "of {symptom}."),
        (None, "General advice: patients with {symptom} should rest, drink fluids and contact their GP if "
               "symptoms persist beyond a week."),
        (None, "Vaccination record: {name1}, {vaccine} dose 2 on {date}, batch {batch}. Address on file: "
               "{street1}."),
        (None, "Telehealth session with {first1} {last1} on {date}. Link: {url}. Patient email: {email1}."),
        (None, "Prescription for {name1}, {addr1}: {drug} {dose}, refills 2. Prescriber: Dr. {name2}."),
        (None, "Ward round {date}: bed 4, {name1}, stable overnight. Daughter {name2} asked to be called on "
               "{phone2}."),
        (None, "Clinic protocol: {drug} {dose} is contraindicated in patients with severe kidney disease."),
        (None, "MRN {mrn} / {name1} / DOB {dob1}: MRI scheduled for {date}. Insurance id {policy}."),
        (None, "Patient {first1} {last1} uploaded a photo of the rash to {url} and asks for a call back at "
               "{phone1}."),
    ],
    "invoice": [
        (None, "INVOICE {invoice}\nDate: {date}\nBill to: {name1}\n{addr1}\n\nItem: {product} x{qty}  {amount}\n"
               "Total due: {amount2}\n\nPay to IBAN {iban}"),
        (None, "Receipt #{invoice} - {company}\nCustomer: {name1} ({email1})\nPaid {amount} with card {card} on "
               "{date}."),
        (None, "Statement for account {account}\nAccount holder: {name1}\nPeriod: {date} - {date2}\n"
               "Balance: {amount}"),
        (None, "Payment reminder: invoice {invoice} for {amount} was due on {date}. Please transfer to {iban}. "
               "Questions? Contact {name2} at {email2}."),
        (None, "Order {order} shipped to {name1}, {addr1}. Contact phone: {phone1}. Subtotal {amount}."),
        (None, "Bank transfer details\nBeneficiary: {name1}\nIBAN: {iban}\nReference: {invoice}\nAmount: {amount}"),
        (None, "{company} price list {version}\n{product}: {amount}\n{product2}: {amount2}\nPrices exclude VAT."),
        (None, "Credit note {invoice} issued to {name1} on {date}. Refund of {amount} credited to card {card}."),
        (None, "Purchase order from {company}: {qty} units of {product}, deliver to {addr1} by {date}. "
               "Buyer: {name1}, {phone1}."),
        (None, "Subscription renewal for {email1}: plan Pro, {amount}/month, next billing date {date}, customer "
               "account {account}."),
        (None, "Direct debit mandate: I, {name1}, authorise {company} to debit account {iban}. Signed {date}."),
        (None, "Utility bill for {addr1}, account {account}: {amount} due {date}."),
        (None, "Quote {invoice}: {qty} x {product} at {amount} each. Valid for 30 days. Shipping not included."),
        (None, "Payment received from {name1} ({email1}) on {date}: {amount}, card {card}. Thank you!"),
        (None, "Expense claim by {name1}: taxi {amount}, hotel {amount2}. Reimburse to {iban} before {date}."),
        (None, "Late fee notice for customer {cust}: {name1}, {addr1}. Outstanding {amount} since {date}."),
    ],
    "log": [
        (None, "{ts} INFO auth: user {email1} logged in from {ip}"),
        (None, "{ts} ERROR db: connection failed: postgres://app:{password}@{host}:5432/prod"),
        (None, "export OPENAI_API_KEY={apikey}\nexport AWS_REGION=eu-west-1"),
        (None, "{ts} WARN api: request {uuid} rejected, invalid token \"{token}\" for user {email1}"),
        (None, "config.yaml:\n  database:\n    user: svc_app\n    password: {password}\n  smtp:\n    host: {host}\n"
               "    api_key: {apikey}"),
        (None, "{ts} DEBUG http: GET {url} 200 {ms}ms"),
        (None, "curl -H \"Authorization: Bearer {token}\" https://api.{domain}/v1/users/me"),
        (None, "{ts} INFO billing: charged card {card} for customer {name1} (id {cust})"),
        (None, "{ts} INFO deploy: {service} {version} rolled out to {n} pods in {duration}s (commit {sha})"),
        (None, "{ts} ERROR worker: job {uuid} failed after 3 retries: TimeoutError"),
        (None, "AWS_ACCESS_KEY_ID={aws_id}\nAWS_SECRET_ACCESS_KEY={aws_secret}"),
        (None, "{\"ts\": \"{ts}\", \"level\": \"info\", \"msg\": \"password reset requested\", \"email\": \"{email1}\", "
               "\"reset_url\": \"{url}\"}"),
        (None, "{ts} INFO sms: verification code sent to {phone1}"),
        (None, "{ts} INFO slack: posting with SLACK_BOT_TOKEN={slack}"),
        (None, "git remote set-url origin https://oauth2:{token}@gitlab.{domain}/platform/{service}.git"),
        (None, "{ts} WARN login: 5 failed attempts for {email1} from {ip}; last password tried \"{password}\""),
        (None, "{ts} INFO cache: evicted {n} keys in {ms}ms, hit ratio 0.{n2}"),
        (None, "{ts} INFO user.update id={cust} name=\"{name1}\" phone=\"{phone1}\" address=\"{addr1}\""),
        (None, "STRIPE_SECRET_KEY={apikey}\nDATABASE_URL=postgres://svc:{password}@{host}/billing"),
        (None, "{ts} ERROR mailer: bounce for {email1} (550 mailbox unavailable), profile {profile1}"),
    ],
    "public_text": [
        (None, "{company} today announced {product} {version}, which adds offline mode and faster sync. The update "
               "is available at {public_url}."),
        (None, "Installation: run `pip install {package}` and import it in your script. See {public_url} for the "
               "full documentation."),
        (None, "The weather in {city} will be mild this week, with highs around {temp} degrees and light rain on "
               "{weekday}."),
        (None, "Recipe: mix 200 g flour, 2 eggs and 300 ml milk. Let the batter rest for 30 minutes, then fry thin "
               "pancakes."),
        (None, "Release notes {version}: fixed a crash when opening large files; improved startup time by {pct}%; "
               "updated translations."),
        (None, "Our office hours are Monday to Friday, 9:00 to 17:00. For general questions, visit {public_url}."),
        (None, "{company} reported revenue growth of {pct}% in the last quarter, driven by demand for {product}."),
        (None, "Tip: use keyboard shortcuts to speed up your workflow. Press Ctrl+K to open the command palette in "
               "{product}."),
        (None, "The {city} public library hosts a free workshop on data literacy. Registration opens next week."),
        (None, "Error codes: 401 means the request lacks valid credentials; 403 means the credentials are valid "
               "but not sufficient."),
        (None, "Benchmark: {product} processed {n} rows per second on a laptop, {pct}% faster than the previous "
               "version."),
        (None, "How to rotate API keys: open the settings page, create a new key, update your deployments, then "
               "revoke the old key."),
        (None, "The museum in {city} is open daily except {weekday}. Tickets cost {amount}; children enter free."),
        (None, "Changelog: {service} now retries failed uploads up to {n} times. See {public_url} for details."),
        (None, "A strong password is long and unique. Password managers make it easy to use a different one for "
               "every site."),
        (None, "Train services between {city} and {city2} are reduced on {weekday} because of track maintenance."),
    ],
}


def _build_catalog() -> tuple[Template, ...]:
    catalog = []
    for kind in KINDS:
        for index, (language, text) in enumerate(_RAW_TEMPLATES[kind]):
            catalog.append(Template(f"{kind}.{index:02d}", kind, text, language, heldout=index % 4 == 3))
    return tuple(catalog)


_CATALOG = _build_catalog()


def template_catalog(*, split: str = "all") -> tuple[Template, ...]:
    """All templates of one split (``"train"``, ``"heldout"`` or ``"all"``).

    >>> from pii_frames.train.synthetic import template_catalog
    >>> ids = {t.template_id for t in template_catalog(split="heldout")}
    >>> "email.03" in ids and "email.02" not in ids
    True
    """
    if split not in _TEMPLATE_SPLITS:
        raise ValueError(f"templates must be one of {_TEMPLATE_SPLITS}, got {split!r}")
    if split == "all":
        return _CATALOG
    return tuple(t for t in _CATALOG if t.heldout == (split == "heldout"))


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


# --------------------------------------------------------------------------------------------------------------
# Real-text gaps (generate(gaps=...)). A model trained on the pieces above and on real annotated prose still
# missed what neither shows: e-mail headers and signatures with "Last, First" names, legal and technical
# references (section signs, article and case numbers, versions, amounts) that are not PII, names in lower or
# upper case, names right next to quotes and punctuation, names from outside the seven faker locales, table
# cells that hold nothing but a name, and capitalised words that only look like names ("Feedback:", "Hunt").
# --------------------------------------------------------------------------------------------------------------

# Latin-script locales first (most of them), then a few other scripts; names only, never the text around them.
_FOREIGN_LOCALES = ("pl_PL", "pt_BR", "tr_TR", "sv_SE", "cs_CZ", "fi_FI", "ro_RO", "hu_HU", "vi_VN", "id_ID",
                    "en_IN", "ga_IE", "hr_HR", "da_DK", "no_NO", "yo_NG", "zu_ZA", "fil_PH", "ru_RU", "el_GR",
                    "uk_UA", "ja_JP", "zh_CN", "ko_KR")
_FOREIGN_FAKERS: dict[str, Faker] = {}
_CAPITAL_WORDS = ("Feedback", "Update", "Reminder", "Note", "Summary", "Question", "Request", "Complaint",
                  "Thanks", "Welcome", "Urgent", "Follow-up", "Hunt", "Green", "Rose", "Young", "Bill", "Mark",
                  "Will", "Grant", "Page", "Hope", "Faith", "Joy", "Frank", "Sterling", "Lane", "Park", "Brown",
                  "Victoria", "Jordan", "Washington", "Florence", "Paris", "Sydney", "Chase", "Hall", "King")


def _foreign_name(rng: random.Random) -> str:
    locale = rng.choice(_FOREIGN_LOCALES)
    if locale not in _FOREIGN_FAKERS:
        _FOREIGN_FAKERS[locale] = _hash_independent(Faker(locale))
    fake = _FOREIGN_FAKERS[locale]
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


_HEADER_FROM = ["From: {lastfirstN} <{emailN}>", "From: {nameN} <{emailN}>", "From: {lastfirstN}",
                'From: "{lastfirstN}" <{emailN}>', "Von: {lastfirstN}", "De: {nameN} [mailto:{emailN}]",
                "From: {nameN} [mailto:{emailN}]", "Sender: {lastfirstN}", "From: {nameucN}",
                "From: {lastfirstN} ({company})", "Van: {lastfirstN}", "From: {intlN} <{emailN}>"]
_HEADER_TO = ["To: {lastfirstN}", "To: {lastfirstN}; {lastfirstM}", "To: {nameN} <{emailN}>", "Cc: {lastfirstN}",
              "An: {lastfirstN}", "À: {nameN}", "To: {emailN}", "Cc: {lastfirstN}; {nameM}", "To: {lastfirstN}, {dept}",
              "Bcc: {emailN}", "Cc: {intlN}", "Aan: {lastfirstN}"]
_HEADER_OTHER = ["Sent: {weekday}, {date} {time}", "Date: {date}", "Importance: High", "Gesendet: {date}",
                 "Attachments: report_{n}.pdf", "Envoyé : {date}", "Reply-To: {emailN}", "Sent: {date}"]
_SIGNATURES = ["--\n{nameN}\n{job}\n{company}", "{nameN} | {job} | {company}\nTel. {phoneN}",
               "Best regards,\n{nameN}\n{job}, {dept}", "{firstN}\n\nSent from my iPhone", "Mit freundlichen Grüßen\n{nameN}",
               "Cordialement,\n{nameN}\n{company}", "{nameN}\n{company}\nPhone: {phoneN}\nEmail: {emailN}",
               "Thanks,\n{firstN} {lastN}\n{job}", "Regards\n{nameucN}\n{dept} | {company}", "-- \n{lastfirstN}\n{company}",
               "Saludos,\n{nameN}", "Kind regards,\n\n{nameN}\nMobile: {phoneN}"]
_GREETINGS = ["Hi {firstN},", "Dear {nameN},", "Hello {firstN},", "Dear Mr {lastN},", "Dear Ms {lastN},",
              "Sehr geehrte Frau {lastN},", "Bonjour {firstN},", "{firstN},", "Hi all,", "Dear colleagues,",
              "Good morning {firstN},", "Hola {firstN},"]
# Reference sentences without personal data (also used for PII-free public text) ...
_REFERENCE_NEUTRAL = [
    "pursuant to {ref}, the request is denied", "as set out in {ref}", "the court dismissed case {caseno}",
    "in case {caseno} the appeal was allowed", "see {ref} and {ref2}", "the fee of {amount} is payable under {ref}",
    "upgrade to {ref} as described in the notes", "{ref} applies to {company}", "the contract value is {amount} (excl. VAT)",
    "decision {caseno} of the Board of Appeal", "the judgment in {caseno} was published", "compare {ref}",
    "the claim under {ref} fails", "file reference {caseno}", "costs of {amount} were awarded in {caseno}",
    "fixed in {ref}", "{ref} does not apply", "the parties agreed on {amount} under {ref}", "Az. {caseno}",
    "the tribunal referred to {ref} of the Act", "patch {version} closes {ref}", "we comply with {ref}",
    "the total of {amount} includes {pct}% VAT", "appeal {caseno} is pending",
]
# ... and with a person (claimants, judges, authors).
_REFERENCE_PERSON = [
    "the claimant {nameN} relies on {ref}", "judge {nameN} referred to {ref}", "{nameN} v. {company}, {caseno}",
    "counsel for {nameN} cited {ref}", "the defendant, {lastN}, did not appear", "{lastfirstN} (claimant) v. {company}",
    "filed by {nameN} under {caseno} on {date}", "{nameN} wrote the opinion in {caseno}",
    "in {caseno}, {nameN} argued that {ref} was breached", "report by {intlN} on {ref}",
    "{lastN} J. held that {ref} applies", "witness {nameN} confirmed the amount of {amount}",
]
_SOCIAL = [
    "lol {namelcN} is here", "omg {namelcN} just replied", "THANK YOU {nameucN}!!!", "WELCOME {nameucN}",
    "“{nameN}” was on the list", "{nameN}'s new album is out", "with {intlN} and {nameM}",
    '{intlN} said: "no comment"', "met {intlN} in town", "— {nameN}", "'{firstN}' said yes", "{nameN}: thanks!",
    "interview with {intlN}", "{intlN}, {intlM} and {nameN} signed the letter", "photo by {intlN}", "by {nameucN}",
    "[{nameN}]", "«{intlN}»", "„{nameN}“", "{nameN}; {nameM}", "{namelcN} and {namelcM}", "({nameN}, {job})",
    "{nameN}, who joined in {n},", "{nameucN} WINS AGAIN", "go {namelcN}!!", "{intlN}'s talk", "thanks to {intlN}.",
    "big hug to {firstN}!", "{lastN}'s office", '"{nameN}"', "{nameN}...", "{nameN}?!", "cc {namelcN}",
    "{cap}: {nameN} called", "{cap} - see {ref}", "{cap}: great service from {nameN}", "{cap} meeting moved",
]
_BARE_CELLS = ["{nameN}", "{lastfirstN}", "{nameucN}", "{intlN}", "{firstN} {lastN}", "{namelcN}", "{nameN}\t{emailN}",
               "{lastfirstN}; {lastfirstM}", "{nameN} ({job})", "{nameN}, {nameM}", "{emailN}", "{phoneN}",
               # titles and post-nominals stay outside the span, as in real-ner's annotations
               "Mrs. {nameN}", "Dr. {nameN}", "{nameN} MD", "Mr. {nameN}", "{nameN} PhD", "Ms. {nameN}",
               "{nameN} DDS", "Prof. {nameN}", "{cap}", "{nameN} Jr."]
_GAP_PIECES = [*_HEADER_FROM, *_HEADER_TO, *_HEADER_OTHER, *_SIGNATURES, *_GREETINGS, *_REFERENCE_NEUTRAL,
               *_REFERENCE_PERSON, *_SOCIAL, *_BARE_CELLS]


def _gap_sentences(rng: random.Random, split: str, pools: list[list[str]], low: int, high: int) -> str:
    clauses = [_with_person(rng.choice(_split_items(rng.choice(pools), split)), rng)
               for _ in range(rng.randint(low, high))]
    return " ".join(_capitalised(clause) + rng.choice((".", ".", ";", "", "!")) for clause in clauses).strip()


def _compose_gap(kind: str, rng: random.Random, split: str, locale: str) -> str:
    """Template text of one document aimed at a real-text gap (see the section comment above)."""
    people = [_REFERENCE_PERSON, _SOCIAL, _FRAMES["person"]]
    if kind == "public_text":  # stays PII-free: references, amounts and look-alike capitalised words only
        return _gap_sentences(rng, split, [_REFERENCE_NEUTRAL, ["{cap}: {ref}", "{cap} {ref}", "{cap}: {caseno}",
                                                            "{cap} - {ref}"]],
                              1, 4)
    if kind == "email" or (kind in ("support_ticket", "hr_note") and rng.random() < 0.3):
        lines = [_with_person(rng.choice(_split_items(_HEADER_FROM, split)), rng).replace("N}", "1}")]
        for _ in range(rng.randint(1, 3)):  # recipients are people 2 and 3; the sender is person 1
            first = rng.choice((2, 3))
            line = rng.choice(_split_items(_HEADER_TO + _HEADER_OTHER, split))
            lines.append(line.replace("N}", f"{first}}}").replace("M}", f"{5 - first}}}"))
        lines.append("Subject: {subject}")
        rng.shuffle(lines[1:])
        body = _gap_sentences(rng, split, [_REFERENCE_NEUTRAL, _REFERENCE_PERSON, _FRAMES["person"],
                                           _FILLERS["email"], _FILLERS["general"]], 1, 4)
        greeting = _with_person(rng.choice(_split_items(_GREETINGS, split)), rng)
        signature = rng.choice(_split_items(_SIGNATURES, split)).replace("N}", "1}")
        quoted = ""
        if rng.random() < 0.25:  # a quoted earlier message, as in real threads
            quoted = ("\n\n-----Original Message-----\n" + _with_person(rng.choice(_split_items(_HEADER_FROM, split)), rng)
                      + "\n" + _gap_sentences(rng, split, people, 1, 2))
        return "\n".join(lines) + "\n\n" + greeting + "\n\n" + body + "\n\n" + signature + quoted
    if rng.random() < 0.2:  # a table cell or short field that holds nothing but the value
        return _with_person(rng.choice(_split_items(_BARE_CELLS, split)), rng)
    pools = people + [_REFERENCE_NEUTRAL, _FILLERS["general"]]
    text = _gap_sentences(rng, split, pools, 1, 5)
    if rng.random() < 0.3:
        text = f"{_context_words(locale, rng)} {text} {_context_words(locale, rng, 0, 2)}".strip()
    if kind == "chat":
        return "\n".join(f"{{first{1 + i % 2}}}: {line}" for i, line in enumerate(text.split(". ")))
    return text


_CHOICE_PATTERN = re.compile(r"<<(.*?)>>", re.S)
_SLOT_PATTERN = re.compile(r"\{([a-z_]+?)(\d?)\}")


def _check_catalog() -> None:
    # Fail at import time, not in the middle of a long generation run, if a template names an unknown slot.
    texts = [(t.template_id, t.text) for t in _CATALOG]
    pieces = [*_LOG_FRAMES, *_LOG_FILLERS, *_FORM_PII_FIELDS, *_FORM_NEUTRAL_FIELDS,
              *(f for fs in _FRAMES.values() for f in fs),
              *(f for fs in _FILLERS.values() for f in fs), *(o for os_ in _OPENERS.values() for o in os_),
              *_GAP_PIECES]
    texts += [("composition piece", _with_person(piece, random.Random(0))) for piece in pieces]
    for where, text in texts:
        for name, _ in _SLOT_PATTERN.findall(text):
            if name not in _SLOTS:
                raise RuntimeError(f"{where} {text!r} uses unknown slot {{{name}}}")


_check_catalog()


def _render(template_text: str, ctx: _RenderContext) -> tuple[str, dict[str, list[list[int]]]]:
    text = _CHOICE_PATTERN.sub(lambda m: ctx.rng.choice(m.group(1).split("|")), template_text)
    pieces: list[str] = []
    found: list[list] = []  # [label, start, end]
    filled: dict[tuple[str, int], tuple[str, str | None]] = {}
    cursor = 0
    length = 0
    for match in _SLOT_PATTERN.finditer(text):
        literal = text[cursor:match.start()]
        pieces.append(literal)
        length += len(literal)
        name, index = match.group(1), int(match.group(2) or 1)
        if (name, index) not in filled:
            surface, label = _SLOTS[name](ctx, index)
            filled[(name, index)] = (surface.strip(), label)
        surface, label = filled[(name, index)]
        if label is not None and surface:
            # "{first1} {last1}" is one person, as annotators would mark it: merge spans split by one space.
            if found and found[-1][0] == label and found[-1][2] + 1 == length and pieces[-1].endswith(" "):
                found[-1][2] = length + len(surface)
            else:
                found.append([label, length, length + len(surface)])
        pieces.append(surface)
        length += len(surface)
        cursor = match.end()
    pieces.append(text[cursor:])
    rendered = "".join(pieces)
    spans: dict[str, list[list[int]]] = {}
    for label, start, end in found:
        spans.setdefault(f"{label}: {rendered[start:end]}", []).append([start, end])
    return rendered, spans


# --------------------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------------------

def _hash_independent(fake: Faker) -> Faker:
    """Sort the word lists some faker locales build from sets (it_IT cities), whose order follows the
    process's string-hash seed: without this a seed gives the same records only within one process."""
    for provider in fake.providers:
        if isinstance(getattr(provider, "cities", None), list):
            provider.cities = sorted(provider.cities)
    return fake


def generate(
    n: int,
    *,
    seed: int = 0,
    locales: Iterable[str] | None = None,
    kinds: Iterable[str] | None = None,
    templates: str = "train",
    composed: float = 0.0,
    gaps: float = 0.0,
) -> list[dict]:
    """Generate ``n`` synthetic records in the opf example format.

    Args:
        n: number of records.
        seed: makes the output reproducible; the same arguments always give the same records.
        locales: faker locales to draw from (default: :data:`LOCALES`).
        kinds: document kinds to draw from (default: :data:`KINDS`, including PII-free ``public_text``).
        templates: ``"train"`` (templates used for training), ``"heldout"`` (templates reserved for
            evaluation) or ``"all"``.
        composed: share of documents assembled from clause frames, fillers and openers of the same split
            instead of a whole hand-written template (more varied contexts; ``info.template`` is
            ``"composed.<kind>"``). 0 gives template documents only.
        gaps: share of documents aimed at what real text has and templates lack (``info.template`` is
            ``"gap.<kind>"``): e-mail headers and signatures with "Last, First" names, legal and technical
            references that are not PII (section signs, article and case numbers such as 12345/67, versions,
            amounts), lower- and upper-case names, names next to quotes and punctuation, names from 24 more
            faker locales, cells holding only a name, and capitalised words that are not names. Drawn before
            ``composed``; 0 (the default) leaves the output of every seed as it was.

    Returns:
        A list of dicts ``{"text", "spans", "info": {"id", "kind", "locale", "template", "seed"}}``.

    >>> from pii_frames.train.synthetic import generate
    >>> records = generate(3, seed=1, kinds=["log"], templates="heldout")
    >>> [r["info"]["kind"] for r in records]
    ['log', 'log', 'log']
    >>> generate(3, seed=1) == generate(3, seed=1)
    True
    """
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    locales = tuple(locales) if locales is not None else LOCALES
    kinds = tuple(kinds) if kinds is not None else KINDS
    unknown_locales = [loc for loc in locales if loc not in LOCALES]
    if unknown_locales or not locales:
        raise ValueError(f"unknown or empty locales {unknown_locales or locales!r}; choose from {LOCALES}")
    unknown_kinds = [kind for kind in kinds if kind not in KINDS]
    if unknown_kinds or not kinds:
        raise ValueError(f"unknown or empty kinds {unknown_kinds or kinds!r}; choose from {KINDS}")
    pool = template_catalog(split=templates)
    if not 0.0 <= composed <= 1.0:
        raise ValueError(f"composed must be a share between 0 and 1, got {composed!r}")
    if not 0.0 <= gaps <= 1.0:
        raise ValueError(f"gaps must be a share between 0 and 1, got {gaps!r}")

    # Candidate templates per (kind, locale): English ones everywhere plus those written in the locale's language.
    candidates: dict[tuple[str, str], list[Template]] = {}
    for kind in kinds:
        for locale in locales:
            language = locale.split("_")[0]
            candidates[(kind, locale)] = [t for t in pool if t.kind == kind and t.language in (None, language)]
    fakers = {locale: _hash_independent(Faker(locale)) for locale in locales}
    rng = random.Random(seed)
    records = []
    for position in range(n):
        kind, locale = rng.choice(kinds), rng.choice(locales)
        record_seed = rng.getrandbits(32)
        record_rng = random.Random(record_seed)
        if gaps and rng.random() < gaps:
            template_id, language = f"gap.{kind}", None
            template_text = _compose_gap(kind, record_rng, templates, locale)
        elif composed and rng.random() < composed:
            template_id, language = f"composed.{kind}", None
            template_text = _compose_text(kind, record_rng, templates, locale)
        else:
            options = candidates[(kind, locale)] or [t for t in pool if t.kind == kind]
            if not options:
                raise ValueError(f"no {templates!r} templates for kind {kind!r}")
            template = rng.choice(options)
            template_id, language, template_text = template.template_id, template.language, template.text
        fake = fakers[locale]
        fake.seed_instance(record_seed)
        text, spans = _render(template_text, _RenderContext(fake, record_rng, locale, language))
        records.append({
            "text": text,
            "spans": spans,
            "info": {"id": f"synthetic-{seed}-{position}", "kind": kind, "locale": locale,
                     "template": template_id, "seed": record_seed},
        })
    return records


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> Path:
    """Write records as JSON lines, atomically (a reader never sees a half-written file).

    >>> import tempfile, pathlib
    >>> from pii_frames.train.synthetic import generate, write_jsonl
    >>> out = write_jsonl(pathlib.Path(tempfile.mkdtemp()) / "synth.jsonl", generate(2, seed=3))
    >>> len(out.read_text(encoding="utf-8").splitlines())
    2
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            for record in records:
                out.write(json.dumps(record, ensure_ascii=False))
                out.write("\n")
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target
