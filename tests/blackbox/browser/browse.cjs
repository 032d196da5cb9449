// Drives Debian's chromium through playwright-core (tests/blackbox/browser.rs starts the server and
// runs this). From the home page it follows links down to a file, downloads it, saves
// screenshots, and fails on any console error or any link answering 4xx/5xx.
//
// Env: ARBOR_BASE (server URL), ARBOR_SHOTS (screenshot dir), ARBOR_PROFILE (empty dir for
// --user-data-dir), PLAYWRIGHT_CORE (the module dir), CHROMIUM (executable).
'use strict';
const { chromium } = require(process.env.PLAYWRIGHT_CORE);
const fs = require('fs');
const path = require('path');

const base = process.env.ARBOR_BASE;
const shots = process.env.ARBOR_SHOTS;
const problems = [];

async function main() {
  fs.mkdirSync(shots, { recursive: true });
  const context = await chromium.launchPersistentContext(process.env.ARBOR_PROFILE, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1100, height: 800 },
    // The machine has no outside network: keep chromium from trying to reach it.
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = context.pages()[0] || await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`${r.status()} ${r.url()}`); });

  const checked = new Set();
  // Every same-origin link of the current page must answer below 400.
  async function checkLinks() {
    const hrefs = await page.$$eval('a[href]', (as) => as.map((a) => a.href));
    for (const href of hrefs) {
      if (!href.startsWith(base) || checked.has(href)) continue;
      checked.add(href);
      const r = await context.request.get(href, { headers: { Accept: 'text/html' }, maxRedirects: 5 });
      if (r.status() >= 400) problems.push(`broken link ${r.status()} ${href} on ${page.url()}`);
    }
  }
  async function step(linkText, shot) {
    await Promise.all([page.waitForLoadState('load'), page.getByRole('link', { name: linkText, exact: true }).first().click()]);
    await page.waitForLoadState('load');
    await checkLinks();
    if (shot) await page.screenshot({ path: path.join(shots, shot), fullPage: true });
  }

  await page.goto(base + '/');
  await checkLinks();
  await page.screenshot({ path: path.join(shots, 'home.png'), fullPage: true });
  await step('Branches');
  await step('main', 'branch.png');
  await step('1.10');
  await step('job1', 'job.png');
  await step('fmt', 'autoindex.png');
  await step('dir/');

  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: 'a b.txt' }).click(),
  ]);
  const saved = path.join(shots, '..', 'download-' + download.suggestedFilename());
  await download.saveAs(saved);
  const content = fs.readFileSync(saved, 'utf8');
  if (content !== 'hello from arbor\n') problems.push(`downloaded ${JSON.stringify(content)}`);

  // The products tree, and the branch page again at phone width.
  await page.goto(base + '/products/foo/x86/1/');
  await checkLinks();
  await step('1.10', 'version.png');
  await page.goto(base + '/products/foo/x86/1/');
  if (await page.title() !== 'foo x86, branch 1 — dlrepo') problems.push(`product branch title ${await page.title()}`);
  await page.screenshot({ path: path.join(shots, 'product-branch.png'), fullPage: true });
  // The job page: the metadata keys take what they need, not most of the width.
  await page.goto(base + '/branches/main/1.10/job1/');
  const keyShare = await page.$eval('table.metadata', (t) => t.querySelector('th').offsetWidth / t.offsetWidth);
  if (keyShare > 0.3) problems.push(`metadata keys take ${Math.round(keyShare * 100)}% of the width`);
  // The tag page links each job's product version.
  await page.goto(base + '/branches/main/1.10/');
  await page.screenshot({ path: path.join(shots, 'tag.png'), fullPage: true });
  await step('foo-x86-v1.10');

  // Phone width: no page scrolls sideways, and file names break only after . - _ +.
  await page.setViewportSize({ width: 390, height: 844 });
  const phone = [['branch-phone', '/branches/main/'], ['tag-phone', '/branches/main/1.10/'],
    ['job-phone', '/branches/main/1.10/job1/'], ['autoindex-phone', '/branches/main/1.10/job1/fmt/'],
    ['product-branch-phone', '/products/foo/x86/1/']];
  // Where a file name wraps, the character before the break is a separator.
  async function midWordBreaks() {
    return page.evaluate(() => {
      const bad = [];
      for (const a of document.querySelectorAll('table.files tbody th a')) {
        const text = a.textContent;
        const range = document.createRange();
        let top = null;
        let at = 0;
        for (const node of a.childNodes) {
          if (node.nodeType !== Node.TEXT_NODE) continue;
          for (let i = 0; i < node.length; i++, at++) {
            range.setStart(node, i);
            range.setEnd(node, i + 1);
            const t = range.getBoundingClientRect().top;
            if (top !== null && t > top + 2 && !'.-_+/'.includes(text[at - 1])) bad.push(`${text} at ${at}`);
            top = t;
          }
        }
      }
      return bad;
    });
  }
  for (const [shot, url] of phone) {
    await page.goto(base + url);
    await page.screenshot({ path: path.join(shots, `${shot}.png`), fullPage: true });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
    if (overflow) problems.push(`${url} scrolls sideways at phone width`);
    for (const b of await midWordBreaks()) problems.push(`file name broken mid-word at phone width: ${b}`);
  }

  await context.close();
  console.log(`checked ${checked.size} links`);
  if (problems.length) {
    console.error(problems.join('\n'));
    process.exit(1);
  }
}

main().catch((e) => { console.error(e); process.exit(2); });
