"""The invitation template language (reliability checklist 16, 17, 19): rules and properties."""
import email
import re
from email import policy

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings, strategies as st
from markupsafe import escape

from tvwidget.extensions import db
from tvwidget.mail import message as mail, placeholders

from ..conftest import open_widget
from ..helpers import admin_client, csrf

CANARY = "§CANARY§"  # "§" is in no generated template, so the canary can only come from a value
KINDS = {placeholders.UNKNOWN, placeholders.FORBIDDEN_NAME, placeholders.ACCESS, placeholders.CODE,
         placeholders.BRACE}

# Pieces an attacker or a careless admin would write, mixed with raw characters.
PIECES = [f"{{{name}}}" for name in placeholders.PLACEHOLDERS] + [
    "{", "}", "{{", "}}", "{}", "{0}", "{__class__}", "{ticket_id.__class__}", "{requester_name.__init__.__globals__}",
    "{ticket_id[0]}", "{supporter_link}", "{{7*7}}", "{{config}}", "{% for x in y %}", "{%", "%}", "{#", "#}",
    "${x}", "$ticket_id", "${__class__}", "$a.__init__", "=?UTF-8?Q?=0A?=Bcc: evil@example.com", "\r\n", "\n",
    "\x00", "<script>", "&amp;", '"', "'",
]
ALPHABET = "{}$_.[]%#<>&\"'=?:/ \t\r\n\x00\x0b\x1b\x7fabcxyz019_-" + "様あ"
templates = st.lists(st.one_of(st.sampled_from(PIECES), st.text(alphabet=ALPHABET, max_size=6)),
                     max_size=12).map("".join)
hostile_values = st.text(alphabet=ALPHABET + "<>" + "ABC", max_size=20).map(lambda text: "<x-evil>" + text)


SHORT_TEXT = st.text(max_size=20)


def value_dicts(values=SHORT_TEXT):
    return st.fixed_dictionaries({name: values for name in placeholders.PLACEHOLDERS})


# --- the rules, by example ------------------------------------------------------------------------

def test_known_names_are_substituted_and_double_braces_are_literal():
    values = {"ticket_id": "42", "requester_name": "{customer_link}"}
    rendered = placeholders.render("#{ticket_id} {{x}} {requester_name} {unknown}", values)
    # A value is never read as template text: {customer_link} inside the name stays as it is.
    assert rendered == "#42 {x} {customer_link} {unknown}"


def test_jinja_expression_braces_are_literal_text_and_never_evaluated():
    assert placeholders.problems("{{ 7*7 }} {{config}}") == []
    assert placeholders.render("{{ 7*7 }} {{config}}", {}) == "{ 7*7 } {config}"


@pytest.mark.parametrize(("template", "token", "kind"), [
    ("Hi {foo}", "{foo}", placeholders.UNKNOWN),
    ("Hi {}", "{}", placeholders.UNKNOWN),
    ("Hi { ticket_id }", "{ ticket_id }", placeholders.UNKNOWN),
    ("{0}", "{0}", placeholders.UNKNOWN),
    ("{supporter_link}", "{supporter_link}", placeholders.FORBIDDEN_NAME),
    ("{a.b}", "{a.b}", placeholders.ACCESS),
    ("{a[0]}", "{a[0]}", placeholders.ACCESS),
    ("{ticket_id.__class__}", "{ticket_id.__class__}", placeholders.ACCESS),
    ("{requester_name.__init__.__globals__[SECRET]}", "{requester_name.__init__.__globals__[SECRET]}",
     placeholders.ACCESS),
    ("{% for x in y %}", "{% for x in y %}", placeholders.CODE),
    ("{# note #}", "{# note #}", placeholders.CODE),
    ("{% if", "{", placeholders.BRACE),
    ("{#", "{", placeholders.BRACE),
    ("a } b", "}", placeholders.BRACE),
    ("{ticket_id", "{", placeholders.BRACE),
])
def test_problems_name_each_offending_token_with_its_kind(template, token, kind):
    found = placeholders.problems(template)
    assert token in found
    assert placeholders.problem_kind(token) == kind


def test_problems_lists_every_token_once_in_order():
    assert placeholders.problems("{ticket_id} {supporter_link} {a.__class__} {0} { {{ok}} {0}") == [
        "{supporter_link}", "{a.__class__}", "{0}", "{"]


def test_the_builtin_templates_are_valid():
    for template in (str(mail.DEFAULT_SUBJECT), str(mail.DEFAULT_BODY)):
        assert placeholders.problems(template) == []


def test_the_supporter_link_is_not_a_placeholder():
    assert "supporter_link" not in placeholders.PLACEHOLDERS
    assert placeholders.render("{supporter_link}", {"supporter_link": CANARY}) == "{supporter_link}"


# --- properties -------------------------------------------------------------------------------------

@given(templates)
def test_problems_never_raises_and_every_problem_is_a_token_of_a_known_kind(template):
    found = placeholders.problems(template)
    assert len(found) == len(set(found))
    for token in found:
        assert token in template
        assert placeholders.problem_kind(token) in KINDS


@given(templates, st.dictionaries(st.text(max_size=12), st.text(max_size=12)))
def test_render_never_raises_whatever_the_values(template, values):
    assert isinstance(placeholders.render(template, values), str)


@given(templates, value_dicts())
def test_render_reads_nothing_beyond_the_allowlist(template, values):
    values = values | {"supporter_link": CANARY, "__class__": CANARY, "a": CANARY, "0": CANARY,
                       "config": CANARY, "x": CANARY}
    assert CANARY not in placeholders.render(template, values)


def reference_render(template: str, values: dict) -> str:
    """A plain left-to-right reading of the rules, for templates ``problems`` accepted."""
    out, i = [], 0
    while i < len(template):
        if template.startswith(("{{", "}}"), i):
            out.append(template[i])
            i += 2
        elif template[i] == "{":
            end = template.index("}", i)
            out.append(values[template[i + 1:end]])
            i = end + 1
        else:
            assert template[i] != "}"
            out.append(template[i])
            i += 1
    return "".join(out)


@given(templates, value_dicts(hostile_values))
def test_accepted_templates_render_as_the_rules_say(template, values):
    if placeholders.problems(template):
        return
    assert placeholders.render(template, values) == reference_render(template, values)


@given(templates, value_dicts(hostile_values))
def test_no_value_reaches_html_unescaped(template, values):
    html = placeholders.render(str(escape(template)), values, escape=escape)
    assert "<" not in html and ">" not in html
    paragraphs = "".join(mail._html_paragraphs(template, values)).replace("<br>", "")
    assert "<" not in paragraphs and ">" not in paragraphs


@given(st.text(alphabet=ALPHABET + "=?QB", max_size=40))
def test_header_safe_leaves_nothing_that_starts_a_header(value):
    safe = mail.header_safe(value)
    assert not re.search(r"[\r\n\x00]|=\?", safe)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None, max_examples=60)
@given(templates, templates, value_dicts(hostile_values))
def test_a_rendered_invitation_is_header_safe_and_escaped(app, subject, body, values):
    with app.test_request_context():
        rendered = mail.render_invitation(mail.Template("en", subject, body), values)
    assert not re.search(r"[\r\n\x00]|=\?", rendered.subject)
    assert "<x-evil" not in rendered.html


# ==========================================================================================================
# 16. Template injection saved by an admin is never evaluated
# ==========================================================================================================

REFUSED_AT_SAVE = ["{% for x in y %}{% endfor %}", "{0.__class__}", "${__class__}", "${x}", "{ticket_id.__class__}",
                   "{config}", "{self}", "{ticket_id!r}", "{ticket_id:>99}", "{{7*7}", "{supporter_link}"]
LITERAL = ["{{7*7}}", "{{config}}", "{{config.SECRET_KEY}}", "$a.__init__", "$ticket_id", "%(ticket_id)s",
           "{{ request.application.__globals__ }}"]


def test_16_template_payloads_are_refused_at_save_or_stay_literal_text(tv_app, smtp):
    admin = admin_client(tv_app)
    for payload in REFUSED_AT_SAVE:
        page = admin.get("/embed/admin/email-template")
        for fields in ({"subject": f"Hi {payload}", "body": "{customer_link}"},
                       {"subject": "Hi", "body": f"{{customer_link}} {payload}"}):
            response = admin.post("/embed/admin/email-template", query_string={"lang": "en"},
                                  data={"csrf_token": csrf(page)} | fields)
            assert response.status_code == 422 and "Nothing was saved" in response.text, payload
    with tv_app.app_context():
        assert db.session.scalar(sa.text("SELECT count(*) FROM tvwidget_email_templates")) == 0

    page = admin.get("/embed/admin/email-template")
    saved = admin.post("/embed/admin/email-template", query_string={"lang": "en"}, data={
        "csrf_token": csrf(page), "subject": " ".join(LITERAL), "body": "\n".join(LITERAL + ["{customer_link}"])})
    assert saved.status_code == 303
    open_widget(tv_app).play()
    (envelope,) = smtp.wait_for(1)
    message = email.message_from_bytes(envelope.content, policy=policy.default)
    text = message.get_body(("plain",)).get_content()
    everything = envelope.content.decode("utf-8", "replace") + text + message.get_body(("html",)).get_content()
    for piece in LITERAL:  # {{x}} is how a literal brace is written: it arrives as {x}, never evaluated
        literal = piece.replace("{{", "{").replace("}}", "}")
        assert literal in message["Subject"] and literal in text, piece
    assert "49" not in message["Subject"]
    for secret in ("SECRET_KEY", "EMBED_SECRET", "HOST_API_KEY", "ENCRYPTION_KEYS"):
        assert tv_app.config[secret] not in everything
    assert "<Config" not in everything and "__globals__" not in text.replace(LITERAL[-1].replace("{{", "{")
                                                                            .replace("}}", "}"), "")
