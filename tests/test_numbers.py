"""fsacd.core.numbers: caller numbers to E.164 (national formats, URIs, hostile input)."""

import pytest

from fsacd.core.numbers import MAX_INPUT, RAW_KEEP, Number, normalise

VALID = [
    # Germany
    ("030 1234567", "DE", "+49301234567"),
    ("030/1234567", "DE", "+49301234567"),
    ("030-123 45 67", "DE", "+49301234567"),
    ("(030) 123.45.67", "DE", "+49301234567"),
    ("0049 30 1234567", "DE", "+49301234567"),
    ("+49 (0)30 1234567", "DE", "+49301234567"),
    ("+49301234567", "DE", "+49301234567"),
    ("0151 23456789", "DE", "+4915123456789"),
    # United States
    ("(201) 555-0123", "US", "+12015550123"),
    ("201.555.0123", "US", "+12015550123"),
    ("1-201-555-0123", "US", "+12015550123"),
    ("011 49 30 1234567", "US", "+49301234567"),
    ("0049 30 1234567", "US", "+49301234567"),  # 00 is not the US IDD: retried as +
    # United Kingdom
    ("020 7946 0018", "GB", "+442079460018"),
    ("07911 123456", "GB", "+447911123456"),
    ("+44 20 7946 0018", "US", "+442079460018"),
    # China
    ("010 1234 5678", "CN", "+861012345678"),
    ("138 0013 8000", "CN", "+8613800138000"),
    ("00 86 10 1234 5678", "CN", "+861012345678"),
    # Bangladesh
    ("01712-345678", "BD", "+8801712345678"),
    ("02-9876543", "BD", "+88029876543"),
    ("+880 1712 345678", "BD", "+8801712345678"),
    # URIs
    ("tel:+49-30-1234567", "DE", "+49301234567"),
    ("tel:+49-30-1234567;phone-context=example.com", "DE", "+49301234567"),
    ("sip:+49301234567@pbx.example;user=phone", "DE", "+49301234567"),
    ("sips:03012345678@pbx.example", "DE", "+493012345678"),
    ('"Bob" <sip:0301234567@pbx.example>', "DE", "+49301234567"),
    # other scripts' digits are read as digits
    ("٠٣٠١٢٣٤٥٦٧", "DE", "+49301234567"),  # Arabic-Indic
    ("০৩০১২৩৪৫৬৭", "DE", "+49301234567"),  # Bengali
    ("＋４９３０１２３４５６７", "DE", "+49301234567"),  # fullwidth
    ("030\u00a01234567", "DE", "+49301234567"),  # no-break space
    ("030–1234567", "DE", "+49301234567"),  # en dash
]


@pytest.mark.parametrize(("raw", "region", "e164"), VALID)
def test_valid(raw, region, e164):
    n = normalise(raw, region)
    assert n == Number(raw=raw, e164=e164, status="valid", reason="ok")


INVALID = [
    ("1234567", "DE"),  # local form without area code: not guessed
    ("555-0123", "US"),
    ("112", "DE"),  # short code
    ("911", "US"),
    ("+49", "DE"),
    ("+", "DE"),
    ("0", "DE"),
    ("+1 800 FLOWERS", "US"),  # no vanity letters
    ("030 1234567 ext 12", "DE"),
    ("030-1234567#", "DE"),
    ("*31#030123456", "DE"),
    ("49+301234567", "DE"),  # + only at the start
    ("++49301234567", "DE"),
    ("030\n1234567", "DE"),  # control characters
    ("030\r\n1234567", "DE"),
    ("030\t1234567", "DE"),
    ("\x00", "DE"),
    ("030'1234567", "DE"),
    ("${uuid}", "DE"),
    ("0301234567,1", "DE"),
    ("sip:alice@example.com", "DE"),
    ("9" * 65, "DE"),  # longer than MAX_LEN
    ("+4930" + "1" * 60, "DE"),
    ("sip:" + "1" * 70 + "@x", "DE"),
    ("x" * (MAX_INPUT + 1), "DE"),
    ("+999 1234567", "DE"),  # no such country code
    ("\u202e0301234567", "DE"),  # right-to-left override
]


@pytest.mark.parametrize(("raw", "region"), INVALID)
def test_invalid(raw, region):
    n = normalise(raw, region)
    assert n.status == "invalid"
    assert n.e164 is None
    assert n.reason and n.reason != "ok"


@pytest.mark.parametrize(
    "raw",
    [
        "anonymous",
        "Anonymous",
        "ANONYMOUS",
        "unknown",
        "private",
        "Restricted",
        "unavailable",
        "withheld",
        " anonymous ",
        "sip:anonymous@anonymous.invalid",
        '"Anonymous" <sip:anonymous@anonymous.invalid>',
    ],
)
def test_withheld(raw):
    n = normalise(raw, "DE")
    assert (n.status, n.e164) == ("withheld", None)


@pytest.mark.parametrize("raw", [None, "", "   ", "\t", "tel:", "sip:@pbx.example"])
def test_empty(raw):
    n = normalise(raw, "DE")
    assert (n.status, n.e164) == ("empty", None)


def test_raw_is_capped():
    n = normalise("1" * 10_000, "DE")
    assert n.status == "invalid"
    assert len(n.raw) == RAW_KEEP


def test_reason_never_contains_the_number():
    for raw in ["030 1234567", "1234567", "+1 800 FLOWERS", "9" * 100]:
        n = normalise(raw, "DE")
        assert "1234567" not in n.reason
        assert "999" not in n.reason


def test_unsupported_region_is_a_value_error():
    with pytest.raises(ValueError):
        normalise("030 1234567", "XX")
