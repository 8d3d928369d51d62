// Names (files, commands) as they are printed in messages: as given when they are plain, else
// quoted the way a shell reads them back ($'...'), so a newline or an escape sequence in a name
// can neither split a message line nor drive the terminal.

/** Control characters (C0, DEL, C1), and U+FFFD, which stands for bytes that were not UTF-8. */
const UNPRINTABLE = /[\x00-\x1f\x7f-\x9f\ufffd]/;

export function quoteName(name: string): string {
  if (!UNPRINTABLE.test(name)) return name;
  let out = "$'";
  for (const ch of name) {
    const c = ch.codePointAt(0)!;
    if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\\') out += '\\\\';
    else if (ch === "'") out += "\\'";
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else if (c >= 0x80 && c <= 0x9f) out += `\\u00${c.toString(16)}`;
    else if (c === 0xfffd) out += '\\uFFFD';
    else out += ch;
  }
  return out + "'";
}

/** Control characters as '?', for columns (a comm or a command line can hold any byte but NUL): a line stays one line. */
export function printable(s: string): string {
  return /[\x00-\x1f\x7f]/.test(s) ? s.replace(/[\x00-\x1f\x7f]/g, '?') : s;
}
