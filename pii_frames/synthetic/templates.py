"""The span labels, locales and document kinds of synthetic data, the hand-written templates, and the slot
syntax they are written in (``{slot}`` fields, ``<<a|b>>`` alternatives).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pii_frames.model.config import DEFAULT_SPAN_CLASS_NAMES

__all__ = ["KINDS", "LOCALES", "SPAN_LABELS", "Template", "template_catalog"]

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

    >>> from pii_frames.synthetic import template_catalog
    >>> ids = {t.template_id for t in template_catalog(split="heldout")}
    >>> "email.03" in ids and "email.02" not in ids
    True
    """
    if split not in _TEMPLATE_SPLITS:
        raise ValueError(f"templates must be one of {_TEMPLATE_SPLITS}, got {split!r}")
    if split == "all":
        return _CATALOG
    return tuple(t for t in _CATALOG if t.heldout == (split == "heldout"))


# The template syntax: ``<<a|b|c>>`` picks one alternative, ``{slot}``/``{slot2}`` is a slot and its entity index.
_CHOICE_PATTERN = re.compile(r"<<(.*?)>>", re.S)
_SLOT_PATTERN = re.compile(r"\{([a-z_]+?)(\d?)\}")


def _sorted_spans(record: dict) -> list[tuple[int, int, str]]:
    """An opf record's spans as sorted ``(start, end, label)`` triples (the inverse of :func:`_span_dict`)."""
    spans = []
    for key, offsets in record.get("spans", {}).items():
        label = key.split(":", 1)[0].strip()
        spans.extend((int(start), int(end), label) for start, end in offsets)
    return sorted(spans)


def _span_dict(text: str, spans) -> dict[str, list[list[int]]]:
    """``(start, end, label)`` triples of ``text`` as opf's ``{"label: surface": [[start, end], ...]}``, in order."""
    by_key: dict[str, list[list[int]]] = {}
    for start, end, label in spans:
        by_key.setdefault(f"{label}: {text[start:end]}", []).append([start, end])
    return by_key
