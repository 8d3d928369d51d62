// Destinations: registrable domains through the Public Suffix List, organisations from the
// built-in map (Ghostery's tracker database), through CNAME chains, and the user's own map
// first; its errors name the file, the line and the fix.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { TracedumpError } from '../src/errors';
import { Destinations, readOrganisationFile } from '../src/stats/destinations';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tracedump-orgs-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

t.test('registrable domains and organisations', async (t) => {
  const d = new Destinations();
  t.same(d.of('www.google.com', undefined, '198.18.0.1'), { domain: 'google.com', org: 'Google' }, 'www.google.com: google.com, Google');
  t.same(d.of('a.b.example.co.uk', undefined, '198.18.0.1'), { domain: 'example.co.uk', org: undefined }, 'a public suffix of two labels: example.co.uk');
  t.same(d.of('static.xx.fbcdn.net.', undefined, '198.18.0.1'), { domain: 'fbcdn.net', org: 'Meta' }, 'a trailing dot and a CDN of its own');
  t.same(d.of(undefined, undefined, '198.18.0.9'), { domain: '198.18.0.9', org: undefined }, 'no name: the address');
  t.same(
    d.of('shop.example', ['shop.example', 'shop.example.edgekey.net'], '198.18.0.1'),
    { domain: 'shop.example', org: 'Akamai Technologies' },
    'a name the maps do not know: its CNAME chain names who serves it',
  );
});

t.test("the user's map comes first, as JSON or lines", async (t) => {
  const json = path.join(dir, 'orgs.json');
  fs.writeFileSync(json, JSON.stringify({ 'google.com': 'Alphabet', 'shop.example': 'Shop Inc.' }));
  const d = new Destinations(readOrganisationFile(json));
  t.equal(d.of('www.google.com', undefined, '')?.org, 'Alphabet', 'over the built-in one');
  t.equal(d.of('shop.example', ['shop.example', 'x.edgekey.net'], '')?.org, 'Shop Inc.', 'the name before its CNAMEs');
  const lines = path.join(dir, 'orgs.txt');
  fs.writeFileSync(lines, '# mine\nlab.test   The Lab  # ours\n\ninternal.test Internal Services\n');
  const e = new Destinations(readOrganisationFile(lines));
  t.equal(e.of('api.lab.test', undefined, '')?.org, 'The Lab', 'lines: a domain and every name under it');
  t.equal(e.of('internal.test', undefined, '')?.org, 'Internal Services', 'names with spaces');
});

t.test('a bad map is said with its line and the fix', async (t) => {
  const bad = path.join(dir, 'bad.txt');
  fs.writeFileSync(bad, 'lab.test The Lab\nlonely.test\n');
  let caught: unknown;
  try {
    readOrganisationFile(bad);
  } catch (err) {
    caught = err;
  }
  t.ok(caught instanceof TracedumpError, 'a typed error');
  t.match((caught as TracedumpError).message, /bad\.txt, line 2: "lonely.test" has no organisation/, 'the file, the line, what is wrong');
  t.match((caught as TracedumpError).hint, /lines "domain organisation"/, 'and how to write it');
  const badJson = path.join(dir, 'bad.json');
  fs.writeFileSync(badJson, '{"a.test": 3}');
  t.throws(() => readOrganisationFile(badJson), /"a.test" must map to a name/);
  t.throws(() => readOrganisationFile(path.join(dir, 'missing')), /cannot read the organisation file/);
});
