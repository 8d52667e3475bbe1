#!/usr/bin/env python3
"""Every metric name the alert rules and the Grafana dashboard use.

    promql_names.py [ALERTS_YML [DASHBOARD_JSON]]     print the names, one per line, sorted
    promql_names.py --dashboard-rules OUT [...]       write the dashboard's queries as a
                                                      Prometheus rules file (for `promtool
                                                      check rules`: every panel query parses)

As a module: `names(alerts_path, dashboard_path) -> set[str]` returns the sample names as the
queries spell them (`barnabee_voice_total_latency_ms_bucket`, `barnabee_http_requests_total`,
`node_load15`, `up`), which the contract test compares with what the daemons and node_exporter
really expose. `exprs(...)` returns the queries themselves.

PromQL is not parsed fully: strings, label matchers `{...}`, ranges `[...]`, the label lists
of by/without/on/ignoring/group_left/group_right, numbers and durations, and dashboard
variables (`$host`, `$__rate_interval`, `${DS}`) are removed; an identifier left that is not
followed by `(` (a function or aggregation) and is not a keyword is a metric name.
`{__name__="x"}` selectors and Grafana's `label_values(metric, label)` count too.

The rules file is read with PyYAML when it is importable (dev/setup installs it into .venv),
otherwise with a small reader of `expr:` keys (inline, `|` and `>` block scalars) that is
enough for alerts.yml; checks/monitoring/run checks that both agree.
"""
from __future__ import annotations

import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MONITORING = os.path.join(HERE, "..", "..", "nixos-modules", "monitoring")
DEFAULT_ALERTS = os.path.normpath(os.path.join(MONITORING, "alerts.yml"))
DEFAULT_DASHBOARD = os.path.normpath(os.path.join(MONITORING, "grafana-dashboard.json"))

KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "inf", "nan", "atan2", "start", "end",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_NAME_MATCHER = re.compile(r'__name__\s*=\s*"([^"]*)"')
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]")
_MODIFIER = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_TOKEN = re.compile(
    r"(?P<num>0x[0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?[a-zA-Z]*(?:\d+[a-zA-Z]+)*)"
    r"|(?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)"
)


def expr_names(expr: str) -> set[str]:
    """The metric names one PromQL expression selects."""
    out: set[str] = set()
    # Grafana's label_values(metric, label) / label_values(label): a variable query, not PromQL.
    lv = re.fullmatch(r"\s*label_values\(\s*(.*?)\s*(?:,\s*\w+\s*)?\)\s*", expr, re.S)
    if lv:
        expr = lv.group(1) if "," in lv.group(0) else ""
    e = _VARIABLE.sub(" 1 ", expr)
    # Matchers first (they hold strings with braces, parentheses, commas); keep __name__ ones.
    for m in re.finditer(r"\{[^{}]*\}", e):
        out.update(_NAME_MATCHER.findall(m.group(0)))
    e = re.sub(r"\{[^{}]*\}", " ", e)
    e = _STRING.sub(" ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = _MODIFIER.sub(" ", e)
    for m in _TOKEN.finditer(e):
        name = m.group("ident")
        if not name or name.lower() in KEYWORDS:
            continue
        if e[m.end():].lstrip().startswith("("):
            continue  # a function or an aggregation
        out.add(name)
    return out


def _rules_exprs_yaml(text: str) -> list[str]:
    import yaml  # noqa: PLC0415 (optional dependency)

    doc = yaml.safe_load(text) or {}
    return [str(r["expr"]) for g in doc.get("groups") or [] for r in g.get("rules") or [] if "expr" in r]


def _rules_exprs_plain(text: str) -> list[str]:
    """`expr:` values of a rules file without PyYAML: inline scalars and block scalars."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)(?:-\s+)?expr:\s*(.*?)\s*$", lines[i])
        if not m or lines[i].lstrip().startswith("#"):
            i += 1
            continue
        indent, value = len(m.group(1)), m.group(2)
        value = re.sub(r"^&\S+\s*", "", value)  # an anchor
        if value[:1] in ("|", ">"):
            folded = value[0] == ">"
            block: list[str] = []
            i += 1
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                block.append(lines[i].strip())
                i += 1
            out.append((" " if folded else "\n").join(block).strip())
            continue
        if value[:1] in ("'", '"'):
            q = value[0]
            value = value[1:-1]
            value = value.replace("''", "'") if q == "'" else json.loads('"' + value + '"')
        else:
            value = re.sub(r"\s+#.*$", "", value)
        out.append(value)
        i += 1
    return out


def rules_exprs(path: str, plain: bool = False) -> list[str]:
    text = open(path, encoding="utf-8").read()
    if not plain:
        try:
            return _rules_exprs_yaml(text)
        except ImportError:
            pass
    return _rules_exprs_plain(text)


def dashboard_exprs(path: str) -> list[tuple[str, str]]:
    """(where, query) for every panel target and query variable of a dashboard."""
    doc = json.load(open(path, encoding="utf-8"))
    out: list[tuple[str, str]] = []

    def walk_panels(panels, prefix=""):
        for p in panels or []:
            for t in p.get("targets") or []:
                if isinstance(t.get("expr"), str) and t["expr"].strip():
                    out.append((f"{prefix}panel {p.get('id')} ({p.get('title')}) {t.get('refId')}", t["expr"]))
            walk_panels(p.get("panels"), prefix)  # collapsed rows hold their panels

    walk_panels(doc.get("panels"))
    for v in (doc.get("templating") or {}).get("list") or []:
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if isinstance(q, str) and q.strip():
            out.append((f"variable {v.get('name')}", q))
    return out


def exprs(alerts_path: str = DEFAULT_ALERTS, dashboard_path: str = DEFAULT_DASHBOARD) -> list[str]:
    return rules_exprs(alerts_path) + [q for _, q in dashboard_exprs(dashboard_path)]


def names(alerts_path: str = DEFAULT_ALERTS, dashboard_path: str = DEFAULT_DASHBOARD) -> set[str]:
    """Every metric name used by the alert rules' exprs and the dashboard's queries."""
    out: set[str] = set()
    for e in exprs(alerts_path, dashboard_path):
        out |= expr_names(e)
    return out


def dashboard_rules(dashboard_path: str) -> dict:
    """The dashboard's panel queries as recording rules, variables replaced by plain values."""
    rules = []
    for i, (where, q) in enumerate(dashboard_exprs(dashboard_path)):
        if q.lstrip().startswith("label_values("):
            continue
        e = q.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$__range", "1h")
        e = _VARIABLE.sub(".*", e)
        rules.append({"record": f"dashboard:query_{i}:check", "expr": e, "labels": {"where": where}})
    return {"groups": [{"name": "grafana-dashboard-queries", "rules": rules}]}


def catalog_names(catalog_rs: str) -> set[str]:
    """The sample names crates/service/src/catalog.rs declares (`_total`, `_bucket/_sum/_count`)."""
    text = open(catalog_rs, encoding="utf-8").read()
    out: set[str] = set()
    for name, kind in re.findall(r'def\(\s*\w+,\s*"([a-z0-9_]+)",\s*(Counter|Gauge|Histogram),', text):
        out |= {"Counter": {name + "_total"}, "Gauge": {name},
                "Histogram": {name + s for s in ("_bucket", "_sum", "_count")}}[kind]
    return out


# The extractor on what alerts.yml and dashboards write (checked by --self-check).
_CASES = [
    ('sum by (le) (rate(a_bucket{x="y(z)", route!~"/health|/metrics"}[5m])) > 0 and on (h) b offset 5m', {"a_bucket", "b"}),
    ("x / on (host, job, instance) count by (host, job, instance) (y{mode=\"idle\"}) > 2", {"x", "y"}),
    ('histogram_quantile(0.95, sum(rate(c_bucket{host=~"$host"}[$__rate_interval])) by (le))', {"c_bucket"}),
    ('{__name__="d_total", job="j"} unless ignoring (op) group_left (z) e', {"d_total", "e"}),
    ("label_values(up, host)", {"up"}),
    ("label_values(host)", set()),
    ("1e3 * f > bool 0x1F or g[5m:1m] offset 1h30m", {"f", "g"}),
]


def main(argv: list[str]) -> int:
    if argv[:1] == ["--dashboard-rules"]:
        out = argv[1]
        dash = argv[2] if len(argv) > 2 else DEFAULT_DASHBOARD
        with open(out, "w", encoding="utf-8") as f:
            json.dump(dashboard_rules(dash), f, indent=1)  # JSON is YAML
        return 0
    if argv[:1] == ["--check-catalog"]:
        # Every barnabee_* name used is declared in the catalog; the rest is node_exporter's
        # (checked against a real node_exporter by scenario.py) or `up`.
        catalog = argv[1]
        used = names(*(argv[2:4] or [DEFAULT_ALERTS, DEFAULT_DASHBOARD]))
        declared = catalog_names(catalog)
        unknown = sorted(n for n in used if n not in declared and not n.startswith("node_") and n != "up")
        if unknown:
            print("promql_names: used but not declared in " + catalog + ":", *unknown, sep="\n  ", file=sys.stderr)
            return 1
        print(f"promql_names: {len(used)} names used, every barnabee_* one declared in the catalog "
              f"({len(declared)} sample names)")
        return 0
    if argv[:1] == ["--self-check"]:
        bad = [(e, expr_names(e), want) for e, want in _CASES if expr_names(e) != want]
        for e, got, want in bad:
            print(f"promql_names: {e!r}: got {sorted(got)}, want {sorted(want)}", file=sys.stderr)
        if bad:
            return 1
        # The two rules readers agree (PyYAML must be importable here).
        alerts = argv[1] if len(argv) > 1 else DEFAULT_ALERTS
        a, b = _rules_exprs_yaml(open(alerts).read()), _rules_exprs_plain(open(alerts).read())
        na = set().union(*map(expr_names, a)) if a else set()
        nb = set().union(*map(expr_names, b)) if b else set()
        if len(a) != len(b) or na != nb:
            print(f"promql_names: PyYAML reads {len(a)} exprs, the plain reader {len(b)}; "
                  f"names only one way: {sorted(na ^ nb)}", file=sys.stderr)
            return 1
        print(f"promql_names: both readers find {len(a)} exprs and {len(na)} names")
        return 0
    alerts = argv[0] if len(argv) > 0 else DEFAULT_ALERTS
    dash = argv[1] if len(argv) > 1 else DEFAULT_DASHBOARD
    for n in sorted(names(alerts, dash)):
        print(n)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
