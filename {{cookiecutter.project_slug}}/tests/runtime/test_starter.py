"""`read_urls` and `printable`: what every `run` command does with its input and output."""

from __future__ import annotations

from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.runtime.starter import (
    InputError,
    printable,
    read_urls,
)


def test_urls_from_arguments_then_the_file(tmp_path: Path) -> None:
    urls_file = tmp_path / "urls.txt"
    urls_file.write_text("# a comment\nhttp://a.test/1\n\n  http://a.test/2  # two\r\n")
    assert read_urls(["http://x.test/"], urls_file) == [
        "http://x.test/",
        "http://a.test/1",
        "http://a.test/2",
    ]
    assert read_urls(["http://x.test/"], None) == ["http://x.test/"]


def test_a_byte_order_mark_is_skipped(tmp_path: Path) -> None:
    """Windows editors start UTF-8 files with one: it must not become part of the first URL."""
    urls_file = tmp_path / "urls.txt"
    urls_file.write_bytes(b"\xef\xbb\xbfhttp://a.test/1\nhttp://a.test/2\n")
    assert read_urls([], urls_file) == ["http://a.test/1", "http://a.test/2"]


def test_urls_are_not_judged_here(tmp_path: Path) -> None:
    """Any spelling of the scheme, and even a bad URL, is passed on as written: a URL that
    cannot be fetched is that URL's failure in the result, with its reason."""
    urls_file = tmp_path / "urls.txt"
    urls_file.write_text("HTTP://Example.com/\nHttps://a.test/\nnot a url\nhttp://a.test/\x1b[2J\n")
    assert read_urls([], urls_file) == [
        "HTTP://Example.com/",
        "Https://a.test/",
        "not a url",
        "http://a.test/\x1b[2J",  # one URL: lines end at \n only
    ]


@pytest.mark.parametrize(
    ("content", "why"),
    [
        pytest.param(bytes(range(256)) * 4, "not a text file (it holds NUL bytes)", id="binary"),
        pytest.param(
            b"http://a.test/\n\xff\xfe\x80junk\n",
            "not UTF-8 text (byte 15 is 0xff)",
            id="not-utf-8",
        ),
    ],
)
def test_a_file_that_is_not_text_is_one_input_error(
    tmp_path: Path, content: bytes, why: str
) -> None:
    urls_file = tmp_path / "urls.bin"
    urls_file.write_bytes(content)
    with pytest.raises(InputError) as refused:
        read_urls([], urls_file)
    assert str(refused.value) == f"--urls-file {urls_file}: {why}"


def test_a_file_that_cannot_be_read_is_one_input_error(tmp_path: Path) -> None:
    with pytest.raises(
        InputError, match=r"^--urls-file \S+missing.txt: No such file or directory$"
    ):
        read_urls([], tmp_path / "missing.txt")
    with pytest.raises(InputError, match=r": Is a directory$"):
        read_urls([], tmp_path)


def test_printable_escapes_what_a_terminal_would_act_on() -> None:
    raw = "http://a.test/\x1b[2J\x07\x00\x7f\x9b\u202e\udcff é ü"
    shown = printable(raw)
    assert shown == "http://a.test/\\x1b[2J\\x07\\x00\\x7f\\x9b\\u202e\\udcff é ü"
    assert shown.isprintable()
    assert printable("two\nlines\tx") == "two\nlines\\x09x"
    assert printable("two\nlines", keep_newlines=False) == "two\\x0alines"
