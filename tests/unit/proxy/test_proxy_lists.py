"""proxy.lists: an empty list with room for one item keeps it across appends and pops."""

from __future__ import annotations

import sys

from proxy.lists import drained, one_slot


def test_one_slot_holds_one_item_without_growing_or_shrinking() -> None:
    room = one_slot()
    assert room == []
    size = sys.getsizeof(room)
    for i in range(3):
        room.append(i)
        assert sys.getsizeof(room) == size
        assert room.pop() == i
        assert sys.getsizeof(room) == size
    room.insert(0, "a")
    assert room.pop(0) == "a" and sys.getsizeof(room) == size


def test_a_new_empty_list_is_grown_and_shrunk_at_every_item() -> None:
    """What one_slot avoids (CPython's list growth, which the proxy cannot change)."""
    plain: list[int] = []
    empty = sys.getsizeof(plain)
    plain.append(1)
    assert sys.getsizeof(plain) > empty
    plain.pop()
    assert sys.getsizeof(plain) == empty  # (its room was freed)
    assert sys.getsizeof(one_slot()) > empty


def test_past_one_item_it_is_an_ordinary_list() -> None:
    room = one_slot()
    room.extend([1, 2, 3])
    assert room.pop(0) == 1 and room == [2, 3]


def test_drained_pops_one_piece_and_replaces_a_list_of_several() -> None:
    room = one_slot()
    room.append(b"head")
    data, after = drained(room)
    assert (data, after) == (b"head", []) and after is room
    assert sys.getsizeof(after) == sys.getsizeof(one_slot())
    room.extend([b"a", b"b", b"c"])
    data, after = drained(room)
    assert data == b"abc" and after == [] and after is not room
    assert sys.getsizeof(after) == sys.getsizeof(one_slot())
    assert drained(after) == (b"", after)
