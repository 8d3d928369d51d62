// `tracedump completion bash`: the bash completion script (also shipped as
// completion/tracedump.bash, which this prints).
import * as fs from 'node:fs';
import * as path from 'node:path';

export function bashCompletion(): string {
  return fs.readFileSync(path.join(__dirname, '..', '..', 'completion', 'tracedump.bash'), 'utf8');
}
