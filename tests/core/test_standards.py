import json

import pytest

from dogiqa.standards import get_standard, load_standard_file

from shared_data import shared_path

I20 = " " * 20
WORD7 = (
    "You are a helpful assistant to help me evaluate the quality of the image. You will be given standards about "
    "each quality level. The quality standard is list as follows:\n7: Perfect!\n6: Excellent!\n5: Good!\n4: Fair!\n"
    "3: Bad!\n2: Poor!\n1: Very Bad!\n\n"
    + I20
    + "The higher the image quality, the higher the score should be.\n"
    + I20
    + "Please strictly follow the USER's format, otherwise the result will be invalid."
)
QUERY = (
    "Please evaluate the quality of the image and score in quality. Only tell me the number. Do not analysis the image."
)


def test_word7_is_byte_exact():
    s = get_standard("word", 7)
    assert s.system == WORD7
    assert s.query == QUERY
    assert s.level_tokens == ["1", "2", "3", "4", "5", "6", "7"]


@pytest.mark.parametrize(
    "levels,lines",
    [
        (3, ["3: Excellent!", "2: Fair!", "1: Poor!"]),
        (5, ["5: Excellent!", "4: Good!", "3: Fair!", "2: Bad!", "1: Poor!"]),
        (
            9,
            [
                "9: Perfect!",
                "8: Excellent!",
                "7: Very Good!",
                "6: Good!",
                "5: Fair!",
                "4: Bad!",
                "3: Poor!",
                "2: Awful!",
                "1: Very Bad!",
            ],
        ),
    ],
)
def test_word_levels(levels, lines):
    s = get_standard("word", levels)
    assert "\n".join(lines) + "\n\n" in s.system
    assert s.levels == levels


def test_number_and_sentence():
    n = get_standard("number", 7)
    assert n.system.startswith("You are a helpful assistant to help me evaluate the quality of the image.\n")
    assert n.system.endswith("Please strictly follow the USER's format, otherwise the result will be invalid.")
    assert n.query == (
        "please evaluate the quality of the image and score in [1,2,3,4,5,6,7]. Only tell me the "
        "number. Do not analysis the image."
    )
    s = get_standard("sentence")
    assert s.levels == 5
    assert (
        "5: Excellent! The overall quality of the image is extremely excellent, and all aspects are perfect.\n"
        "4: Good! The overall quality"
    ) in s.system
    assert "1: Bad! The overall quality of the image is bad and hard to accept.\n" in s.system
    assert "score in [1,2,3,4,5]" in s.query


def test_prompt_layout_plain_and_paper_whitespace():
    s = get_standard("word", 7)
    p = s.prompt("global")
    assert p.before_image == " " + WORD7 + "\n" and p.after_image == "\n" + QUERY
    g = s.prompt("global", paper_whitespace=True)
    loc = s.prompt("local", paper_whitespace=True)
    assert g.before_image.endswith("\n" + I20) and g.after_image == "\n" + I20 + QUERY
    assert loc.after_image == "\n" + " " * 24 + QUERY


def test_matches_the_authors_strings_in_the_reference_fixture():
    cases = json.loads(shared_path("reference", "mplug-owl3-tiny", "cases.json").read_text())
    s = get_standard("word", 7)
    assert s.system == cases["system"] and s.query == cases["query"]
    for case in cases["cases"]:
        content = case["messages"][0]["content"]
        p = s.prompt(case["call"], paper_whitespace=True)
        assert p.before_image + "<|image|>" + p.after_image == content


def test_bad_levels_and_names():
    with pytest.raises(ValueError, match="3, 5, 7 or 9"):
        get_standard("word", 4)
    with pytest.raises(ValueError, match="unknown standard"):
        get_standard("poetry")


def test_user_standard_files(tmp_path):
    y = tmp_path / "mine.yaml"
    y.write_text("name: mine\nlabels: [Awful!, Meh!, Great!]\nquery: Score it.\n")
    s = load_standard_file(y)
    assert (s.name, s.levels, s.query) == ("mine", 3, "Score it.")
    assert "3: Great!\n2: Meh!\n1: Awful!\n" in s.system
    j = tmp_path / "mine.json"
    j.write_text(json.dumps({"system": "Rate 1 or 2.", "levels": 2}))
    assert get_standard(str(j)).system == "Rate 1 or 2."
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="bad.json"):
        load_standard_file(bad)
    with pytest.raises(FileNotFoundError):
        load_standard_file(tmp_path / "nope.yaml")
