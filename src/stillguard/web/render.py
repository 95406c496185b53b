"""HTML pieces of the page: the demo-model banner, the choices table, messages, results, verdicts.

Everything a person typed or uploaded (file names, error messages) is escaped. Styles are inline
or in :data:`CSS` so the page needs nothing from the network.
"""

from __future__ import annotations

from html import escape
from typing import Any

from ..app.lossy import resave_note
from ..names import one_line, shown_name
from .choices import describe_seconds
from .session import Session

CSS = """
#sg-banner {background:#b91c1c; color:#fff; padding:14px 18px; border-radius:8px;
  font-size:1.15em; line-height:1.4; border:3px solid #7f1d1d}
#sg-banner, #sg-banner * {color:#fff !important}
#sg-banner b {font-size:1.1em}
#sg-banner code {background:#7f1d1d; padding:0 4px; border-radius:3px}
.sg-msg {padding:10px 14px; border-radius:6px; margin:4px 0; line-height:1.4}
.sg-error {background:#fef2f2; color:#991b1b; border:1px solid #fca5a5}
.sg-ok {background:#f0fdf4; color:#14532d; border:1px solid #86efac}
.sg-info {background:#eff6ff; color:#1e3a8a; border:1px solid #93c5fd}
.sg-table {border-collapse:collapse; width:100%; font-size:0.95em}
.sg-table th, .sg-table td {border:1px solid #d1d5db; padding:4px 8px; text-align:left}
.sg-table th {background:#f3f4f6}
.sg-table small {color:#4b5563}
.sg-verdict {font-size:1.3em; font-weight:600; padding:8px 12px; border-radius:6px}
.sg-verdict-good {background:#dcfce7; color:#14532d}
.sg-verdict-bad {background:#fef3c7; color:#78350f}
"""


def banner(session: Session) -> str:
    """The warning that cannot be missed when the model is the toy or the tiny one ('' otherwise)."""
    if not session.demo:
        return ""
    kind = (
        "a random-weight test model" if session.model == "tiny" else "a small demonstration model"
    )
    return (
        f'<div id="sg-banner" role="alert"><b>&#9888; Demonstration only: the model here is '
        f"{escape(session.model)!s} ({kind}).</b><br>Photos protected on this page are "
        "<b>NOT protected against real image-to-video models</b>. Start the server with a real "
        "model (<code>stillguard web --model FOLDER</code>) to protect photos for real.</div>"
    )


def header(session: Session) -> str:
    return (
        "# stillguard: protect your photos against image-to-video AI\n"
        "Add a small, nearly invisible change to a photo so that image-to-video models make a "
        "frozen or broken video from it. Then check it: generate videos from the original and the "
        f"protected photo and compare.  \nModel on this server: **{escape(session.describe())}**"
    )


def _eot_words(specs: list[str]) -> str:
    """``["identity", "jpeg:75", "resize:0.75"]`` -> ``"JPEG 75, resize x0.75"``."""
    words = {"jpeg": "JPEG {}", "resize": "resize x{}", "blur": "blur {} px", "crop": "crop {}",
             "noisy-upscale": "noisy upscale {}"}  # fmt: skip
    out = []
    for spec in specs:
        name, _, arg = str(spec).partition(":")
        if name != "identity":
            out.append(words.get(name, name + " {}").format(arg).strip())
    return ", ".join(out)


def choices_table(session: Session) -> str:
    """Method, steps, budget and expected time per photo of each choice, on this machine."""
    rows = []
    for key, c in session.choices.items():
        cfg = session.config(key)
        steps = cfg.loop.steps
        eot = _eot_words(list(cfg.loop.eot))
        also = f"<br><small>made to survive {escape(eot)}</small>" if eot else ""
        rows.append(
            f"<tr><td><b>{escape(c.title)}</b><br><small>{escape(c.blurb)}</small></td>"
            f"<td>{escape(cfg.method_name)}, {steps} steps{also}</td>"
            f"<td>{round(cfg.loop.eps * 255)}/255</td>"
            f"<td>{describe_seconds(session.expected_seconds(key, steps))}</td></tr>"
        )
    return (
        '<table class="sg-table" id="sg-choices"><tr><th>protection</th><th>method</th>'
        "<th>budget</th><th>time per photo on this server</th></tr>" + "".join(rows) + "</table>"
    )


def message(text: str, kind: str = "info") -> str:
    """A message box: ``kind`` is ``info``, ``ok`` or ``error``; ``text`` is escaped."""
    return f'<div class="sg-msg sg-{kind}">{escape(text)}</div>'


def messages(items: list[tuple[str, str]]) -> str:
    return "".join(message(t, k) for k, t in items)


def _num(v: Any, fmt: str) -> str:
    return "n/a" if v is None else format(v, fmt)


def _error_of(p: Any) -> str:
    """The photo's error on one line, without its name in front (the name is shown beside it)."""
    text, name = one_line(p.error or "failed"), shown_name(p.name)
    return text[len(name) + 2 :] if text.startswith(name + ": ") else text


HINT = (
    "<p>PSNR above 35 dB and SSIM above 0.95 are usually hard to tell apart by eye; the "
    "difference image shows the change ten times stronger around mid-grey.</p>"
)


def results_table(run: Any) -> str:
    """One row per upload: size, PSNR, SSIM, L-infinity, time, or the error."""
    rows = []
    for p in run.photos:
        if p.status != "ok":
            rows.append(
                f'<tr><td>{escape(shown_name(p.name))}</td><td colspan="5" class="sg-error">'
                f"not protected: {escape(_error_of(p))}</td></tr>"
            )
            continue
        m = p.metrics
        rows.append(
            f"<tr><td>{escape(shown_name(p.name))}</td><td>{m['size'][0]}x{m['size'][1]}</td>"
            f"<td>{_num(m.get('psnr'), '.1f')} dB</td><td>{_num(m.get('ssim'), '.3f')}</td>"
            f"<td>{m.get('linf_255')}/255</td><td>{m['seconds']:.1f} s</td></tr>"
        )
    return (
        '<table class="sg-table" id="sg-results"><tr><th>photo</th><th>size (kept)</th>'
        "<th>PSNR</th><th>SSIM</th><th>largest change</th><th>time</th></tr>"
        + "".join(rows)
        + "</table>"
        + (HINT if run.ok else "")
    )


def run_summary(run: Any) -> str:
    """The status line after a run: what was protected, what failed and why."""
    ok, bad = run.ok, [p for p in run.photos if p.status != "ok"]
    items: list[tuple[str, str]] = []
    if ok:
        what = (
            "the PNG and its JSON record" if len(ok) == 1 else "one zip with every PNG and record"
        )
        items.append(
            ("ok", f"Protected {len(ok)} photo(s) at {run.budget_255}/255. Download {what} below.")
        )
    if ok:  # the download is a PNG; a JPEG of it keeps less of the protection
        items.append(("info", "Share the PNG as it is: " + resave_note("JPEG")))
    for p in bad:
        items.append(("error", f"{shown_name(p.name)}: {_error_of(p)}"))
    if not ok:
        items.append(("error", "Nothing was protected and nothing was saved."))
    if ok and run.demo:
        items.append(("error", "Reminder: protected against a demonstration model only."))
    return messages(items)


def verdict(result: Any) -> str:
    """The verdicts as measured, in words, with the noise baseline beside them."""
    parts = []
    for label, v in result.verdicts.items():
        where = "as saved" if label == "identity" else f"after {label.replace(':', ' ')}"
        good = v in ("frozen", "degraded")
        noise = result.noise_verdicts.get(label, "n/a")
        parts.append(
            f'<div class="sg-verdict sg-verdict-{"good" if good else "bad"}">'
            f"{escape(where)}: {escape(v)} <small>(same-budget random noise: "
            f"{escape(noise)})</small></div>"
        )
    if result.demo:
        parts.append(
            message(
                "Measured on a demonstration model: these numbers say nothing about real "
                "image-to-video models.",
                "error",
            )
        )
    return "".join(parts)
