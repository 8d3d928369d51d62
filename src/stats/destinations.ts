// Who a server belongs to: its registrable domain (the Public Suffix List, through tldts) and
// its organisation, from Ghostery's tracker database (@ghostery/trackerdb: 5,000 domains of
// 2,600 organisations, CC BY-NC-SA 4.0) and a file of the user's own that comes first. A name
// the maps do not know is tried through its CNAME chain (a CDN's name says who serves it).
import fs from 'node:fs';
import path from 'node:path';
import { getDomain } from 'tldts';
import { TracedumpError } from '../errors';

export interface Destination {
  /** The registrable domain (example.co.uk), or the address when there is no name. */
  domain: string;
  /** The organisation, when a map knows the name or one of its CNAMEs. */
  org: string | undefined;
}

/** Domain -> organisation, from Ghostery's tracker database. */
function trackerDbOrganisations(): Map<string, string> {
  const main = require.resolve('@ghostery/trackerdb'); // .../dist/cjs/index.js
  const file = path.join(path.dirname(main), '..', 'trackerdb.json');
  const db = JSON.parse(fs.readFileSync(file, 'utf8')) as {
    organizations: Record<string, { name: string }>;
    patterns: Record<string, { organization: string | null }>;
    domains: Record<string, string>;
  };
  const out = new Map<string, string>();
  for (const [domain, pattern] of Object.entries(db.domains)) {
    const org = db.patterns[pattern]?.organization;
    const name = org ? db.organizations[org]?.name : undefined;
    if (name) out.set(domain.toLowerCase(), name);
  }
  return out;
}

/**
 * The user's own map: JSON ({"example.com": "Example Inc."}) or lines "example.com Example Inc."
 * ('#' starts a comment). A name matches a domain and every name under it.
 */
export function readOrganisationFile(file: string): Map<string, string> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new TracedumpError(`cannot read the organisation file ${file}: ${(err as Error).message}`, { code: 'EUSAGE', path: file });
  }
  const out = new Map<string, string>();
  if (text.trimStart().startsWith('{')) {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new TracedumpError(`the organisation file ${file} is not valid JSON: ${(err as Error).message}`, {
        code: 'EUSAGE',
        path: file,
        hint: 'write an object of domain: organisation pairs, or lines "domain organisation"',
      });
    }
    for (const [d, o] of Object.entries(json as Record<string, unknown>)) {
      if (typeof o !== 'string') throw new TracedumpError(`the organisation file ${file}: "${d}" must map to a name (a string)`, { code: 'EUSAGE', path: file });
      out.set(d.toLowerCase().replace(/\.$/, ''), o);
    }
    return out;
  }
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) return;
    const m = /^(\S+)\s+(.+)$/.exec(line);
    if (!m) throw new TracedumpError(`the organisation file ${file}, line ${i + 1}: "${line}" has no organisation after the domain`, { code: 'EUSAGE', path: file, hint: 'write lines "domain organisation", e.g. "example.com Example Inc."' });
    out.set(m[1].toLowerCase().replace(/\.$/, ''), m[2].trim());
  });
  return out;
}

export class Destinations {
  private readonly builtin: Map<string, string>;

  constructor(private readonly user: Map<string, string> = new Map()) {
    this.builtin = trackerDbOrganisations();
  }

  /** The server of a flow: its name (with its CNAME chain) or, without one, its address. */
  of(serverName: string | undefined, chain: string[] | undefined, address: string): Destination {
    if (!serverName) return { domain: address, org: undefined };
    const name = serverName.toLowerCase().replace(/\.$/, '');
    const domain = getDomain(name, { allowPrivateDomains: false }) ?? name;
    let org = this.orgOf(name);
    for (const c of chain ?? []) org ??= this.orgOf(c.toLowerCase());
    return { domain, org };
  }

  /** The organisation of a name: the user's map first, then the built-in one; the longest suffix that matches. */
  private orgOf(name: string): string | undefined {
    for (const map of [this.user, this.builtin]) {
      for (let n: string | undefined = name; n; n = n.includes('.') ? n.slice(n.indexOf('.') + 1) : undefined) {
        const org = map.get(n);
        if (org) return org;
      }
    }
    return undefined;
  }
}
