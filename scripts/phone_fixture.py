#!/usr/bin/env python3
"""Prints tests/fixtures/phone_numbers.json: a few hundred numbers of the countries wabridge
serves, each with what libphonenumber says of it (E.164 form, valid / possible / impossible).

libphonenumber here is the PyPI `phonenumbers` port, pinned in scripts/requirements.txt to the
release the Rust `phonenumber` crate carries (its version's build suffix in Cargo.lock, e.g.
0.3.10+9.0.33 -> 9.0.33). shared/core's identity tests compare the crate against this file, so
they fail when the crate disagrees with libphonenumber or when Cargo.lock moves to another
metadata release without the file being regenerated:

    bash scripts/phone-fixture.sh

The numbers are deterministic (a fixed seed): each region's example numbers per type, and
variants of them (other leading digits, other endings, a digit too few or too many), written as
E.164, international and national input.
"""

import json
import pathlib
import random
import re
import sys

import phonenumbers as pn
from phonenumbers import PhoneNumberFormat as Format
from phonenumbers import PhoneNumberType as Type
from phonenumbers import ValidationResult

# Latin America first, then the other markets the product serves or its users call.
REGIONS = [
    "MX", "BR", "AR", "CO", "CL", "PE", "US", "ES", "IL",
    "EC", "VE", "UY", "PY", "BO", "GT", "CR", "PA", "DO", "SV", "HN", "NI",
    "CA", "PT", "GB", "DE", "FR", "IT", "IN",
]
TYPES = [Type.MOBILE, Type.FIXED_LINE, Type.TOLL_FREE, Type.VOIP]
ROOT = pathlib.Path(__file__).resolve().parent.parent


def crate_metadata_release():
    """The libphonenumber release of the `phonenumber` crate in Cargo.lock."""
    lock = (ROOT / "Cargo.lock").read_text()
    found = re.search(r'name = "phonenumber"\nversion = "[^"+]*\+([^"]+)"', lock)
    if not found:
        sys.exit("phone_fixture: no phonenumber crate with a +<release> version in Cargo.lock")
    return found.group(1)


def describe(number):
    if pn.is_valid_number(number):
        return "valid"
    reason = pn.is_possible_number_with_reason(number)
    # IS_POSSIBLE_LOCAL_ONLY is no WhatsApp account: a wa_id is a whole international number.
    return "possible" if reason == ValidationResult.IS_POSSIBLE else "impossible"


def variants(region, national, rng):
    """The example's national number and digits-level variants of it."""
    out = [national]
    # A leading 0 reads as a national prefix in most countries: not a digits-level variant.
    for lead in rng.sample("123456789", 3):
        out.append(lead + national[1:])
    for _ in range(2):
        tail = "".join(rng.choice("0123456789") for _ in range(4))
        out.append(national[:-4] + tail)
    out.append(national[:-1])
    out.append(national + rng.choice("0123456789"))
    return out


def entry(region, number, style):
    if style == "e164":
        text = pn.format_number(number, Format.E164)
    elif style == "international":
        text = pn.format_number(number, Format.INTERNATIONAL)
    else:
        text = pn.format_number(number, Format.NATIONAL)
    # What libphonenumber reads back from the text, as a person or a CRM would have typed it.
    parsed = pn.parse(text, region)
    return {
        "input": text,
        "region": region,
        "e164": pn.format_number(parsed, Format.E164),
        "validity": describe(parsed),
    }


def main():
    rng = random.Random(19)
    numbers, seen = [], set()
    styles = ["e164", "international", "national"]
    for region in REGIONS:
        code = pn.country_code_for_region(region)
        for kind in TYPES:
            example = pn.example_number_for_type(region, kind)
            if example is None:
                continue
            national = pn.national_significant_number(example)
            for i, digits in enumerate(variants(region, national, rng)):
                key = (region, digits)
                if key in seen or not digits:
                    continue
                seen.add(key)
                number = pn.PhoneNumber(country_code=code, national_number=int(digits))
                if digits.startswith("0"):
                    # Italian-style leading zeros are part of the national number.
                    number.italian_leading_zero = True
                    number.number_of_leading_zeros = len(digits) - len(digits.lstrip("0"))
                numbers.append(entry(region, number, styles[(len(numbers) + i) % 3]))
    json.dump(
        {
            "generator": "scripts/phone_fixture.py (bash scripts/phone-fixture.sh)",
            "libphonenumber": pn.__version__,
            "crate_metadata": crate_metadata_release(),
            "numbers": numbers,
        },
        sys.stdout,
        indent=1,
        ensure_ascii=False,
    )
    sys.stdout.write("\n")
    if pn.__version__ != crate_metadata_release():
        print(
            f"phone_fixture: warning: phonenumbers {pn.__version__} differs from the crate's "
            f"metadata {crate_metadata_release()}; pin the closest release in "
            "scripts/requirements.txt",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
