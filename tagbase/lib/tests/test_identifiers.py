"""Identifier normalisation: every habit of writing a value gives one normalised value, and
every damaged value is rejected with its reason code, never repaired."""

# Look-alike characters (full-width, Cyrillic, Arabic-Indic digits) are what these tests are about.
# ruff: noqa: RUF001

import pickle

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tagbase.lib import identifiers
from tagbase.lib.identifiers import (
    ID_TYPE_LABELS,
    REASON_CODES,
    IdType,
    InvalidIdentifier,
    clean_raw,
    normalize,
    normalize_card,
    normalize_email,
    normalize_external_id,
    normalize_phone,
    normalize_sc_id,
    parse_id_type,
)


def reason(id_type, raw, **kwargs):
    """The reason code normalize() rejects ``raw`` with (fails if it is accepted)."""
    with pytest.raises(InvalidIdentifier) as caught:
        normalize(id_type, raw, **kwargs)
    assert caught.value.code in REASON_CODES
    assert caught.value.message == str(caught.value)
    return caught.value.code


# --- types -----------------------------------------------------------------------------------


def test_every_identifier_type_has_a_label():
    assert set(ID_TYPE_LABELS) == set(IdType)
    assert ID_TYPE_LABELS[IdType.SC_ID] == "Tagbase ID"
    assert ID_TYPE_LABELS[IdType.EXTERNAL_ID] == "Partner system ID"


def test_id_types_are_parsed_case_insensitively_with_spaces_around():
    assert parse_id_type(" Phone ") is IdType.PHONE
    assert parse_id_type("SC_ID") is IdType.SC_ID
    assert parse_id_type(IdType.CARD) is IdType.CARD


@pytest.mark.parametrize("value", ["id", "tagbase", "", "phones", "e-mail"])
def test_an_unknown_id_type_is_refused_with_the_list_of_known_ones(value):
    with pytest.raises(ValueError) as caught:
        parse_id_type(value)
    assert str(caught.value) == (
        f"unknown identifier type {value!r}; expected one of sc_id, external_id, phone, email, card"
    )


def test_normalize_refuses_an_unknown_id_type_with_a_plain_value_error():
    with pytest.raises(ValueError) as caught:
        normalize("passport", "123")
    assert not isinstance(caught.value, InvalidIdentifier)


def test_normalize_accepts_the_enum_or_its_string_value():
    assert normalize(IdType.SC_ID, "42") == normalize("sc_id", "42") == "42"


def test_normalize_returns_text_for_every_type_and_sc_id_as_its_digits():
    assert normalize_sc_id(" 42 ") == 42
    assert normalize(IdType.SC_ID, " 42 ") == "42"


def test_an_invalid_identifier_survives_pickling_with_its_code():
    error = pickle.loads(pickle.dumps(InvalidIdentifier("empty", "The value is empty.")))
    assert (error.code, error.message) == ("empty", "The value is empty.")


def test_a_non_text_value_is_a_programming_error():
    with pytest.raises(TypeError):
        clean_raw(b"123")
    with pytest.raises(TypeError):
        normalize(IdType.SC_ID, None)


# --- cleaning shared by every type ---------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("", ""),
        (" ", " "),
        ("\t", "\t"),
        ("\r\n", "\r\n"),
        ("\u00a0", "\u00a0"),  # NBSP
        ("\u202f", "\u2009"),  # narrow NBSP, thin space
        ("\u200b", "\u200b"),  # ZWSP
        ("\ufeff", ""),  # a BOM in the middle of a file
        ("\u200c\u200d", "\u2060"),  # ZWNJ, ZWJ, WORD JOINER
        ("\u3000", "\u3000"),  # ideographic space
    ],
)
def test_white_space_and_zero_width_characters_at_the_ends_are_trimmed(left, right):
    assert clean_raw(f"{left}123{right}") == "123"
    samples = {
        IdType.SC_ID: "123",
        IdType.EXTERNAL_ID: "A-0123",
        IdType.PHONE: "+79123456789",
        IdType.EMAIL: "ivan@mail.ru",
        IdType.CARD: "0123ABC",
    }
    for id_type, value in samples.items():
        assert normalize(id_type, f"{left}{value}{right}") == value


def test_the_trimmed_set_is_python_white_space_without_the_ascii_separators_plus_zero_width():
    whitespace = {chr(c) for c in range(0x110000) if chr(c).isspace()}
    expected = whitespace - set("\x1c\x1d\x1e\x1f") | set("\u200b\u200c\u200d\u2060\ufeff")
    assert set(identifiers._STRIP) == expected


@pytest.mark.parametrize(
    ("raw", "position", "code_point"),
    [
        ("12\u200b34", 3, "U+200B"),  # ZWSP
        ("12\u202e34", 3, "U+202E"),  # right-to-left override
        ("12\u206634", 3, "U+2066"),  # left-to-right isolate
        ("12\u200f34", 3, "U+200F"),  # right-to-left mark
        ("12\u061c34", 3, "U+061C"),  # Arabic letter mark
        ("12\x0034", 3, "U+0000"),  # NUL
        ("12\t34", 3, "U+0009"),  # TAB inside is not white space around the value
        ("123\x00", 4, "U+0000"),  # NUL at the end is not white space either
        ("\x1f123", 1, "U+001F"),
        (" 12\x7f", 4, "U+007F"),
        ("\u00a012\u200d3", 4, "U+200D"),  # position counts the raw value
        ("12\u00ad34", 3, "U+00AD"),  # soft hyphen
        ("12\u202834", 3, "U+2028"),  # line separator
        ("12\ue00034", 3, "U+E000"),  # private use
        ("12\ud80034", 3, "U+D800"),  # lone surrogate (from surrogateescape decoding)
    ],
)
def test_control_bidi_and_zero_width_characters_inside_are_rejected_with_position(
    raw, position, code_point
):
    with pytest.raises(InvalidIdentifier) as caught:
        clean_raw(raw)
    assert caught.value.code == "control_character"
    assert f"position {position}" in caught.value.message
    assert code_point in caught.value.message
    for id_type in IdType:
        assert reason(id_type, raw) == "control_character"


@pytest.mark.parametrize("raw", ["", " ", "\t", "\u00a0\u200b\ufeff", "\r\n"])
def test_an_empty_value_is_rejected_as_empty(raw):
    for id_type in IdType:
        assert reason(id_type, raw) == "empty"


def test_full_width_digits_are_accepted_as_ascii_digits():
    assert normalize_sc_id("１２３４５") == 12345
    assert normalize(IdType.CARD, "１２３４ ５６７８") == "12345678"
    assert normalize(IdType.EXTERNAL_ID, "ＡＢ-００１") == "AB-001"
    assert normalize(IdType.PHONE, "８ ９１２ ３４５ ６７ ８９") == "+79123456789"


@pytest.mark.parametrize(
    "raw",
    [
        "١٢٣",  # Arabic-Indic
        "۱۲۳",  # extended Arabic-Indic (Persian)
        "१२३",  # Devanagari
        "12\U0001d7d1",  # mathematical bold digit (NFKC would make it 3)
        "12²",  # superscript (a footnote mark; NFKC would make it 122)
        "①②③",  # circled digits
    ],
)
def test_digits_of_other_scripts_are_rejected_for_numeric_types(raw):
    assert reason(IdType.SC_ID, raw) == "non_ascii_digit"
    assert reason(IdType.CARD, raw) == "non_ascii_digit"
    assert reason(IdType.PHONE, "8912345" + raw) == "non_ascii_digit"


# --- sc_id -----------------------------------------------------------------------------------


def test_an_sc_id_is_its_decimal_digits():
    assert normalize_sc_id("1") == 1
    assert normalize_sc_id("9223372036854775807") == 2**63 - 1


def test_leading_zeros_are_rejected_for_sc_id_not_guessed():
    assert reason(IdType.SC_ID, "0001234") == "leading_zero"
    assert reason(IdType.SC_ID, "01") == "leading_zero"


@pytest.mark.parametrize(
    "raw", ["0", "000", "-1", "-0", "9223372036854775808", "1" * 20, "9" * 10_000]
)
def test_zero_negative_and_too_large_sc_ids_are_out_of_range(raw):
    assert reason(IdType.SC_ID, raw) == "out_of_range"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("1.23457E+15", "spreadsheet_exponent"),
        ("1,23457E+15", "spreadsheet_exponent"),
        ("1.23457e+15", "spreadsheet_exponent"),
        ("1E+15", "spreadsheet_exponent"),
        ("1 234 567", "spreadsheet_grouping"),
        ("1\u00a0234\u00a0567", "spreadsheet_grouping"),  # NBSP
        ("1\u202f234\u202f567", "spreadsheet_grouping"),  # narrow NBSP (French, Russian)
        ("1\u2009234", "spreadsheet_grouping"),  # thin space
        ("1,234,567", "spreadsheet_grouping"),
        ("1'234'567", "spreadsheet_grouping"),
        ("1\u2019234\u2019567", "spreadsheet_grouping"),
        ("1234567.0", "spreadsheet_decimal"),
        ("1234567,0", "spreadsheet_decimal"),
        ("1234567.00", "spreadsheet_decimal"),
    ],
)
def test_spreadsheet_damage_in_an_sc_id_is_rejected_with_its_own_code(raw, code):
    assert reason(IdType.SC_ID, raw) == code


@pytest.mark.parametrize("raw", ["abc", "12a", "+123", "12.5", "1 2", "245.", "123;", "0x1F"])
def test_anything_else_non_numeric_is_not_a_number(raw):
    assert reason(IdType.SC_ID, raw) == "not_a_number"


def test_a_spreadsheet_message_says_what_is_wrong_without_repeating_the_value():
    with pytest.raises(InvalidIdentifier) as caught:
        normalize_sc_id("7.91234E+15")
    assert "spreadsheet" in caught.value.message
    assert "export the column as text" in caught.value.message
    assert "7.91234E+15" not in caught.value.message


# --- external_id -----------------------------------------------------------------------------


def test_leading_zeros_and_case_are_significant_in_an_external_id():
    assert normalize_external_id("0001234") == "0001234"
    assert normalize_external_id("0001234") != normalize_external_id("1234")
    assert normalize_external_id(" AbC-01 ") == "AbC-01"


def test_an_external_id_keeps_inner_spaces_and_punctuation():
    assert normalize_external_id("  CRM 2024/17.3  ") == "CRM 2024/17.3"


def test_an_external_id_over_100_characters_is_too_long():
    assert normalize_external_id("x" * 100) == "x" * 100
    assert reason(IdType.EXTERNAL_ID, "x" * 101) == "too_long"
    assert reason(IdType.EXTERNAL_ID, " " + "x" * 101 + " ") == "too_long"


# --- phone -----------------------------------------------------------------------------------

RUSSIAN_HABITS = [
    "+7 (912) 345-67-89",
    "8 912 345 67 89",
    "8(912)345-67-89",
    "79123456789",
    "9123456789",
    "+79123456789",
    "7 912 345 67 89",
    "8-912-345-67-89",
    "8 (912) 345-67-89",
    "+7-912-345-67-89",
    "8.912.345.67.89",
    "(912) 345-67-89",
    "\u00a0+7\u00a0912\u00a0345\u00a067\u00a089\u00a0",
]


@pytest.mark.parametrize("raw", RUSSIAN_HABITS)
def test_every_russian_phone_habit_gives_the_same_e164(raw):
    assert normalize_phone(raw) == "+79123456789"
    assert normalize(IdType.PHONE, raw) == "+79123456789"


def test_landline_and_toll_free_russian_numbers_are_accepted():
    assert normalize_phone("8 (495) 123-45-67") == "+74951234567"
    assert normalize_phone("8 800 555 35 35") == "+78005553535"


def test_kazakh_numbers_share_country_code_7():
    assert normalize_phone("8 700 123 45 67") == "+77001234567"
    assert normalize_phone("+7 700 123 45 67") == "+77001234567"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+44 20 7946 0958", "+442079460958"),
        ("+1 650 253 0000", "+16502530000"),
        ("+380 44 123 4567", "+380441234567"),
        ("+39 06 1234 5678", "+390612345678"),  # Italian leading zero kept
        ("8 10 44 20 7946 0958", "+442079460958"),  # Russian international prefix 810
    ],
)
def test_foreign_numbers_with_their_country_code_are_accepted(raw, expected):
    assert normalize_phone(raw) == expected


def test_the_default_region_reads_numbers_without_a_country_code():
    assert normalize_phone("020 7946 0958", region="GB") == "+442079460958"
    assert normalize(IdType.PHONE, "020 7946 0958", phone_region="GB") == "+442079460958"
    assert normalize_phone("+79123456789", region="GB") == "+79123456789"


def test_an_unknown_phone_region_is_a_configuration_error():
    with pytest.raises(ValueError) as caught:
        normalize_phone("9123456789", region="XX")
    assert not isinstance(caught.value, InvalidIdentifier)


@pytest.mark.parametrize(
    "raw",
    [
        "912345678",  # a digit short
        "8 912 345 67 8",
        "+7 912 345 67 89 89",  # too many digits
        "+7912345678",
        "12345",
        "+",
        "()",
        "+8 912 345 67 89",  # no country code 8
        "0079123456789",
        "912-FLOWERS",  # phonenumbers would turn letters into digits
        "+7 912 345 67 89 ext 5",
        "+7 (912) 345-67-89 доб. 12",
        "89123456789;89123456790",  # phonenumbers would read the second as an extension
        "+79123456789#5",
        "89123456789, 89123456790",
        "8+9123456789",
        "tel:+79123456789",
    ],
)
def test_impossible_numbers_letters_and_extensions_are_phone_invalid(raw):
    assert reason(IdType.PHONE, raw) == "phone_invalid"


@pytest.mark.parametrize("raw", ["7.91235E+10", "7,91235E+10", "7.91235e+10"])
def test_a_phone_in_exponent_form_is_spreadsheet_damage(raw):
    assert reason(IdType.PHONE, raw) == "spreadsheet_exponent"


def test_a_phone_over_64_characters_is_too_long():
    assert reason(IdType.PHONE, "8 912 345 67 89" + " " * 60 + "0") == "too_long"


ten_digit_national_numbers = st.text(alphabet="0123456789", min_size=10, max_size=10)


def phonenumbers_e164(raw, region="RU"):
    """What phonenumbers alone makes of ``raw`` (None when it is not a valid number)."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@settings(max_examples=300)
@given(
    national=ten_digit_national_numbers,
    habit=st.sampled_from(["+7{}", "7{}", "8{}", "{}", "+7 ({}", "8-{}", "{}."]),
)
def test_the_fast_path_for_russian_habits_agrees_with_phonenumbers(national, habit):
    raw = habit.format(national)
    if habit == "+7 ({}":
        raw = f"+7 ({national[:3]}) {national[3:6]}-{national[6:8]}-{national[8:]}"
    try:
        ours = normalize_phone(raw)
    except InvalidIdentifier as error:
        assert error.code == "phone_invalid"
        ours = None
    assert ours == phonenumbers_e164(raw)


@pytest.mark.parametrize("prefix", ["", "7", "8", "+7"])
def test_the_fast_path_agrees_with_phonenumbers_for_every_three_digit_area_code(prefix):
    for area in range(1000):
        raw = f"{prefix}{area:03d}1234567"
        try:
            ours = normalize_phone(raw)
        except InvalidIdentifier:
            ours = None
        assert ours == phonenumbers_e164(raw), raw


# --- e-mail ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["Ivan.Petrov@Mail.RU", "ivan.petrov@mail.ru", " IVAN.PETROV@MAIL.RU ", "ivan.petrov@mail.ru."],
)
def test_emails_match_case_insensitively(raw):
    assert normalize_email(raw) == "ivan.petrov@mail.ru"


def test_an_international_domain_is_stored_in_its_idna_form():
    assert normalize_email("Info@Пример.РФ") == "info@xn--e1afmkfd.xn--p1ai"
    assert normalize_email("info@xn--e1afmkfd.xn--p1ai") == "info@xn--e1afmkfd.xn--p1ai"


def test_a_non_ascii_local_part_is_kept_lower_cased():
    assert normalize_email("Иван@Почта.рф") == "иван@xn--80a1acny.xn--p1ai"


@pytest.mark.parametrize(
    ("raw", "what"),
    [
        ("ivan.mail.ru", "no '@'"),
        ("ivan@@mail.ru", "more than one '@'"),
        ("a@b@mail.ru", "more than one '@'"),
        ("@mail.ru", "before the '@'"),
        ("ivan@", "after the '@'"),
        ("ivan@.", "after the '@'"),
        ("ivan@localhost", "no dot"),
        ("ivan petrov@mail.ru", "space"),
        ("ivan@mail .ru", "space"),
        ("ivan@mail..ru", "domain"),
        ("ivan@.mail.ru", "domain"),
        ("ivan@-mail.ru", "domain"),
        ("ivan@mail_box.ru", "domain"),
        ("ivan@mail.ru,petr@mail.ru", "more than one '@'"),
        ("ivan@" + "a" * 64 + ".ru", "domain"),
    ],
)
def test_a_malformed_email_is_rejected_saying_what_is_wrong(raw, what):
    with pytest.raises(InvalidIdentifier) as caught:
        normalize_email(raw)
    assert caught.value.code == "email_invalid"
    assert what in caught.value.message


def test_an_email_over_320_characters_is_too_long():
    assert reason(IdType.EMAIL, "a" * 310 + "@mail.ru.com") == "too_long"


# --- card ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", ["1234 5678 9012", "1234-5678-9012", " 1234 5678-9012 ", "1234\u00a05678\u00a09012"]
)
def test_spaces_and_hyphens_inside_a_card_number_are_removed(raw):
    assert normalize_card(raw) == "123456789012"


def test_card_letters_are_upper_cased_and_leading_zeros_kept():
    assert normalize_card("00ab-12") == "00AB12"
    assert normalize_card("0001234") != normalize_card("1234")


def test_a_card_number_that_is_alphanumeric_like_an_exponent_is_still_a_card():
    assert normalize_card("12E45") == "12E45"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("1.23457E+15", "spreadsheet_exponent"),
        ("1,23457E+15", "spreadsheet_exponent"),
        ("1234/5678", "card_invalid"),
        ("1234_5678", "card_invalid"),
        ("ß123", "card_invalid"),  # "ß".upper() would be "SS"
        ("КАРТА1", "card_invalid"),
        (" - - ", "card_invalid"),
        ("1" * 65, "too_long"),
    ],
)
def test_a_card_with_other_characters_is_rejected(raw, code):
    assert reason(IdType.CARD, raw) == code


# --- properties over arbitrary text ----------------------------------------------------------

# Arbitrary text, plus pieces that reach the interesting branches more often.
# fmt: off
PIECES = [
    "0", "1", "7", "8", "9", "123", "9123456789", "+", "+7", "(", ")", "-", ".",
    ",", " ", "E+", "e", "@", "mail.ru", "Пример.рф", "xn--", "\u00a0", "\u200b",
    "\ufeff", "\u202e", "\x00", "\t", "١", "１", "²", "ß", "İ", "A", "z", "'",
]
# fmt: on
identifier_text = st.one_of(
    st.text(),
    st.lists(st.sampled_from(PIECES), max_size=12).map("".join),
)


@settings(max_examples=400)
@given(id_type=st.sampled_from(list(IdType)), raw=identifier_text)
def test_normalize_raises_only_invalid_identifier_and_is_idempotent(id_type, raw):
    try:
        value = normalize(id_type, raw)
    except InvalidIdentifier as error:
        assert error.code in REASON_CODES
        return
    assert normalize(id_type, value) == value


@settings(max_examples=300)
@given(
    national=ten_digit_national_numbers,
    habit=st.sampled_from(["+7{}", "7{}", "8{}", "{}", "8 ({}"]),
)
def test_a_normalised_russian_phone_renormalises_to_itself(national, habit):
    try:
        value = normalize_phone(habit.format(national))
    except InvalidIdentifier:
        return
    assert value == "+7" + national
    assert normalize_phone(value) == value
    assert normalize_phone(value, region="US") == value


@pytest.mark.parametrize("region", sorted(phonenumbers.SUPPORTED_REGIONS))
def test_a_normalised_foreign_phone_renormalises_to_itself(region):
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    if example is None:
        example = phonenumbers.example_number(region)
    international = phonenumbers.format_number(
        example, phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    value = normalize_phone(international)
    assert value == phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    assert normalize_phone(value) == value
    national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
    assert normalize_phone(national, region=region) == value


def test_every_reason_code_is_snake_case_and_described():
    for code, description in REASON_CODES.items():
        assert code.replace("_", "").isalpha() and code.islower()
        assert description.endswith(".")
