// hookgate partner portal. Every value from the receiver is rendered with textContent,
// never as HTML: payloads and error texts are data.
'use strict';

const keyName = 'hookgate-api-key';
let apiKey = sessionStorage.getItem(keyName) || '';
let logCursor = '';

const $ = (id) => document.getElementById(id);

function text(el, value) { el.textContent = value == null ? '' : String(value); return el; }

function cell(row, value, className) {
  const td = document.createElement('td');
  text(td, value);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

async function api(path, options = {}) {
  const headers = Object.assign({ 'x-api-key': apiKey }, options.headers || {});
  const resp = await fetch(path, Object.assign({}, options, { headers }));
  let body = null;
  try { body = await resp.json(); } catch (_) { body = null; }
  return { status: resp.status, body };
}

// hookgateSign is the seed's PartnerHMAC signature: hex HMAC-SHA256 keyed with the
// signing secret's bytes over timestamp + "." + body.
async function hookgateSign(secret, timestamp, body) {
  const enc = new TextEncoder();
  const key = await crypto.subtle.importKey('raw', enc.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const mac = await crypto.subtle.sign('HMAC', key, enc.encode(timestamp + '.' + body));
  return Array.from(new Uint8Array(mac), (b) => b.toString(16).padStart(2, '0')).join('');
}
window.hookgateSign = hookgateSign;

async function signIn(key) {
  apiKey = key;
  const me = await api('/api/webhooks/me');
  if (me.status !== 200) {
    text($('signin-error'), (me.body && me.body.message) || ('sign-in failed: HTTP ' + me.status));
    sessionStorage.removeItem(keyName);
    return;
  }
  sessionStorage.setItem(keyName, key);
  text($('signin-error'), '');
  $('signin').hidden = true;
  $('app').hidden = false;
  text($('whoami'), me.body.namespace + '/' + me.body.partner);
  showKey(me.body);
  const select = $('endpoint');
  select.replaceChildren();
  for (const ep of me.body.endpoints) {
    const opt = document.createElement('option');
    opt.value = ep.path;
    text(opt, ep.name + ' (' + ep.path + ')');
    select.appendChild(opt);
  }
  await Promise.all([loadLog(true), loadUsage()]);
}

function showKey(me) {
  const dl = $('key-info');
  dl.replaceChildren();
  const add = (term, value) => {
    dl.appendChild(text(document.createElement('dt'), term));
    dl.appendChild(text(document.createElement('dd'), value));
  };
  add('Partner', me.namespace + '/' + me.partner);
  add('Key', me.keyPrefix + '…');
  add('Key valid until', me.keyGraceEndsAt ? me.keyGraceEndsAt + ' (a previous key in its rotation grace period)' : 'no end: the current key');
  add('Credentials rotated', me.rotatedAt || 'never');
  add('Previous key', me.previousKeyValidUntil ? 'still valid until ' + me.previousKeyValidUntil : 'none');
  add('Rate limit', me.rateLimit.requestsPerSecond + ' requests/s, burst ' + me.rateLimit.burst);
}

async function sendTest(event) {
  event.preventDefault();
  let data;
  try { data = JSON.parse($('data').value || '{}'); } catch (e) {
    $('test-result').hidden = false;
    text($('test-response'), 'Data is not JSON: ' + e.message);
    return;
  }
  const path = $('endpoint').value;
  const id = 'evt_test_' + crypto.getRandomValues(new Uint32Array(2)).join('');
  const body = JSON.stringify({ id, type: $('event-type').value, timestamp: new Date().toISOString(), data });
  const timestamp = String(Math.floor(Date.now() / 1000));
  const signature = 'sha256=' + await hookgateSign($('signing-secret').value, timestamp, body);
  const headers = { 'Content-Type': 'application/json', 'x-timestamp': timestamp, 'x-webhook-signature': signature };
  const resp = await api(path, { method: 'POST', headers, body });
  $('test-result').hidden = false;
  text($('test-headers'), Object.entries(Object.assign({ 'x-api-key': apiKey.slice(0, 8) + '…' }, headers)).map(([k, v]) => k + ': ' + v).join('\n'));
  const q = (s) => "'" + s.replace(/'/g, "'\\''") + "'";
  text($('test-curl'), ['curl -X POST ' + q(location.origin + path), ...Object.entries(headers).map(([k, v]) => '  -H ' + q(k + ': ' + v)),
    '  -H "x-api-key: $HOOKGATE_API_KEY"', '  --data ' + q(body)].join(' \\\n'));
  text($('test-response'), 'HTTP ' + resp.status + '\n' + JSON.stringify(resp.body, null, 2));
  await loadLog(true);
}

async function loadLog(fresh, event) {
  if (event) event.preventDefault();
  if (fresh) logCursor = '';
  const params = new URLSearchParams({ limit: '20' });
  if ($('filter-status').value) params.set('status', $('filter-status').value);
  if ($('filter-type').value) params.set('type', $('filter-type').value);
  if (logCursor) params.set('cursor', logCursor);
  const resp = await api('/api/webhooks/events?' + params);
  const tbody = $('event-log').querySelector('tbody');
  if (fresh) tbody.replaceChildren();
  if (resp.status !== 200) return;
  for (const ev of resp.body.events) {
    const row = document.createElement('tr');
    row.dataset.uuid = ev.uuid;
    row.tabIndex = 0;
    cell(row, ev.receivedAt);
    cell(row, ev.eventId);
    cell(row, ev.type);
    cell(row, ev.status, 'status-' + ev.status);
    cell(row, delivered(ev));
    cell(row, ev.attempts);
    cell(row, ev.lastResponseCode || '');
    row.addEventListener('click', () => showEvent(ev.uuid));
    row.addEventListener('keydown', (e) => { if (e.key === 'Enter') showEvent(ev.uuid); });
    tbody.appendChild(row);
  }
  logCursor = resp.body.cursor || '';
  $('log-more').hidden = !logCursor;
}

// delivered is "delivered/total" of an event's deliveries, one per destination.
function delivered(ev) {
  const ds = ev.deliveries || [];
  return ds.length ? ds.filter((d) => d.status === 'Delivered').length + '/' + ds.length : '';
}

async function showEvent(uuid) {
  const resp = await api('/api/webhooks/events/' + encodeURIComponent(uuid));
  if (resp.status !== 200) return;
  const ev = resp.body;
  $('event-detail').hidden = false;
  text($('detail-id'), ev.eventId + ' (' + ev.uuid + ')');
  const perDestination = (ev.deliveries || []).map((d) => d.destination + ': ' + d.status + (d.lastError ? ' (' + d.lastError + ')' : ''));
  text($('detail-status'), ev.status + (ev.lastError ? ' — ' + ev.lastError : '') + (ev.reason ? ' — ' + ev.reason : '') +
    (perDestination.length > 1 ? ' — ' + perDestination.join(', ') : ''));
  const tbody = $('attempts').querySelector('tbody');
  tbody.replaceChildren();
  for (const a of ev.attemptLog) {
    const row = document.createElement('tr');
    cell(row, a.destination); cell(row, a.number); cell(row, a.startedAt); cell(row, a.durationMs); cell(row, a.responseCode || ''); cell(row, a.error || '');
    tbody.appendChild(row);
  }
  text($('detail-payload'), ev.payload !== undefined ? JSON.stringify(ev.payload, null, 2) : (ev.payloadBase64 || ''));
  const retry = $('retry');
  retry.hidden = ev.status !== 'Failed';
  retry.dataset.uuid = ev.uuid;
  text($('retry-result'), '');
}

async function retry() {
  const uuid = $('retry').dataset.uuid;
  const resp = await api('/api/webhooks/events/' + encodeURIComponent(uuid) + '/retry', { method: 'POST' });
  await loadLog(true);
  await showEvent(uuid);
  text($('retry-result'), resp.status === 202 ? 'Queued again' : ((resp.body && resp.body.message) || 'HTTP ' + resp.status));
}

async function checkStatus(event) {
  event.preventDefault();
  const resp = await api('/api/webhooks/status?eventId=' + encodeURIComponent($('event-id').value));
  text($('status-result'), resp.status === 200 ? JSON.stringify(resp.body, null, 2) : ((resp.body && resp.body.message) || 'HTTP ' + resp.status));
}

async function loadUsage() {
  const resp = await api('/api/webhooks/usage?days=14');
  if (resp.status !== 200) return;
  const svg = $('usage-chart');
  svg.replaceChildren();
  const days = resp.body.days;
  const max = Math.max(1, ...days.map((d) => d.accepted + d.duplicate + d.rejected));
  const w = 640 / days.length;
  const ns = 'http://www.w3.org/2000/svg';
  days.forEach((d, i) => {
    let y = 140;
    for (const [value, color] of [[d.accepted, '#2da44e'], [d.duplicate, '#bf8700'], [d.rejected, '#cf222e']]) {
      const h = (value / max) * 130;
      const rect = document.createElementNS(ns, 'rect');
      rect.setAttribute('x', String(i * w + 2)); rect.setAttribute('y', String(y - h));
      rect.setAttribute('width', String(w - 4)); rect.setAttribute('height', String(h)); rect.setAttribute('fill', color);
      const title = document.createElementNS(ns, 'title');
      text(title, d.day + ': ' + d.accepted + ' accepted, ' + d.duplicate + ' duplicate, ' + d.rejected + ' rejected');
      rect.appendChild(title);
      svg.appendChild(rect);
      y -= h;
    }
    const label = document.createElementNS(ns, 'text');
    label.setAttribute('x', String(i * w + 2)); label.setAttribute('y', '155'); label.setAttribute('font-size', '9');
    text(label, d.day.slice(5));
    svg.appendChild(label);
  });
}

document.addEventListener('DOMContentLoaded', () => {
  $('signin-form').addEventListener('submit', (e) => { e.preventDefault(); signIn($('api-key').value); });
  $('test-form').addEventListener('submit', sendTest);
  $('log-filters').addEventListener('submit', (e) => loadLog(true, e));
  $('log-more').addEventListener('click', () => loadLog(false));
  $('retry').addEventListener('click', retry);
  $('status-form').addEventListener('submit', checkStatus);
  if (apiKey) signIn(apiKey);
});
