"""The tagged-output parser: the same text gives the same result however it is
chunked, and nothing shown to a client is ever taken back."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from common.tagged_stream import TaggedStreamParser, parse_tagged

TASK_ANSWER = (
    "Here is your email.\n<execution><title>Meeting on Monday</title>"
    "<draft>Dear team,\nlet's meet on Monday at 10.\nBest, Ada</draft></execution>\nAnything else?"
)


def feed_in_chunks(text: str, cuts: list[int]):
    parser = TaggedStreamParser()
    states = []
    previous = 0
    for cut in [*sorted(set(cuts)), len(text)]:
        states.append(parser.feed(text[previous:cut]))
        previous = cut
    return states, parser.finish()


def chunkings(text: str):
    return st.lists(st.integers(min_value=0, max_value=len(text)), max_size=len(text))


def test_text_outside_tags_is_for_the_user_and_inside_is_the_draft():
    result = parse_tagged(TASK_ANSWER, final=True)

    assert result.outside == "Here is your email.\n\nAnything else?"
    assert result.title == "Meeting on Monday"
    assert result.draft == "Dear team,\nlet's meet on Monday at 10.\nBest, Ada"
    assert result.has_execution


def test_text_without_tags_is_all_for_the_user():
    result = parse_tagged("Which tone do you want?", final=True)

    assert result.outside == "Which tone do you want?"
    assert (result.title, result.draft, result.has_execution) == ("", "", False)


def test_missing_closing_tags_are_tolerated_at_the_end():
    result = parse_tagged("Sure.<execution><title>T</title><draft>Body so far", final=True)

    assert result.outside == "Sure."
    assert result.title == "T"
    assert result.draft == "Body so far"


def test_a_partial_opening_tag_is_held_back_while_streaming():
    assert parse_tagged("Here it is <exec").outside == "Here it is "


def test_a_partial_closing_tag_is_held_back_from_the_draft():
    assert parse_tagged("<execution><draft>Hello </dra").draft == "Hello "


def test_a_lone_angle_bracket_is_shown_once_the_stream_ends():
    assert parse_tagged("1 <", final=True).outside == "1 <"


def test_a_title_arriving_before_its_closing_tag_grows():
    assert parse_tagged("<execution><title>Meeting on").title == "Meeting on"


@settings(max_examples=300, deadline=None)
@given(cuts=chunkings(TASK_ANSWER))
def test_any_chunking_gives_the_same_final_result(cuts):
    _states, final = feed_in_chunks(TASK_ANSWER, cuts)

    assert final == parse_tagged(TASK_ANSWER, final=True)


@settings(max_examples=300, deadline=None)
@given(cuts=chunkings(TASK_ANSWER))
def test_streamed_states_only_grow(cuts):
    states, final = feed_in_chunks(TASK_ANSWER, cuts)

    for earlier, later in zip([*states, final], [*states, final][1:], strict=False):
        assert later.outside.startswith(earlier.outside)
        assert later.draft.startswith(earlier.draft)
        assert later.title.startswith(earlier.title)


@settings(max_examples=300, deadline=None)
@given(cuts=chunkings(TASK_ANSWER))
def test_tags_never_reach_the_user_text(cuts):
    states, final = feed_in_chunks(TASK_ANSWER, cuts)

    for state in [*states, final]:
        assert "<" not in state.outside
        assert "<" not in state.draft


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from(list("ab <>/etxcuionldrf\n")), max_size=80),
    data=st.data(),
)
def test_arbitrary_text_parses_the_same_streamed_or_whole(text, data):
    cuts = data.draw(chunkings(text))

    states, final = feed_in_chunks(text, cuts)

    assert final == parse_tagged(text, final=True)
    for earlier, later in zip([*states, final], [*states, final][1:], strict=False):
        assert later.outside.startswith(earlier.outside)
        assert later.draft.startswith(earlier.draft)
