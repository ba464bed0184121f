"""Regenerate ``sample_customers.csv``: 200 fake support tickets full of (fake) personal data.

Everything is made up by Faker with a fixed seed, so the file is reproducible:

    python examples/make_sample_customers.py
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from faker import Faker

ROWS = 200
SEED = 2026
OUT = Path(__file__).with_name("sample_customers.csv")

# Each body mixes several kinds of PII the model knows: people, emails, phones,
# addresses, dates, URLs, account numbers and secrets.
TEMPLATES = [
    "Hi, I'm {name}. My card ending {card4} was charged twice on {date}. Please refund to IBAN {iban}. "
    "You can reach me at {phone}.",
    "Hello support, please update my shipping address to {address}. My email is {email} and my order "
    "number is {order}.",
    "{name} here - I can't log in since {date}. I reset my password to {password} but it still fails. "
    "Call me back on {phone}.",
    "Our integration broke after rotating keys. The new API key is {api_key}; the webhook is {url}. "
    "Contact {name} ({email}) for details.",
    "Please close account {account} belonging to {name}, born {dob}. Send the confirmation to {address}.",
    "Hi team, {name} from {company}. Invoice {order} dated {date} went to {email} instead of "
    "{email2}. Thanks!",
    "Delivery failed at {address}. The courier tried {phone} twice. Tracking: {url}",
    "I want to dispute the transfer from account {account} on {date}. My colleague {name2} can confirm; "
    "her number is {phone2}.",
    "Feedback: great service from your agent {name2} on {date}. No further action needed.",
    "The product page {url} shows the wrong price. Screenshot sent from {email}.",
]
CHANNELS = ["email", "chat", "phone", "web form"]
PRIORITIES = ["low", "normal", "high", "urgent"]


def main() -> None:
    fake = Faker("en_US")
    fake.seed_instance(SEED)
    rng = random.Random(SEED)
    rows = []
    for i in range(ROWS):
        name = fake.name()
        values = {
            "name": name,
            "name2": fake.name(),
            "email": fake.email(),
            "email2": fake.company_email(),
            "phone": fake.phone_number(),
            "phone2": fake.phone_number(),
            "address": fake.address().replace("\n", ", "),
            "date": fake.date_between("-2y", "today").strftime(rng.choice(["%B %d, %Y", "%d/%m/%Y", "%Y-%m-%d"])),
            "dob": fake.date_of_birth(minimum_age=18, maximum_age=90).strftime("%d %B %Y"),
            "iban": fake.iban(),
            "account": fake.bban(),
            "card4": f"{rng.randrange(10000):04d}",
            "order": f"ORD-{rng.randrange(10**6):06d}",
            "password": fake.password(length=12),
            "api_key": "sk_live_" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(24)),
            "url": fake.url() + fake.uri_path(),
            "company": fake.company(),
        }
        body = rng.choice(TEMPLATES).format(**values)
        rows.append(
            {
                "ticket_id": 1000 + i,
                "created_at": fake.date_time_between("-1y", "now").isoformat(timespec="seconds"),
                "channel": rng.choice(CHANNELS),
                "priority": rng.choice(PRIORITIES),
                "customer": name,
                # A few tickets arrive without a body: the pipeline must keep them null.
                "body": "" if rng.random() < 0.03 else body,
            }
        )
    with OUT.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {OUT}")


if __name__ == "__main__":
    main()
