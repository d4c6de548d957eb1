"""The exec stream framing: what the agent encodes is what the CLI decodes, however TCP splits it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.client.stream import MAX_FRAME, Channel, ExecFrame, FrameDecoder, FramingError, encode_frame, encode_result

frames = st.lists(st.tuples(st.sampled_from([Channel.STDOUT, Channel.STDERR]), st.binary(max_size=300)),
                  max_size=20)


@given(frames, st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=50), st.integers(-1, 255))
def test_frames_survive_any_split(parts: list[tuple[Channel, bytes]], cuts: list[int], code: int) -> None:
    wire = b"".join(encode_frame(c, p) for c, p in parts) + encode_result(code, "msg" if code < 0 else "")
    decoder, decoded, at, i = FrameDecoder(), [], 0, 0
    while at < len(wire):
        step = cuts[i % len(cuts)]
        decoded += decoder.feed(wire[at:at + step])
        at, i = at + step, i + 1
    decoder.close()
    assert [(f.channel, f.payload) for f in decoded[:-1]] == parts
    assert decoded[-1].channel is Channel.RESULT
    assert decoded[-1].result() == (code, "msg" if code < 0 else "")


def test_large_payloads_are_split_into_several_frames() -> None:
    payload = bytes(range(256)) * (MAX_FRAME // 256 * 2 + 3)
    decoded = FrameDecoder().feed(encode_frame(Channel.STDOUT, payload))
    assert len(decoded) == 3 and all(len(f.payload) <= MAX_FRAME for f in decoded)
    assert b"".join(f.payload for f in decoded) == payload


def test_corrupt_streams_are_named() -> None:
    with pytest.raises(FramingError, match="unknown channel 9"):
        FrameDecoder().feed(b"\x09\x00\x00\x00\x01x")
    with pytest.raises(FramingError, match="exceeds"):
        FrameDecoder().feed(b"\x01\x7f\x00\x00\x00")
    truncated = FrameDecoder()
    assert truncated.feed(encode_frame(Channel.STDOUT, b"hello")[:-2]) == []
    with pytest.raises(FramingError, match="ended inside a frame"):
        truncated.close()
    with pytest.raises(FramingError, match="exitCode"):
        ExecFrame(Channel.RESULT, b'{"exit": 1}').result()
