"""The wallboard and agent pages: plain HTML, CSS and a little JavaScript, no build step.

The pages fetch ``/api/snapshot`` once and then follow ``/events`` (Server-Sent Events, one
snapshot per message). Text from Redis is only ever put into the page with ``textContent``.
"""

from __future__ import annotations

import html
import json
from typing import Any

_STYLE = """
:root { --bg:#0d1117; --fg:#e6edf3; --dim:#8b949e; --ok:#2ea043; --warn:#d29922;
        --alert:#f85149; --tile:#161b22; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
       font: 16px/1.3 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { display:flex; justify-content:space-between; align-items:baseline;
         padding: .6rem 1.2rem; font-size: clamp(1rem, 2vw, 2.2rem); }
header .clock { color: var(--dim); font-variant-numeric: tabular-nums; }
#status.stale { color: var(--alert); }
main { padding: 0 1.2rem 1.2rem; }
.queues { display:grid; gap: 1rem;
          grid-template-columns: repeat(auto-fit, minmax(min(100%, 22rem), 1fr)); }
.queue { background: var(--tile); border-radius: .6rem; padding: .8rem 1rem;
         border-left: .5rem solid var(--ok); }
.queue.warn { border-left-color: var(--warn); } .queue.alert { border-left-color: var(--alert); }
.queue h2 { margin: 0 0 .4rem; font-size: clamp(1.2rem, 2.4vw, 2.6rem); }
.figs { display:grid; grid-template-columns: repeat(3, 1fr); gap: .3rem .8rem; }
.fig .v { font-size: clamp(1.6rem, 4.2vw, 4.4rem); font-weight: 700;
          font-variant-numeric: tabular-nums; }
.fig .l { color: var(--dim); font-size: clamp(.75rem, 1.1vw, 1.2rem); text-transform: uppercase; }
.v.warn { color: var(--warn); } .v.alert { color: var(--alert); }
h3 { margin: 1.2rem 0 .4rem; font-size: clamp(1rem, 1.8vw, 2rem); color: var(--dim); }
.counts span { margin-right: 1.2rem; font-size: clamp(1rem, 1.6vw, 1.8rem); }
.agents { display:grid; gap:.5rem;
          grid-template-columns: repeat(auto-fill, minmax(min(100%, 13rem), 1fr)); }
.agent { background: var(--tile); border-radius:.5rem; padding:.5rem .7rem;
         border-top: .35rem solid var(--dim); font-size: clamp(.9rem, 1.3vw, 1.5rem); }
.agent .id { font-weight: 700; }
.agent .t { color: var(--dim); font-variant-numeric: tabular-nums; }
.agent.idle { border-top-color: var(--ok); } .agent.in-call { border-top-color: #388bfd; }
.agent.ringing { border-top-color: var(--warn); } .agent.wrap-up { border-top-color: #a371f7; }
.agent.on-break { border-top-color: var(--alert); } .agent.logged-out { opacity: .45; }
dl { display:grid; grid-template-columns: max-content 1fr; gap:.3rem 1rem; font-size:1.3rem; }
dt { color: var(--dim); }
"""

_COMMON_JS = """
const TOKEN = new URLSearchParams(location.search).get('token');
function withToken(u) { return TOKEN ? u + (u.includes('?') ? '&' : '?') + 'token=' +
  encodeURIComponent(TOKEN) : u; }
function dur(s) { if (s === null || s === undefined) return '-'; s = Math.floor(s);
  if (s < 60) return s + 's'; if (s < 3600) return Math.floor(s/60) + 'm' +
  String(s%60).padStart(2,'0') + 's'; return Math.floor(s/3600) + 'h' +
  String(Math.floor(s%3600/60)).padStart(2,'0') + 'm'; }
function el(tag, cls, text) { const e = document.createElement(tag); if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text; return e; }
function follow(path, render) {
  const status = document.getElementById('status');
  fetch(withToken('/api/' + path)).then(r => r.json()).then(render).catch(() => {});
  const es = new EventSource(withToken('/events/' + path));
  es.onmessage = m => { render(JSON.parse(m.data)); status.textContent = 'live';
    status.className = ''; };
  es.onerror = () => { status.textContent = 'reconnecting'; status.className = 'stale'; };
  setInterval(() => { document.getElementById('clock').textContent =
    new Date().toLocaleTimeString(); }, 1000);
}
"""

_BOARD_JS = """
const TH = JSON.parse(document.getElementById('thresholds').textContent);
function level(v, warn, alert, low) { if (v === null || v === undefined) return '';
  if (low) return v < alert ? 'alert' : v < warn ? 'warn' : '';
  return v >= alert ? 'alert' : v >= warn ? 'warn' : ''; }
function fig(label, value, cls, key) { const d = el('div', 'fig');
  const v = el('div', 'v ' + (cls || ''), value); v.dataset.key = key;
  d.append(v, el('div', 'l', label));
  return d; }
function render(s) {
  const qs = document.getElementById('queues'); qs.replaceChildren();
  for (const q of s.queues) {
    const w = level(q.waiting, TH.waiting_warn, TH.waiting_alert);
    const lw = level(q.longest_wait, TH.wait_warn, TH.wait_alert);
    const sl = level(q.service_level, TH.sl_warn, TH.sl_alert, true);
    const all = [w, lw, sl];
    const worst = all.includes('alert') ? 'alert' : all.includes('warn') ? 'warn' : '';
    const t = el('section', 'queue ' + worst); t.id = 'q-' + q.name; t.dataset.queue = q.name;
    t.append(el('h2', '', q.name));
    const f = el('div', 'figs');
    f.append(fig('waiting', String(q.waiting), w, 'waiting'),
             fig('longest wait', dur(q.longest_wait), lw, 'longest_wait'),
             fig('service level', q.service_level === null ? '-' :
                 Math.round(q.service_level * 100) + '%', sl, 'service_level'),
             fig('answered', String(q.answered), '', 'answered'),
             fig('abandoned', String(q.abandoned), '', 'abandoned'),
             fig('talking', String(q.talking), '', 'talking'));
    t.append(f); qs.append(t);
  }
  const c = document.getElementById('counts'); c.replaceChildren();
  for (const [k, v] of Object.entries(s.agents_by_state)) {
    if (v) c.append(el('span', '', k + ' ' + v));
  }
  const as = document.getElementById('agents'); as.replaceChildren();
  for (const a of s.agents) {
    const d = el('div', 'agent ' + a.activity);
    d.dataset.agent = a.id; d.dataset.state = a.activity;
    const what = a.activity === 'on-break' && a.break_reason ?
      'on-break (' + a.break_reason + ')' : a.activity;
    d.append(el('div', 'id', a.id), el('div', 's', what), el('div', 't', dur(a.in_state) +
      ' · ' + a.answered + ' answered'));
    as.append(d);
  }
}
follow('snapshot', render);
"""

_AGENT_JS = """
const AGENT = document.body.dataset.agent;
function render(s) {
  const a = s.agent; const dl = document.getElementById('agent'); dl.replaceChildren();
  if (!a) { dl.append(el('dt', '', 'agent'), el('dd', '', 'unknown')); return; }
  const rows = [['state', a.activity], ['for', dur(a.in_state)], ['status', a.status],
    ['call', a.call || '-'], ['answered today', String(a.answered)],
    ['talk today', dur(a.talk_time)]];
  for (const [k, v] of rows) dl.append(el('dt', '', k), el('dd', '', v));
  const p = document.getElementById('pop'); p.replaceChildren();
  if (s.pop) for (const [k, v] of Object.entries(s.pop)) {
    if (['type', 'agent', 'ts'].includes(k)) continue;
    p.append(el('dt', '', k), el('dd', '', typeof v === 'string' ? v : JSON.stringify(v)));
  }
}
follow('agent/' + encodeURIComponent(AGENT), render);
"""


def _page(title: str, body: str, script: str, attrs: str = "") -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body{attrs}><header><span>{html.escape(title)}</span>"
        "<span class='clock'><span id='status'>connecting</span> · <span id='clock'></span>"
        f"</span></header><main>{body}</main><script>{_COMMON_JS}{script}</script></body></html>"
    )


def wallboard(title: str, thresholds: dict[str, Any]) -> str:
    """The wallboard at ``/``."""
    data = json.dumps(thresholds).replace("<", "\\u003c")
    body = (
        f"<script type='application/json' id='thresholds'>{data}</script>"
        "<div class='queues' id='queues'></div><h3>Agents</h3>"
        "<div class='counts' id='counts'></div><div class='agents' id='agents'></div>"
    )
    return _page(title, body, _BOARD_JS)


def agent_page(title: str, agent_id: str) -> str:
    """``/agent/ID``: the agent's state and the screen pop of its current call."""
    body = "<h3>Agent</h3><dl id='agent'></dl><h3>Current call</h3><dl id='pop'></dl>"
    return _page(
        f"{title} — {agent_id}",
        body,
        _AGENT_JS,
        attrs=f" data-agent='{html.escape(agent_id, quote=True)}'",
    )
