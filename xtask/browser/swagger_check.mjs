// Drives a real browser (Debian's Chromium, through playwright-core) through a
// running service's Swagger UI, as a person would: open /docs, click
// Authorize, log in with the OAuth2 password flow (asking for the `me` scope
// when the service has scopes), then "Try it out" on GET /users/me. Along the
// way: /docs and /openapi.json carry their security headers, the page shows
// no contact or license the project did not set, and the Content Security
// Policy blocks nothing Swagger UI needs.
//
//   node swagger_check.mjs BASE_URL USERNAME PASSWORD
//
// Prints one line per step; exits 1 on the first failure.
import { chromium } from 'playwright-core';

const [base, username, password] = process.argv.slice(2);
if (!base || !username || !password) {
  console.error('usage: node swagger_check.mjs BASE_URL USERNAME PASSWORD');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';

function step(message) {
  console.log(`PASS  ${message}`);
}

// Without the background-networking flags Chromium tries to reach Google's
// services, which this machine's closed network refuses.
const browser = await chromium.launch({
  executablePath,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let failed = false;
try {
  const page = await browser.newPage();
  const tokenResponses = [];
  const documents = {};
  const violations = [];
  page.on('response', (r) => {
    const path = new URL(r.url()).pathname;
    if (path === '/token') tokenResponses.push(r);
    if (path === '/docs/' || path === '/openapi.json') documents[path] = r;
  });
  page.on('console', (m) => {
    if (m.type() === 'error' && m.text().includes('Content Security Policy')) violations.push(m.text());
  });

  await page.goto(`${base}/docs/`);
  await page.waitForSelector('.swagger-ui .opblock', { timeout: 20000 });
  step('Swagger UI rendered the operations');

  for (const path of ['/docs/', '/openapi.json']) {
    const headers = documents[path]?.headers() ?? {};
    const csp = headers['content-security-policy'] ?? '';
    for (const directive of ["default-src 'none'", "script-src 'self'", "frame-ancestors 'none'"]) {
      if (!csp.includes(directive)) throw new Error(`${path}: Content-Security-Policy lacks ${directive}: "${csp}"`);
    }
    const expected = { 'x-content-type-options': 'nosniff', 'x-frame-options': 'DENY', 'referrer-policy': 'no-referrer' };
    for (const [name, value] of Object.entries(expected)) {
      if (headers[name] !== value) throw new Error(`${path}: ${name} is "${headers[name]}", not "${value}"`);
    }
  }
  step('/docs/ and /openapi.json carry the Content-Security-Policy, nosniff, no-referrer and frame headers');
  // The policy is enforced: a script injected into the page does not run.
  const ran = await page.evaluate(() => {
    const script = document.createElement('script');
    script.textContent = 'window.__injected = true;';
    document.body.appendChild(script);
    return window.__injected === true;
  });
  await page.waitForTimeout(200);
  if (ran || violations.length === 0) throw new Error('an injected inline script was not blocked');
  violations.length = 0;
  step('the Content Security Policy blocks an injected inline script');
  for (const stranger of ['.info__contact', '.info__license']) {
    if ((await page.$(stranger)) !== null) {
      throw new Error(`the page shows ${stranger}: ${(await page.textContent(stranger)).trim()}`);
    }
  }
  step('the page shows no contact or license (the project sets none)');

  await page.click('button.authorize');
  await page.waitForSelector('.modal-ux #oauth_username');
  const tokenUrl = await page.textContent('.modal-ux .auth-container code');
  if (tokenUrl.trim() !== '/token') throw new Error(`the Authorize dialog names token URL ${tokenUrl}`);
  step('the Authorize dialog offers the password flow with tokenUrl /token');

  await page.fill('#oauth_username', username);
  await page.fill('#oauth_password', password);
  const scoped = (await page.$('input[data-value="me"]')) !== null;
  if (scoped) await page.click('label[for="me-password-checkbox-oauth2"]');
  await page.click('.modal-ux .auth-btn-wrapper button.authorize');
  // Swagger UI turns the button into Logout ("Remove authorization") once it holds a token.
  await page.waitForSelector('.modal-ux button[aria-label="Remove authorization"]', { timeout: 15000 });
  const token = tokenResponses.at(-1);
  if (!token || token.status() !== 200) throw new Error(`POST /token answered ${token?.status()}`);
  const grant = await token.json();
  if (scoped && grant.scope !== 'me') throw new Error(`asked for scope "me", got "${grant.scope}"`);
  step(`Authorize logged in through POST /token (200${scoped ? ', scope "me"' : ''})`);
  await page.click('.modal-ux button.close-modal');

  const operation = page.locator('.opblock-get', { has: page.locator('[data-path="/users/me"]') });
  await operation.locator('.opblock-summary').click();
  await operation.locator('button.try-out__btn').click();
  await operation.locator('button.execute').click();
  const status = operation.locator('.live-responses-table tr.response .response-col_status').first();
  await status.waitFor({ timeout: 15000 });
  const code = (await status.textContent()).trim();
  const body = await operation.locator('.live-responses-table tr.response .response-col_description').first().textContent();
  if (code !== '200' || !body.includes(`"username": "${username}"`)) {
    throw new Error(`GET /users/me answered ${code}: ${body.slice(0, 200)}`);
  }
  step('"Try it out" on GET /users/me sent the bearer token and got 200 with the user');
  if (violations.length > 0) throw new Error(`the Content Security Policy blocked: ${violations[0]}`);
  step('the Content Security Policy blocked nothing Swagger UI needed');
} catch (e) {
  failed = true;
  console.log(`FAIL  ${e.message.split('\n')[0]}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
