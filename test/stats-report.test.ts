/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// `tracedump stats --html` opened in headless Chromium (Debian's, driven by playwright-core):
// two applications (crafted captures of plain HTTP/1.1 exchanges of known content types and
// sizes, over several seconds), every chart drawn (each canvas has ink), no error on the
// console, every number of the distributions' table equal to `stats --json`, the flow and
// object tables searchable and sortable, nothing fetched from the network. The screenshot is
// kept in test/artifacts/.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { chromium } from 'playwright-core';
import { A, F, P, S, TcpConversation, type Crafted, writeCraftedPcap } from './helpers/craft-pcap';
import { CLI, ROOT } from './helpers/tracedump';

const CHROMIUM = '/usr/bin/chromium';
const TYPES = ['text/html', 'application/json', 'image/png', 'application/javascript'];

/** n HTTP/1.1 connections, one exchange each, a second apart: sizes from `size(i)`. */
function httpRuns(file: string, n: number, size: (i: number) => number, host: string): void {
  const packets: Crafted[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = i * 1.5;
    const c = new TcpConversation(['10.0.0.2', 30000 + i], ['198.18.0.80', 80]);
    const type = TYPES[i % TYPES.length];
    const body = Buffer.alloc(size(i), 0x61);
    const request = Buffer.from(`GET /obj/${i} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: crafted\r\n\r\n`);
    const response = Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: ${type}\r\nContent-Length: ${body.length}\r\n\r\n`), body]);
    c.send(t0, 'c', S).send(t0 + 0.001, 's', S | A).send(t0 + 0.002, 'c', A).send(t0 + 0.003, 'c', P | A, request);
    for (let at = 0; at < response.length; at += 1400) c.send(t0 + 0.004 + at * 1e-8, 's', P | A, response.subarray(at, at + 1400));
    c.send(t0 + 0.1, 'c', F | A).send(t0 + 0.101, 's', F | A).send(t0 + 0.102, 'c', A);
    packets.push(...c.packets);
  }
  writeCraftedPcap(file, packets);
}

const hasChromium = fs.existsSync(CHROMIUM);
t.test('the report renders every chart, and its numbers are those of stats --json', { skip: !hasChromium && !process.env.CI ? `${CHROMIUM} is not installed (apt-get install chromium)` : false }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tracedump-report-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const runs = path.join(dir, 'runs');
  fs.mkdirSync(runs);
  httpRuns(path.join(runs, 'shop.pcap'), 24, (i) => 200 + ((i * 7919) % 30000), 'www.google.com');
  httpRuns(path.join(runs, 'news.pcap'), 16, (i) => 5000 + ((i * 104729) % 200000), 'cdn.example.co.uk');
  const html = path.join(dir, 'report.html');
  const r = spawnSync(CLI, ['stats', '--html', html, '--json', runs], { encoding: 'utf8' });
  t.equal(r.status, 0, `stats --html exits 0 (${r.stderr})`);
  const rows = r.stdout
    .split('\n')
    .filter((l) => l)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  t.ok(rows.some((x) => x.metric === 'object_size[image/png]'), 'tshark found the objects (the page has them to draw)');

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  const requests: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('request', (q) => {
    if (!q.url().startsWith('file:')) requests.push(q.url());
  });
  await page.goto(`file://${html}`);
  await page.waitForSelector('body[data-rendered=yes]', { timeout: 15_000 });
  t.same(errors, [], 'no error on the console');
  t.same(requests, [], 'nothing fetched: the page is self-contained');

  const ink = await page.evaluate(() =>
    [...document.querySelectorAll('canvas')].map((c) => {
      const d = (c.getContext('2d') as CanvasRenderingContext2D).getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
      return { id: c.id, share: n / (c.width * c.height) };
    }),
  );
  t.equal(ink.length, 7, 'seven charts');
  for (const c of ink) t.ok(c.share > 0.02, `${c.id} is drawn (${(c.share * 100).toFixed(1)} % of its pixels)`);

  // the distributions' table: every row and number of stats --json
  const cells = await page.evaluate(() =>
    [...document.querySelectorAll('#summary tbody tr')].map((tr) => ({
      app: (tr as HTMLElement).dataset.app,
      metric: (tr as HTMLElement).dataset.metric,
      values: Object.fromEntries([...tr.querySelectorAll('td[data-field]')].map((td) => [(td as HTMLElement).dataset.field, Number((td as HTMLElement).dataset.value)])),
    })),
  );
  t.equal(cells.length, rows.length, `a table row for each of the ${rows.length} rows of stats --json`);
  const mismatched = rows.filter((row) => {
    const c = cells.find((x) => x.app === row.app && x.metric === row.metric);
    return !c || ['count', 'mean', 'min', 'p5', 'p25', 'p50', 'p75', 'p95', 'p99', 'max'].some((f) => c.values[f] !== row[f]);
  });
  t.same(
    mismatched.map((x) => `${x.app} ${x.metric}`),
    [],
    'every number in the page equals stats --json',
  );
  const flowsShown = await page.evaluate(() => [...document.querySelectorAll('.card')].map((c) => [(c as HTMLElement).dataset.app, Number(c.querySelector('[data-field=flows]')?.textContent)]));
  t.same(Object.fromEntries(flowsShown), { news: 16, shop: 24 }, 'each application with its flows');

  // the tables: search and sort
  t.equal(await page.locator('#objects tbody tr').count(), 40, 'the objects table: all 40');
  await page.fill('#search-objects', 'image/png');
  t.equal(await page.locator('#objects tbody tr').count(), 10, 'searching image/png leaves its 10 objects');
  await page.fill('#search-objects', '');
  await page.click('#objects th[data-col=resp_body_bytes]');
  const sizes = await page.$$eval('#objects tbody tr', (trs) => trs.map((tr) => Number((tr.children[10] as HTMLElement).textContent)));
  t.same(
    sizes,
    [...sizes].sort((a, b) => a - b),
    'a click on a column sorts by it',
  );
  t.ok(await page.locator('#flows tbody tr').count() === 40 && ((await page.textContent('#flows')) ?? '').includes('Google'), 'the flows table names the organisation (www.google.com: Google)');

  const artifacts = path.join(ROOT, 'test', 'artifacts');
  fs.mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: path.join(artifacts, 'stats-report.png'), fullPage: true });
  t.ok(fs.statSync(path.join(artifacts, 'stats-report.png')).size > 10_000, 'the screenshot is kept in test/artifacts/stats-report.png');
});
