"""Languages: the shipped catalogs are complete, compiled and current; Japanese end to end."""
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po
from freezegun import freeze_time

from .conftest import HOST_API_KEY, make_token

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "tvwidget" / "translations"
POT = TRANSLATIONS / "messages.pot"
LOCALES = ("en", "ja")
API = {"Authorization": f"Bearer {HOST_API_KEY}"}

# Printf-style (gettext/_l/Jinja _()) and str.format-style (email template) placeholders.
PLACEHOLDER_RE = re.compile(r"%\([a-z0-9_]+\)[sd]|\{[a-z_]+\}")
# A lone % would break Jinja's newstyle gettext (it always applies ``%``).
STRAY_PERCENT_RE = re.compile(r"%(?!\([a-z0-9_]+\)[sd]|%)")

FIX = "run `make translations`, then translate the new entries in tvwidget/translations/ja/LC_MESSAGES/messages.po"

# English term in a msgid -> the seed article's Japanese term its msgstr must use (its glossary).
GLOSSARY = {
    "service case": "サービスケース",
    "session code": "セッションコード",
    "supporter link": "サポータリンク",
    "customer link": "カスタマーリンク",
    "valid until": "有効期限",
    "script token": "スクリプトトークン",
    "requester": "リクエスタ",
    "ticket": "チケット",
}


def _po(locale: str):
    with open(TRANSLATIONS / locale / "LC_MESSAGES" / "messages.po", "rb") as fileobj:
        return read_po(fileobj, locale=locale)


def _msgids(catalog) -> set:
    return {message.id for message in catalog if message.id}


def _placeholders(text: str) -> set:
    return set(PLACEHOLDER_RE.findall(text))


# -- (a) the Japanese catalog is complete and keeps every placeholder -------------------------

def test_ja_catalog_has_no_untranslated_or_fuzzy_entries():
    catalog = _po("ja")
    assert not catalog.fuzzy, "the ja catalog header is marked fuzzy"
    untranslated = sorted(m.id for m in catalog if m.id and not m.string)
    fuzzy = sorted(m.id for m in catalog if m.id and m.fuzzy)
    assert not untranslated, f"untranslated ja messages ({FIX}): {untranslated}"
    assert not fuzzy, f"fuzzy ja messages (review them and drop the fuzzy flag): {fuzzy}"


def test_ja_translations_keep_every_placeholder():
    wrong = {m.id: (sorted(_placeholders(m.id)), sorted(_placeholders(m.string)))
             for m in _po("ja") if m.id and _placeholders(m.id) != _placeholders(m.string)}
    assert not wrong, f"msgid vs msgstr placeholders differ: {wrong}"


def test_ja_translations_have_no_stray_percent_signs():
    stray = [m.id for m in _po("ja") if m.id and STRAY_PERCENT_RE.search(m.string)]
    assert not stray, f"a lone % breaks formatting (write %% for a literal percent): {stray}"


def test_ja_translations_use_the_seed_glossary():
    missing = [(m.id, english, japanese) for m in _po("ja") if m.id
               for english, japanese in GLOSSARY.items()
               if english in PLACEHOLDER_RE.sub("", m.id).lower() and japanese not in m.string]
    assert not missing, f"translations must use the seed article's terms (the glossary): {missing}"


def test_ja_invitation_addresses_the_requester_politely():
    (body,) = [m.string for m in _po("ja") if m.id and m.id.startswith("Hello {requester_name},")]
    assert body.startswith("{requester_name} 様\n")
    assert "{customer_link}" in body and "{requester_name} 様" in body


# -- (b) the shipped .mo files hold exactly the shipped .po files' translations ---------------

def _translations(catalog) -> dict:
    """Map (context, msgid) to msgstr for every entry a compiled catalog serves.

    Plural entries map to the tuple of their forms.  A fuzzy or untranslated entry is not
    served (``pybabel compile`` leaves it out), so it is not expected in the .mo either.
    """
    served = {}
    for message in catalog:
        if not message.id or message.fuzzy:
            continue
        strings = message.string if isinstance(message.string, (list, tuple)) else (message.string,)
        if all(strings):
            msgid = tuple(message.id) if message.pluralizable else message.id
            served[(message.context, msgid)] = tuple(strings) if message.pluralizable else strings[0]
    return served


def _mo(locale: str):
    with open(TRANSLATIONS / locale / "LC_MESSAGES" / "messages.mo", "rb") as fileobj:
        return read_mo(fileobj)


@pytest.mark.parametrize("locale", LOCALES)
def test_compiled_catalog_is_up_to_date(locale):
    """Same messages, same translations, plural forms included; headers and tool versions aside."""
    expected, compiled = _translations(_po(locale)), _translations(_mo(locale))
    missing = sorted(key for key in expected.keys() - compiled.keys())
    extra = sorted(key for key in compiled.keys() - expected.keys())
    differ = sorted(key for key in expected.keys() & compiled.keys() if expected[key] != compiled[key])
    assert not missing and not extra and not differ, (
        f"tvwidget/translations/{locale}/LC_MESSAGES/messages.mo is stale (run `make translations`): "
        f"not compiled: {missing}; no longer in the .po: {extra}; translated differently: {differ}")


def test_catalog_comparison_covers_plural_forms_and_untranslated_entries():
    """The comparison above sees a changed plural form and leaves out what a .mo never serves."""
    catalog = Catalog(locale="en")
    catalog.add(("%(num)d case", "%(num)d cases"), ("%(num)d case", "%(num)d cases"))
    catalog.add("Untranslated", "")
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    served = _translations(read_mo(compiled))
    assert served == _translations(catalog) == {
        (None, ("%(num)d case", "%(num)d cases")): ("%(num)d case", "%(num)d cases")}
    changed = Catalog(locale="en")
    changed.add(("%(num)d case", "%(num)d cases"), ("%(num)d case", "%(num)d service cases"))
    assert _translations(changed) != served


# -- (c) the catalogs hold exactly the messages the sources use -------------------------------

@pytest.fixture(scope="module")
def extracted_msgids(tmp_path_factory) -> set:
    """Re-extract like `make translations` does (same babel.cfg, keywords and input dirs)."""
    output = tmp_path_factory.mktemp("i18n") / "messages.pot"
    result = subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "--quiet", "extract", "-F", "babel.cfg",
         "-k", "_l", "-k", "lazy_gettext", "-o", str(output), "--no-location", "--sort-output",
         "tvwidget", "templates"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    with open(output, "rb") as fileobj:
        return _msgids(read_po(fileobj))


def test_extraction_finds_python_lazy_jinja_and_email_strings(extracted_msgids):
    assert "Session code" in extracted_msgids  # Jinja _()
    assert "Script token" in extracted_msgids  # _l() in forms.py
    assert "Start: %(time)s" in extracted_msgids  # gettext() in cases.py
    assert "Remote support for ticket #{ticket_id}: {ticket_subject}" in extracted_msgids  # mail.py


def test_pot_is_up_to_date_with_the_sources(extracted_msgids):
    with open(POT, "rb") as fileobj:
        shipped = _msgids(read_po(fileobj))
    new, gone = sorted(extracted_msgids - shipped), sorted(shipped - extracted_msgids)
    assert not new and not gone, f"messages.pot is stale ({FIX}); new: {new}; no longer used: {gone}"


@pytest.mark.parametrize("locale", LOCALES)
def test_catalog_matches_the_sources(extracted_msgids, locale):
    shipped = _msgids(_po(locale))
    new, gone = sorted(extracted_msgids - shipped), sorted(shipped - extracted_msgids)
    assert not new and not gone, (
        f"the {locale} catalog is out of date ({FIX}); missing: {new}; no longer used: {gone}")


# -- (d) end to end: the widget and its comment in Japanese -----------------------------------

def test_japanese_widget_from_token_locale(connected_app, launch):
    widget = launch(locale="ja")
    assert '<html lang="ja">' in widget.html
    assert "リモートセッションを開始" in widget.html and "Start remote session" not in widget.html
    widget.play()
    assert widget.state() == "open"
    for term in ("セッションコード", "有効期限", "サポータリンク", "カスタマーリンク", "停止", "招待メール"):
        assert term in widget.html, term
    for english in ("Session code", "Valid until", "Supporter link", "Customer link"):
        assert english not in widget.html, english


def test_browser_language_is_used_when_the_token_has_no_locale(connected_app, client):
    response = client.get("/embed/widget", query_string={"token": make_token(locale=None)},
                          headers={"Accept-Language": "ja,en;q=0.5"})
    assert response.status_code == 200
    assert '<html lang="ja">' in response.text
    assert "リモートセッションを開始" in response.text


def test_token_locale_wins_over_the_browser(connected_app, client):
    response = client.get("/embed/widget", query_string={"token": make_token(locale="en")},
                          headers={"Accept-Language": "ja"})
    assert '<html lang="en">' in response.text
    assert "Start remote session" in response.text and "リモートセッションを開始" not in response.text


def test_launch_error_page_follows_the_browser_language(client):
    response = client.get("/embed/widget", headers={"Accept-Language": "ja"})
    assert response.status_code == 401
    assert "起動トークンが指定されていません" in response.text


def test_japanese_stop_comment_names_the_service_case_and_duration(connected_app, launch, client):
    with freeze_time("2026-11-24 00:59:50", tick=True) as frozen:
        widget = launch(locale="ja")
        # The clock ticks: start from the second the test names.  Forward only: a credential
        # issued "in the future" is refused (itsdangerous), as a clock going back would be.
        frozen.move_to("2026-11-24 01:00:00")
        widget.play()
        code = widget.field("session-code")
        frozen.move_to("2026-11-24 01:12:34")
        assert widget.stop().status_code == 200
    assert widget.state() == "idle"
    comments = client.get("/api/v1/tickets/T-1/comments", headers=API).get_json()["comments"]
    assert len(comments) == 1
    body = comments[0]["body"]
    assert f"TeamViewerサービスケース {code}" in body and "Alex Morgan" in body
    assert "開始時刻: 2026/11/24 10:00:00 (Asia/Tokyo)" in body  # the token's tz
    assert "終了時刻: 2026/11/24 10:12:34 (Asia/Tokyo)" in body
    assert "セッション時間: 0:12:34" in body
