// Drives the partner portal in Debian's Chromium (playwright-core, no downloaded
// browser) the way a partner would, for receiver/portal_test.go. Configuration comes from
// the environment; it prints one JSON line per finding and exits non-zero on a failure.
'use strict';
const { chromium } = require('playwright-core');

const { PORTAL_URL, API_KEY, SIGNING_SECRET, OTHER_API_KEY, FAILED_EVENT_ID, SCREENSHOT, SIGN_TIMESTAMP, SIGN_BODY } = process.env;
const report = (finding) => console.log(JSON.stringify(finding));
const timeout = 20000;

async function signIn(page, key) {
  await page.goto(PORTAL_URL);
  await page.getByLabel('API key', { exact: true }).fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Event log' }).waitFor({ timeout });
}

// waitForRow refreshes the log until a row holds text, and returns it.
async function waitForRow(page, text, status) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const row = page.locator('#event-log tbody tr', { hasText: text });
    if (await row.count() > 0 && (!status || (await row.first().locator('td').nth(3).textContent()) === status)) return row.first();
    if (Date.now() > deadline) throw new Error(`no row with ${text}${status ? ' and status ' + status : ''} in the event log`);
    await page.getByRole('button', { name: 'Refresh' }).click();
    await page.waitForTimeout(300);
  }
}

(async () => {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-gpu'],
  });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    await signIn(page, API_KEY);
    report({ step: 'signed in', whoami: await page.locator('#whoami').textContent() });

    // The signature the page makes, for the Go test to compare with the seed's openssl.
    const signature = await page.evaluate(([s, t, b]) => window.hookgateSign(s, t, b), [SIGNING_SECRET, SIGN_TIMESTAMP, SIGN_BODY]);
    report({ step: 'signature', signature });

    // Test Webhook Endpoint, with data that would run script if it were rendered as HTML.
    await page.getByLabel('Endpoint', { exact: true }).selectOption({ label: 'forwarded (/api/webhooks/forwarded)' });
    await page.getByLabel('Event type', { exact: true }).fill('order.created');
    await page.getByLabel('Data', { exact: true }).fill('{"orderId": "ORD-XSS", "note": "<img src=x onerror=window.__xss=1>"}');
    await page.getByLabel('Signing secret', { exact: true }).fill(SIGNING_SECRET);
    await page.getByRole('button', { name: 'Send test event' }).click();
    await page.locator('#test-response', { hasText: 'HTTP 202' }).waitFor({ timeout });
    const curl = await page.locator('#test-curl').textContent();
    if (!curl.includes('x-webhook-signature: sha256=')) throw new Error('the curl line has no signature');
    if ((await page.locator('#test-headers').textContent()).includes(SIGNING_SECRET)) throw new Error('the signing secret is shown');
    report({ step: 'test event sent' });

    const row = await waitForRow(page, 'order.created', 'Delivered');
    await row.click();
    await page.locator('#attempts tbody tr', { hasText: '200' }).waitFor({ timeout });
    const payload = await page.locator('#detail-payload').textContent();
    const injected = await page.locator('#detail-payload img, #event-log img').count();
    const xss = await page.evaluate(() => window.__xss);
    if (!payload.includes('<img src=x onerror=window.__xss=1>') || injected !== 0 || xss !== undefined) {
      throw new Error(`the payload was rendered as HTML (img elements ${injected}, __xss ${xss})`);
    }
    report({ step: 'delivered, attempts shown, payload rendered as text' });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    report({ step: 'screenshot', path: SCREENSHOT });

    // Retry a failed event and see a new attempt.
    const failed = await waitForRow(page, FAILED_EVENT_ID, 'Failed');
    await failed.click();
    await page.locator('#attempts tbody tr').first().waitFor({ timeout });
    const before = await page.locator('#attempts tbody tr').count();
    await page.getByRole('button', { name: 'Retry' }).click();
    await page.locator('#retry-result', { hasText: 'Queued again' }).waitFor({ timeout });
    const deadline = Date.now() + timeout;
    while ((await page.locator('#attempts tbody tr').count()) <= before) {
      if (Date.now() > deadline) throw new Error('no new attempt after the retry');
      await page.waitForTimeout(300);
      await (await waitForRow(page, FAILED_EVENT_ID)).click();
    }
    report({ step: 'retried', attemptsBefore: before, attemptsAfter: await page.locator('#attempts tbody tr').count() });

    // Check Event Status by id.
    await page.getByLabel('Event ID', { exact: true }).fill(FAILED_EVENT_ID);
    await page.getByRole('button', { name: 'Check status' }).click();
    await page.locator('#status-result', { hasText: FAILED_EVENT_ID }).waitFor({ timeout });
    report({ step: 'status checked' });

    // Key and usage panel.
    const bars = await page.locator('#usage-chart rect').count();
    report({ step: 'usage', bars, key: await page.locator('#key-info').textContent() });
    if (errors.length) throw new Error('page errors: ' + errors.join('; '));

    // Another partner's key sees none of these events.
    const other = await browser.newPage();
    await signIn(other, OTHER_API_KEY);
    await other.waitForTimeout(500);
    const rows = await other.locator('#event-log tbody tr').count();
    report({ step: 'other partner', rows });
    if (rows !== 0) throw new Error(`another partner sees ${rows} events`);
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
