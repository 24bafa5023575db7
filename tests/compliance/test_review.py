"""The review rules, tested as pure functions."""

from __future__ import annotations

import pytest

from tidings.compliance import review
from tidings.compliance.models import ReviewRule, Verdict
from tidings.compliance.review import ReviewInput, decide, normalize
from tidings.core.models import TargetKind
from tidings.errors import ComplianceError


def item(
    title: str = "",
    description: str = "",
    payload: str = "",
    extra: dict[str, str] | None = None,
    kind: TargetKind = TargetKind.REGID,
    audience: int = 1,
) -> ReviewInput:
    return ReviewInput("A", title, description, payload, extra or {}, kind, audience)


def rules(*specs: tuple[str, str] | tuple[str, str, Verdict]) -> list[review.Rule]:
    rows = []
    for i, spec in enumerate(specs):
        kind, pattern = spec[0], spec[1]
        action = spec[2] if len(spec) > 2 else review.DEFAULT_ACTION[kind]  # type: ignore[misc]
        rows.append(ReviewRule(f"r{i}", None, kind, pattern, action, 0))
    return review.build_rules(rows)


def test_normalize_folds_width_case_zero_width_and_homoglyphs() -> None:
    assert normalize("ＣＡＳＩＮＯ") == "casino"
    assert normalize("ca\u200bsi\u200dno") == "casino"
    assert normalize("саsіnо") == "casino"  # Cyrillic с, а, і, о
    assert normalize("ΚΑΣΙΝΟ".lower()) != "casino"  # Σ is not folded (no Latin look-alike)


@pytest.mark.parametrize(
    "text",
    ["Big CASINO bonus", "big c\u200basino", "саsinо night", "ｃａｓｉｎｏ", "casino!"],
)
def test_blocked_term_matches_disguised_forms(text: str) -> None:
    d = decide(item(description=text), rules(("term", "casino")))
    assert (d.verdict, d.reason, d.rule_id) == (Verdict.REJECT, "blocked_term", "r0")


def test_blocked_term_is_a_whole_word_and_checks_extra() -> None:
    r = rules(("term", "ass"))
    assert decide(item(title="classic pass"), r).verdict is Verdict.ALLOW
    assert decide(item(extra={"k": "you ass"}), r).verdict is Verdict.REJECT
    cjk = rules(("term", "赌博"))
    assert decide(item(title="网上赌博平台"), cjk).verdict is Verdict.REJECT


def test_regex_rule() -> None:
    r = rules(("regex", r"\b\d{4}[ -]?\d{4}[ -]?\d{4}[ -]?\d{4}\b", Verdict.HOLD))
    d = decide(item(payload="card 4111 1111 1111 1111"), r)
    assert (d.verdict, d.reason) == (Verdict.HOLD, "blocked_pattern")
    assert decide(item(payload="call 4111"), r).verdict is Verdict.ALLOW


def test_link_deny_and_allow() -> None:
    deny = rules(("link_deny", "evil.example"))
    assert decide(item(extra={"web_uri": "https://x.EVIL.example./a"}), deny).verdict is (
        Verdict.REJECT
    )
    assert decide(item(description="see www.evil.example/x"), deny).reason == "link_denied"
    assert decide(item(description="see https://notevil.example"), deny).verdict is Verdict.ALLOW
    allow = rules(("link_allow", "shop.example"), ("link_allow", "cdn.example"))
    assert decide(
        item(title="https://shop.example/a https://img.cdn.example/b"), allow
    ).verdict is (Verdict.ALLOW)
    d = decide(item(extra={"web_uri": "http://other.example"}), allow)
    assert (d.verdict, d.reason) == (Verdict.REJECT, "link_not_allowed")
    assert decide(item(title="no links here"), allow).verdict is Verdict.ALLOW


def test_audience_rule_holds_big_broadcasts_only() -> None:
    r = rules(("audience", "100"))
    assert decide(item(kind=TargetKind.ALL, audience=101), r).verdict is Verdict.HOLD
    assert decide(item(kind=TargetKind.ALL, audience=100), r).verdict is Verdict.ALLOW
    assert decide(item(kind=TargetKind.REGID, audience=1000), r).verdict is Verdict.ALLOW


def test_strictest_decision_wins() -> None:
    r = rules(("audience", "0"), ("term", "spam", Verdict.HOLD), ("term", "scam"))
    d = decide(item(title="spam and scam", kind=TargetKind.TOPIC, audience=5), r)
    assert (d.verdict, d.rule_id, d.code) == (Verdict.REJECT, "r2", "blocked_term:r2")


@pytest.mark.parametrize(
    ("kind", "pattern"),
    [("word", "x"), ("regex", "("), ("audience", "many"), ("term", ""), ("term", "x" * 300)],
)
def test_bad_rules_are_refused(kind: str, pattern: str) -> None:
    with pytest.raises(ComplianceError):
        review.check_rule(kind, pattern)


def test_encrypted_payloads_skip_text_rules_but_not_the_visible_text_or_audience() -> None:
    rs = rules(("term", "casino"), ("link_deny", "evil.example"), ("audience", "10"))

    def encrypted(**kw: object) -> ReviewInput:
        import dataclasses

        return dataclasses.replace(item(**kw), encrypted_payload=True)  # type: ignore[arg-type]

    # the platform cannot read the payload: a blocked word or link in it is not found
    assert decide(encrypted(payload="casino https://evil.example/x"), rs).verdict is Verdict.ALLOW
    assert decide(item(payload="casino"), rs).verdict is Verdict.REJECT  # readable: found
    # the title and description users see are always reviewed
    assert decide(encrypted(title="casino night", payload="xx"), rs).verdict is Verdict.REJECT
    # audience rules apply to every send
    held = decide(encrypted(payload="xx", kind=TargetKind.ALL, audience=11), rs)
    assert held.verdict is Verdict.HOLD and held.reason == "audience_over_limit"
