import pytest

from agent.brain.numbers import normalize_numbers, parse_number, spoken_digits


@pytest.mark.parametrize(
    ("said", "digits"),
    [
        ("four one one two", "4112"),
        ("4 1 1 2", "4112"),
        ("4112", "4112"),
        ("double seven three", "773"),
        ("triple five", "555"),
        ("oh five", "05"),
        ("Four-one-one-two.", "4112"),
        ("one two three four five six seven eight", "12345678"),
        ("number four one one two", "4112"),
        ("twenty five", "25"),
        ("order twenty five", None),
        ("hello", None),
        ("", None),
    ],
)
def test_spoken_digits(said, digits):
    assert spoken_digits(said) == digits


@pytest.mark.parametrize(
    ("said", "value"),
    [
        ("twenty five", 25),
        ("one hundred and twelve", 112),
        ("three thousand", 3000),
        ("1,200", 1200),
        ("ninety", 90),
        ("fifteen", 15),
        ("twenty twenty", None),
        ("many", None),
    ],
)
def test_parse_number(said, value):
    assert parse_number(said) == value


def test_normalize_numbers_rewrites_digit_runs_only():
    assert normalize_numbers("my order is four one one two, thanks") == "my order is 4112, thanks"
    assert normalize_numbers("double seven three four please") == "7734 please"
    assert normalize_numbers("I have two kids") == "I have two kids"
    assert normalize_numbers("at ten thirty") == "at ten thirty"


def test_hyphenated_and_spaced_digit_runs():
    assert normalize_numbers("it's 7-7-3-1.") == "it's 7731."
    assert normalize_numbers("order 4 1 1 2 please") == "order 4112 please"
    assert normalize_numbers("at 3 pm") == "at 3 pm"
