"""Normalised identity values: the same person must produce the same key on every channel."""

from __future__ import annotations

import re
from email.utils import parseaddr
from functools import lru_cache

import phonenumbers

# What carriers and PBXs put in the caller-id when the number is withheld.
_ANONYMOUS = frozenset({
    "anonymous", "unknown", "restricted", "private", "unavailable", "withheld", "blocked",
})
_POSSIBLE = phonenumbers.ValidationResult.IS_POSSIBLE
_EMAIL = re.compile(r"^[^@\s]+@[^@\s.][^@\s]*$")  # dotless domains: "localhost" in labs


def normalize_phone(raw: str | None, region: str) -> str | None:
    """E.164 (e.g. "+12025550100"), or None when the input cannot be a phone number.

    `region` (ISO 3166 alpha-2) reads national numbers. Internal extensions ("1000") are
    not phone numbers: store them with kind "extension".
    """
    text = (raw or "").strip()
    if not text or text.lower() in _ANONYMOUS:
        return None
    try:
        number = phonenumbers.parse(text, region.upper())
    except phonenumbers.NumberParseException:
        return None
    # NOTE: "possible" (right length for the country), not "valid": a caller id comes from
    # the network, and libphonenumber's range metadata lags newly allocated blocks (it also
    # rejects 555 test numbers); refusing a real caller's number would split a customer.
    # IS_POSSIBLE_LOCAL_ONLY ("555-0123" without an area code) has no E.164 form.
    if phonenumbers.is_possible_number_with_reason(number) != _POSSIBLE:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str | None) -> str | None:
    """A lower-case bare address ("Bob <Bob@X.org>" -> "bob@x.org"), or None if invalid."""
    text = (raw or "").strip()
    if text.lower().startswith("mailto:"):
        text = text[len("mailto:"):]
    _, address = parseaddr(text)
    # Local parts are case-sensitive by the RFC but never in practice; one key per person
    # matters more here.
    address = address.strip().lower()
    if len(address) > 320 or not _EMAIL.match(address):
        return None
    return address


# Every inbound message names its sender again (a chat visitor's email, a caller's
# number): parsing it each time was ~3% of the event loop's CPU at 500 chat messages/s.
@lru_cache(maxsize=4096)
def normalize(kind: str, raw: str | None, region: str) -> str | None:
    """The stored form of an identity value of `kind`, or None if it is not usable."""
    if kind == "phone":
        return normalize_phone(raw, region)
    if kind == "email":
        return normalize_email(raw)
    value = (raw or "").strip()
    return value if value and len(value) <= 320 else None
