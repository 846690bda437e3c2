"""Both languages are complete: every sentence in the code has a ru and an en translation,
none fuzzy, with the same placeholders and markup, and the compiled catalogs match."""

from __future__ import annotations

import gettext
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
LOCALES = ("ru", "en")
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None, "__": None}


def _po(locale: str):  # type: ignore[no-untyped-def]
    with (ROOT / "locales" / locale / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return read_po(handle, locale=locale)


def _in_code() -> set[str]:
    found: set[str] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT / "bot"), method_map=[("**.py", "python")], keywords=KEYWORDS
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_the_code_has_sentences_to_translate() -> None:
    assert len(_in_code()) > 50


@pytest.mark.parametrize("locale", LOCALES)
def test_every_sentence_in_the_code_is_translated(locale: str) -> None:
    catalog = _po(locale)
    missing = sorted(
        msgid
        for msgid in _in_code()
        if (m := catalog.get(msgid)) is None
        or m.fuzzy
        or not (m.string if isinstance(m.string, str) else all(m.string))
    )
    assert not missing, f"{locale}: untranslated or fuzzy: {missing}"


@pytest.mark.parametrize("locale", LOCALES)
def test_no_obsolete_or_fuzzy_entries(locale: str) -> None:
    catalog = _po(locale)
    assert not catalog.obsolete
    assert not [m.id for m in catalog if m.id and m.fuzzy]


_PLACEHOLDER = re.compile(r"\{[a-z_]+\}")
_TAG = re.compile(r"</?[a-z]+[^>]*>")


@pytest.mark.parametrize("locale", LOCALES)
def test_translations_keep_placeholders_and_markup(locale: str) -> None:
    for message in _po(locale):
        if not message.id:
            continue
        source = message.id if isinstance(message.id, str) else message.id[-1]
        targets = [message.string] if isinstance(message.string, str) else list(message.string)
        for target in targets:
            assert set(_PLACEHOLDER.findall(target)) == set(_PLACEHOLDER.findall(source)), target
            assert sorted(_TAG.findall(target)) == sorted(_TAG.findall(source)), target


@pytest.mark.parametrize("locale", LOCALES)
def test_compiled_catalog_matches_the_po_file(locale: str) -> None:
    """aiogram reads only the compiled .mo files, which are committed: they must be fresh."""
    mo_path = ROOT / "locales" / locale / "LC_MESSAGES" / "messages.mo"
    with mo_path.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    for message in _po(locale):
        if not message.id:
            continue
        if isinstance(message.id, str):
            assert compiled.gettext(message.id) == message.string, message.id
        else:
            for n, expected in zip((1, 2, 5), message.string, strict=False):
                assert compiled.ngettext(message.id[0], message.id[1], n) == expected
