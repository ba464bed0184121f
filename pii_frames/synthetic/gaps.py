"""Documents aimed at what real text has and the templates lack (``generate(gaps=...)``): e-mail headers and
signatures, references that are not PII, names in other cases and scripts, bare cells, look-alike words.
"""

from __future__ import annotations

import random

from pii_frames.synthetic.composed import (
    _FILLERS,
    _FRAMES,
    _capitalised,
    _context_words,
    _split_items,
    _with_person,
)

# --------------------------------------------------------------------------------------------------------------
# Real-text gaps (generate(gaps=...)). A model trained on the pieces above and on real annotated prose still
# missed what neither shows: e-mail headers and signatures with "Last, First" names, legal and technical
# references (section signs, article and case numbers, versions, amounts) that are not PII, names in lower or
# upper case, names right next to quotes and punctuation, names from outside the seven faker locales, table
# cells that hold nothing but a name, and capitalised words that only look like names ("Feedback:", "Hunt").
# --------------------------------------------------------------------------------------------------------------

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
