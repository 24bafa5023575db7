"""Content review rules: a typed interface and the built-in rules (terms, regexes, links, audience).

A rule looks at a :class:`ReviewInput` and returns a :class:`Decision` or None (no opinion). The
strictest decision wins: reject over hold over allow. Rules are data in the store
(:class:`~tidings.compliance.models.ReviewRule`) and are built into rule objects per send, so a
rule added with ``tidings review rule add`` applies to the next send without a restart.

Text is compared after :func:`normalize`: NFKC, case folding, zero-width characters removed and
common homoglyphs (Cyrillic and Greek look-alikes of Latin letters) folded to Latin.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol
from urllib.parse import urlsplit

from tidings.compliance.models import ReviewRule, Verdict
from tidings.core.models import TargetKind
from tidings.errors import ComplianceError

KINDS = ("term", "regex", "link_deny", "link_allow", "audience")
DEFAULT_ACTION = {
    "term": Verdict.REJECT,
    "regex": Verdict.REJECT,
    "link_deny": Verdict.REJECT,
    "link_allow": Verdict.REJECT,
    "audience": Verdict.HOLD,
}
MAX_PATTERN = 256
_RANK = {Verdict.ALLOW: 0, Verdict.HOLD: 1, Verdict.REJECT: 2}

ZERO_WIDTH = dict.fromkeys(
    map(ord, "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\ufeff\u00ad\u180e\u034f")
)
# Cyrillic and Greek letters that look like Latin ones (after case folding)
HOMOGLYPHS = str.maketrans(
    {
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
        "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d",
        "ԛ": "q", "ԝ": "w", "ɡ": "g", "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k",
        "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ı": "i",
    }
)  # fmt: skip
URL_RE = re.compile(r"(?:https?://|www\.)[^\s<>\"'，。]+", re.IGNORECASE)


def normalize(text: str) -> str:
    """NFKC, casefold, drop zero-width characters, fold look-alike letters to Latin."""
    text = unicodedata.normalize("NFKC", text).translate(ZERO_WIDTH).casefold()
    return text.translate(HOMOGLYPHS)


@dataclasses.dataclass(frozen=True)
class ReviewInput:
    """What a rule sees of a send."""

    app_id: str
    title: str
    description: str
    payload: str
    extra: Mapping[str, str]
    target_kind: TargetKind
    audience: int  # devices the send can reach (targets for unicast; devices / subscribers)
    # True for a payload the platform cannot read (an end-to-end encrypted Web Push body): text
    # and link rules then skip the payload, but the title and description shown to users are
    # always reviewed, and audience rules apply as to any send.
    encrypted_payload: bool = False

    def texts(self) -> list[str]:
        if self.encrypted_payload:
            return [self.title, self.description]
        return [self.title, self.description, self.payload]


@dataclasses.dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str = ""  # a reason code: blocked_term, blocked_pattern, link_denied, ...
    rule_id: str = ""

    @property
    def code(self) -> str:
        return f"{self.reason}:{self.rule_id}" if self.rule_id else self.reason


ALLOW = Decision(Verdict.ALLOW)


class Rule(Protocol):
    @property
    def rule_id(self) -> str: ...

    def check(self, item: ReviewInput) -> Decision | None: ...


@dataclasses.dataclass(frozen=True)
class TermRule:
    """A blocked word or phrase. Latin words match whole words; other scripts match anywhere."""

    rule_id: str
    term: str
    action: Verdict

    def check(self, item: ReviewInput) -> Decision | None:
        term = normalize(self.term)
        if term.isascii() and re.fullmatch(r"[\w ]+", term):
            pattern = re.compile(rf"(?<![a-z0-9]){re.escape(term)}(?![a-z0-9])")
            hit = any(pattern.search(normalize(t)) for t in _all_texts(item))
        else:
            hit = any(term in normalize(t) for t in _all_texts(item))
        return Decision(self.action, "blocked_term", self.rule_id) if hit else None


@dataclasses.dataclass(frozen=True)
class RegexRule:
    """A blocked pattern (Python ``re`` syntax), matched against the normalised text."""

    rule_id: str
    pattern: re.Pattern[str]
    action: Verdict

    def check(self, item: ReviewInput) -> Decision | None:
        hit = any(self.pattern.search(normalize(t)) for t in _all_texts(item))
        return Decision(self.action, "blocked_pattern", self.rule_id) if hit else None


@dataclasses.dataclass(frozen=True)
class LinkRule:
    """Domain rules for links in the text and ``extra.web_uri``.

    ``deny`` domains (and their subdomains) are refused; when ``allow`` is not empty, every link
    must be on an allowed domain.
    """

    rule_id: str
    deny: tuple[tuple[str, str, Verdict], ...]  # (domain, rule_id, action)
    allow: tuple[tuple[str, str, Verdict], ...]

    def check(self, item: ReviewInput) -> Decision | None:
        worst: Decision | None = None
        for host in link_hosts(item):
            for domain, rule_id, action in self.deny:
                if _on_domain(host, domain):
                    worst = _stricter(worst, Decision(action, "link_denied", rule_id))
            if self.allow and not any(_on_domain(host, d) for d, _, _ in self.allow):
                action = max((a for _, _, a in self.allow), key=_RANK.__getitem__)
                worst = _stricter(worst, Decision(action, "link_not_allowed", self.allow[0][1]))
        return worst


@dataclasses.dataclass(frozen=True)
class AudienceRule:
    """Broadcasts (topic, multi-topic, all) that can reach more than ``limit`` devices."""

    rule_id: str
    limit: int
    action: Verdict

    def check(self, item: ReviewInput) -> Decision | None:
        if item.target_kind.is_broadcast and item.audience > self.limit:
            return Decision(self.action, "audience_over_limit", self.rule_id)
        return None


def _all_texts(item: ReviewInput) -> Iterable[str]:
    yield from item.texts()
    yield from item.extra.values()


def _on_domain(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


def _stricter(a: Decision | None, b: Decision) -> Decision:
    return b if a is None or _RANK[b.verdict] > _RANK[a.verdict] else a


def normalize_domain(value: str) -> str:
    host = normalize(value.strip()).rstrip(".")
    if "://" in host:
        host = urlsplit(host).hostname or ""
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def link_hosts(item: ReviewInput) -> set[str]:
    """Hosts of the links in the title, description, payload and ``extra.web_uri``."""
    urls = [
        m.group(0) for t in item.texts() for m in URL_RE.finditer(unicodedata.normalize("NFKC", t))
    ]
    web_uri = item.extra.get("web_uri")
    if web_uri:
        urls.append(web_uri)
    hosts = set()
    for url in urls:
        url = url.strip().translate(ZERO_WIDTH)
        if not re.match(r"(?i)[a-z][a-z0-9+.-]*://", url):
            url = "http://" + url
        try:
            host = urlsplit(url).hostname
        except ValueError:
            continue
        if host:
            hosts.add(normalize_domain(host))
    return hosts


def check_rule(kind: str, pattern: str) -> None:
    """Refuse a rule that cannot work (bad kind, regex or number)."""
    if kind not in KINDS:
        raise ComplianceError(f"kind must be one of {', '.join(KINDS)}")
    if not pattern or len(pattern) > MAX_PATTERN:
        raise ComplianceError(f"pattern must be 1..{MAX_PATTERN} characters")
    if kind == "regex":
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ComplianceError(f"bad regex: {exc}") from None
    if kind == "audience" and not (pattern.isdigit() and int(pattern) >= 0):
        raise ComplianceError("an audience rule's pattern is a device count")
    if kind.startswith("link_") and not normalize_domain(pattern):
        raise ComplianceError("a link rule's pattern is a domain")


def build_rules(rows: Sequence[ReviewRule]) -> list[Rule]:
    rules: list[Rule] = []
    deny, allow = [], []
    for r in rows:
        if r.kind == "term":
            rules.append(TermRule(r.rule_id, r.pattern, r.action))
        elif r.kind == "regex":
            rules.append(RegexRule(r.rule_id, re.compile(r.pattern, re.IGNORECASE), r.action))
        elif r.kind == "link_deny":
            deny.append((normalize_domain(r.pattern), r.rule_id, r.action))
        elif r.kind == "link_allow":
            allow.append((normalize_domain(r.pattern), r.rule_id, r.action))
        elif r.kind == "audience":
            rules.append(AudienceRule(r.rule_id, int(r.pattern), r.action))
    if deny or allow:
        rules.append(LinkRule("links", tuple(deny), tuple(allow)))
    return rules


def decide(item: ReviewInput, rules: Sequence[Rule]) -> Decision:
    """Run every rule; the strictest decision wins (the first of equals)."""
    worst = ALLOW
    for rule in rules:
        d = rule.check(item)
        if d is not None and _RANK[d.verdict] > _RANK[worst.verdict]:
            worst = d
    return worst
