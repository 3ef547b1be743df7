"""The status page (`GET /`): where every branch stands, readable at a glance on a phone.

Plain HTML with inline CSS and no JavaScript; every value from a manifest, the mirror or the
forge goes through `html.escape`, and only http(s) links are made links. It shows the same
report as `xsabot status` and `GET /status.json`, plus the service's last pass.
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from bot.core.proposals import parse_proposal_branch
from bot.core.reports import BlockedXsa, BranchReport, OpenProposal, StatusReport
from bot.redact import redact
from bot.serve.history import PassRecord

ADVISORY = "https://xenbits.xen.org/xsa/advisory-{}.html"

_CSS = """
body{font:16px/1.45 system-ui,sans-serif;margin:0 auto;padding:0 12px 24px;max-width:48rem;
color:#1b1b1b;background:#fff;overflow-wrap:anywhere}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin:1.4em 0 .3em;border-top:1px solid #ccc;
padding-top:.6em}ul{padding-left:1.2em;margin:.2em 0}code,pre{font:.9em/1.4 monospace}
pre{background:#f4f4f4;padding:8px;overflow-x:auto;white-space:pre}
.ok{color:#17631c}.bad{color:#a0141e}.dim{color:#555}dt{font-weight:600}dd{margin:0 0 .4em 0}
"""


def render(
    status: StatusReport | None,
    last: PassRecord | None,
    *,
    running_since: datetime | None,
    remotes: list[tuple[str, str]],
    namespace: str,
) -> str:
    """The page. `remotes`: (remote name, mirror URL) per tree."""
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        "<title>xsabot status</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>xsabot: XSA-only branches</h1>",
        _pass_line(last, running_since),
    ]
    if status is None:
        parts.append("<p>No status yet: the first pass has not completed.</p>")
    else:
        proposals = _proposals_by_xsa(status.proposals)
        parts += [_branch(b, proposals) for b in status.branches]
        loose = [p for p in status.proposals if parse_proposal_branch(p.branch) is None]
        if loose:
            parts.append("<h2>Other open merge requests</h2><ul>")
            parts += [f"<li>{_proposal(p)}</li>" for p in loose]
            parts.append("</ul>")
    parts.append(_tracking(remotes, namespace))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _pass_line(last: PassRecord | None, running_since: datetime | None) -> str:
    bits = []
    if last is None:
        bits.append("No pass has completed yet.")
    else:
        when = last.started.strftime("%Y-%m-%d %H:%M:%S UTC")
        css = "ok" if last.result == "ok" else "bad"
        bits.append(
            f'Last pass: {escape(when)}, <span class="{css}">{escape(last.result)}</span> '
            f"in {last.seconds:.1f} s ({escape(last.trigger)})."
        )
        if last.errors:
            bits.append(
                "<ul>" + "".join(f"<li>{escape(redact(e))}</li>" for e in last.errors) + "</ul>"
            )
    if running_since is not None:
        bits.append(f"A pass is running since {running_since.strftime('%H:%M:%S UTC')}.")
    return "<p>" + " ".join(bits) + "</p>"


def _proposals_by_xsa(proposals: tuple[OpenProposal, ...]) -> dict[tuple[str, int], OpenProposal]:
    found = {}
    for p in proposals:
        parsed = parse_proposal_branch(p.branch)
        if parsed is not None:
            found[parsed] = p
    return found


def _link(url: str, text: str) -> str:
    if url.startswith(("https://", "http://")):
        return f'<a href="{escape(url, quote=True)}">{escape(text)}</a>'
    return escape(text)


def _xsa(n: int) -> str:
    return _link(ADVISORY.format(int(n)), f"XSA-{int(n)}")


def _xsas(numbers: tuple[int, ...]) -> str:
    return ", ".join(_xsa(n) for n in numbers) if numbers else '<span class="dim">none</span>'


def _proposal(p: OpenProposal) -> str:
    draft = " (draft)" if p.draft else ""
    return f"{_link(p.url, f'!{p.id}')}{draft}: {escape(p.title)}"


def _branch(b: BranchReport, proposals: dict[tuple[str, int], OpenProposal]) -> str:
    name = b.branch or b.manifest
    css = "ok" if b.ok else "bad"
    rows = [
        f'<h2 id="{escape(name, quote=True)}"><code>{escape(name)}</code> '
        f'<span class="{css}">{"up to date" if b.ok else "needs attention"}</span></h2>',
        "<dl>",
        f"<dt>Manifest</dt><dd><code>{escape(b.manifest)}</code></dd>",
        f"<dt>Base</dt><dd><code>{escape(b.base or '-')}</code></dd>",
        f"<dt>Tip</dt><dd><code>{escape(b.tip or 'not published')}</code></dd>",
        f"<dt>Holds</dt><dd>{_xsas(b.applied)}</dd>",
    ]
    if b.already_applied:
        rows.append(f"<dt>Already in the base</dt><dd>{_xsas(b.already_applied)}</dd>")
    blocked = [x for x in b.blocked if not x.waits_for]
    waiting = [x for x in b.blocked if x.waits_for]
    if blocked:
        rows.append("<dt>Blocked</dt><dd><ul>")
        rows += [f"<li>{_blocked(b.manifest, x, proposals)}</li>" for x in blocked]
        rows.append("</ul></dd>")
    if waiting:
        rows.append("<dt>Waiting</dt><dd><ul>")
        rows += [f"<li>{_xsa(x.xsa)} waits for {_xsas(x.waits_for)}</li>" for x in waiting]
        rows.append("</ul></dd>")
    if b.not_applied:
        rows.append(f"<dt>Not applied (manifest says so)</dt><dd>{_xsas(b.not_applied)}</dd>")
    if b.problems:
        rows.append("<dt>Problems</dt><dd><ul>")
        rows += [f'<li class="bad">{escape(redact(p))}</li>' for p in b.problems]
        rows.append("</ul></dd>")
    rows.append("</dl>")
    return "\n".join(rows)


def _blocked(manifest: str, x: BlockedXsa, proposals: dict[tuple[str, int], OpenProposal]) -> str:
    text = f"{_xsa(x.xsa)}: {escape(x.reason)}"
    if x.paths:
        text += f" in <code>{escape(', '.join(x.paths))}</code>"
    proposal = proposals.get((manifest, x.xsa))
    text += (
        f"; fix proposed in {_proposal(proposal)}"
        if proposal
        else '; <span class="dim">no merge request</span>'
    )
    return text


def _tracking(remotes: list[tuple[str, str]], namespace: str) -> str:
    lines = []
    for remote, url in remotes:
        lines += [
            f"git remote add {remote} {redact(url)}",
            f"git config remote.{remote}.fetch '+refs/heads/{namespace}*:refs/remotes/{remote}/*'",
            f"git fetch {remote} refs/notes/xsabot:refs/notes/xsabot",
            f"git fetch {remote}",
        ]
    return (
        "<h2>Track these branches with git</h2>\n<pre>"
        + escape("\n".join(lines))
        + "</pre>\n<p>Build records: <code>git log --notes=xsabot -1 REMOTE/BRANCH</code>. "
        'Also as JSON: <a href="status.json">status.json</a>; metrics: '
        '<a href="metrics">metrics</a>.</p>'
    )
