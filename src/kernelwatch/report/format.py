"""How the report writes things: seconds and values for a reader, table cells, aligned text
tables, HTML tables, the navigation and the page shell. Every page imports these; none takes
a formatter as an argument."""

from __future__ import annotations

import html
import re

from kernelwatch.results.rows import Row


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "n/a"
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s:.3g} s"


def fmt_value(v: float, unit: str) -> str:
    """A recorded value for a reader: seconds in s/ms/us/ns, anything else as a number."""
    return fmt_seconds(v) if unit == "seconds" else f"{v:.4g}"


def cell(v, kind: str = "") -> str:
    """A table cell: "s" seconds, "x" a ratio, "f" one decimal, else as it is; n/a for None."""
    if v is None:
        return "n/a"
    if kind == "s":
        return fmt_seconds(v)
    if kind == "x":
        return f"{v:.2f}x"
    if kind == "f":
        return f"{v:.1f}"
    return str(v)


def env_label(row: Row) -> str:
    torch = row.env.get("torch", "?")
    return f"{row.machine} / {row.env_name} / torch {torch}"


# Facts that tell two environments apart, in the order a reader looks for them.
ENV_FACTS = ("gpu", "torch", "cuda", "transformers", "onnxruntime", "torchao",
             "llmcompressor", "transformer_engine", "liger_kernel", "num_cpu", "threads")


def short_env_names(groups: dict[tuple[str, str], list[Row]]) -> dict[tuple[str, str], str]:
    """A short name per (machine, env): the machine, then the facts whose values differ
    between the environments given (torch always, where recorded); where two are still
    alike, the parts of asv's environment names that differ (a requirement set, a pin)."""
    facts = {key: rows[0].env for key, rows in groups.items()}
    differing = [f for f in ENV_FACTS
                 if f == "torch" or len({str(e.get(f)) for e in facts.values()}) > 1]
    out = {}
    for (machine, env_name), env in facts.items():
        shown = [f"{f} {env[f]}" for f in differing if env.get(f) not in (None, "", "none")]
        out[(machine, env_name)] = " · ".join([machine, *shown])
    alike = [k for k in out if list(out.values()).count(out[k]) > 1]
    if alike:
        tokens = {k: k[1].split("-") for k in alike}
        common = set.intersection(*(set(t) for t in tokens.values()))
        for k in alike:
            extra = [t for t in tokens[k] if t not in common]
            out[k] += " · " + ("-".join(extra) or k[1])
    return out


EMPTY_CELLS = ("n/a", "", "-")


def with_values(table: list[list[str]]) -> list[list[str]]:
    """`table` (headers first) without the columns no row has a value in: on a CPU most of
    a GPU table's columns (caller time, CUDA memory) are n/a, and a reader needs the rest."""
    if len(table) < 2:
        return table
    keep = [i for i in range(len(table[0]))
            if any(row[i] not in EMPTY_CELLS for row in table[1:])]
    return [[row[i] for i in keep] for row in table]


def aligned(table: list[list[str]], width: int = 120) -> list[str]:
    """Rows of text cells as lines of aligned columns, two spaces apart, or one where two
    would take a line past `width` (a terminal's)."""
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    gap = "  " if sum(widths) + 2 * (len(widths) - 1) <= width else " "
    return [gap.join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in table]


def markdown_table(table: list[list[str]]) -> list[str]:
    """Rows of text cells (headers first) as a markdown table, for pasting into docs/."""
    def line(row: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"

    return [line(table[0]), "|" + "---|" * len(table[0]), *map(line, table[1:])]


def html_table(headers: list[str], body: list[list[str | tuple[str, str]]],
               classes: list[str] | None = None) -> str:
    """One HTML table of text cells (escaped); a (text, href) cell is a link. `classes`
    gives each row a CSS class ("worse", "better") or none."""
    def one(c: str | tuple[str, str]) -> str:
        if isinstance(c, tuple):
            return f'<a href="{html.escape(c[1])}">{html.escape(c[0])}</a>'
        return html.escape(c)

    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    trs = []
    for i, row in enumerate(body):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        trs.append(f"<tr{cls}>" + "".join(f"<td>{one(c)}</td>" for c in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(trs)}</tbody></table>"


# Markdown (a pull-request comment, a step summary): names come from results and inventories
# other runners wrote, so each one is a code span, which GitHub renders as literal text: no
# HTML, link, image, emphasis, autolink or @mention inside one. A name is cut at NAME_LIMIT
# characters and a list at LIST_LIMIT names, so that no inventory can make a comment huge
# (GitHub refuses one over 65536 characters).
NAME_LIMIT, LIST_LIMIT = 120, 10
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def md_code(text: str, *, table: bool = False, limit: int = NAME_LIMIT) -> str:
    """`text` as one markdown code span, cut at `limit` characters (its length said), in a
    fence longer than any run of backticks inside it; `table`: for a table cell, whose `|`
    GitHub reads as a cell border even inside a code span unless escaped."""
    text = _CONTROL.sub(" ", str(text))
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text)} characters)"
    fence = "`" * (1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    # One space each side is dropped by the reader of a code span, and lets the span start
    # or end with a backtick.
    pad = " " if not text or text[0] in "` " or text[-1] in "` " else ""
    body = text.replace("|", "\\|") if table else text
    return f"{fence}{pad}{body}{pad}{fence}"


def md_list(names: list[str], *, limit: int = LIST_LIMIT) -> str:
    """Names as code spans joined by commas, the first `limit` of them and a count of the
    rest."""
    shown = ", ".join(md_code(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def md_text(text: str) -> str:
    """Text of kernelwatch's own words with values in it, for markdown: HTML and the
    characters that make links, images, emphasis, code and table cells escaped."""
    text = html.escape(_CONTROL.sub(" ", str(text)), quote=False)
    return re.sub(r"([\\`*_\[\]()!|~#])", r"\\\1", text)


NAV = ('<p><a href="overview.html">overview</a> &middot; '
       '<a href="index.html">speedups and changes</a> &middot; '
       '<a href="../index.html">asv history (all series, per commit)</a> &middot; '
       '<a href="speedups.html">speedups over commits (charts)</a> &middot; '
       '<a href="regressions.html">regressions</a> &middot; '
       '<a href="outcomes.html">skipped and failed</a> &middot; '
       '<a href="torch.html">versions side by side</a> &middot; '
       '<a href="roofline.html">roofline</a> &middot; '
       '<a href="break-even.html">break-even of compiling and quantizing</a> &middot; '
       '<a href="writeups.html">write-up tables</a> &middot; '
       '<a href="fidelity.html">fidelity: noise floor and false alarms per benchmark</a></p>')

STYLE = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
         "margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}"
         "tr.worse{background:#fdd}tr.better{background:#dfd}tr.launch{background:#ffe}"
         "tr.best{font-weight:bold}"
         ".env{color:#555}.heatmap td{text-align:center;min-width:5em}"
         ".heatmap a{color:#000;text-decoration:none}")


def page(title: str, parts: list[str], head: str = "") -> str:
    """A whole page: the title, the shared style, `head` (a script tag), the parts."""
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}"
            f"</title><style>{STYLE}</style>{head}</head><body>{''.join(parts)}</body></html>")
