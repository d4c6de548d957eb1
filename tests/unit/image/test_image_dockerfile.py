"""The Dockerfile parser and word lexer: continuations, comments, forms, substitution, errors."""

from __future__ import annotations

import pytest

from shoal.image.dockerfile import DockerfileError, expand_words, key_values, parse


def test_continuations_comments_and_stages() -> None:
    df = parse(
        "ARG V=1\nFROM scratch AS Base\n# note\nRUN echo a \\\n  # inside\n  && echo b\n"
        "FROM base\nCOPY --from=base --chown=1:2 [\"/a\", \"/b\"]\nCMD [\"x\", \"y\"]\nENTRYPOINT run me\n"
    )
    assert [s.name for s in df.stages] == ["base", None]
    run = df.stages[0].instructions[0]
    assert run.line == 4 and run.text == "echo a && echo b" and run.exec_form is None
    copy, cmd, entry = df.stages[1].instructions
    assert copy.flag("from") == "base" and copy.flag("chown") == "1:2" and copy.exec_form == ("/a", "/b")
    assert cmd.exec_form == ("x", "y") and entry.exec_form is None
    assert df.stage_index("BASE") == 0 and df.global_args[0].text == "V=1"


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("FROM scratch\nRUNN x\n", 2, "did you mean RUN?"),
        ("RUN x\n", 1, "only ARG may come before FROM"),
        ("FROM scratch\nCOPY --form=a b c\n", 2, "does not take the flag --form"),
        ("FROM scratch\nCOPY onlyone\n", 2, "needs at least one source and a destination"),
        ("FROM scratch\n\nENV A=\"unterminated\n", 3, "unterminated \" quote"),
        ("FROM a AS x\nFROM b AS x\n", 2, "already used"),
        ("# nothing\n", 0, "no FROM instruction"),
    ],
)
def test_parse_errors_name_the_line_and_fix(text: str, line: int, needle: str) -> None:
    with pytest.raises(DockerfileError) as err:
        parse(text, "Dockerfile")
    assert err.value.line == line and needle in str(err.value)
    if line:
        assert str(err.value).startswith(f"Dockerfile:{line}: ")


def test_expand_words_quotes_and_defaults() -> None:
    env = {"A": "one", "EMPTY": ""}
    assert expand_words("$A ${A} '$A' \"$A two\" \\$A", env) == ["one", "one", "$A", "one two", "$A"]
    assert expand_words("${EMPTY:-dflt} ${A:+alt} ${MISSING:+x}end", env) == ["dflt", "alt", "end"]
    assert expand_words("a\\ b \"\"", env) == ["a b", ""]
    with pytest.raises(DockerfileError, match=r"bad substitution"):
        expand_words("${1bad}", env)


def test_env_forms() -> None:
    df = parse('FROM scratch\nENV A=1 B="two words"\nENV LEGACY some value\nLABEL "k"=v\n')
    env_new, env_old, label = df.stages[0].instructions
    assert key_values(env_new, {}, "D") == [("A", "1"), ("B", "two words")]
    assert key_values(env_old, {}, "D") == [("LEGACY", "some value")]
    assert key_values(label, {}, "D", legacy=False) == [("k", "v")]
