// Finds the program to run the way a shell does (PATH search) so that a missing or
// non-executable command fails with a shell's message and status before anything starts. The
// name is bytes (a file name need not be UTF-8), and so is the path found.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND, TracedumpError } from '../errors';
import { quoteName } from '../text/quote';

function isExecutableFile(file: Buffer): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function cannotExecute(name: string, reason: string, code: string, file: Buffer): TracedumpError {
  return new TracedumpError(`${name}: ${reason}`, { code, path: file.toString(), exitStatus: EXIT_CANNOT_EXECUTE });
}

const SLASH = 0x2f;

function isDirectory(file: Buffer): boolean {
  try {
    return fs.statSync(file).isDirectory();
  } catch {
    return false;
  }
}

/** dir/name as bytes; dir relative to cwd. */
function join(cwd: string, dir: string, name: Buffer): Buffer {
  return Buffer.concat([Buffer.from(path.resolve(cwd, dir)), Buffer.from('/'), name]);
}

/** Resolves argv[0] to the file execve() will run. */
export function resolveCommand(word: Buffer | string, envPath: string | undefined, cwd: string): Buffer {
  const name = typeof word === 'string' ? Buffer.from(word) : word;
  const shown = quoteName(name.toString('utf8'));
  if (name.length === 0) throw new TracedumpError('empty command name', { exitStatus: EXIT_NOT_FOUND });
  if (name.includes(SLASH)) {
    const file = name[0] === SLASH ? name : join(cwd, '.', name);
    if (!fs.existsSync(file))
      throw new TracedumpError(`${shown}: No such file or directory`, {
        code: 'ENOENT',
        path: file.toString(),
        exitStatus: EXIT_NOT_FOUND,
      });
    if (isDirectory(file)) throw cannotExecute(shown, 'Is a directory', 'EISDIR', file);
    if (!isExecutableFile(file)) throw cannotExecute(shown, 'Permission denied', 'EACCES', file);
    return file;
  }
  let firstNotExecutable: Buffer | undefined;
  for (const dir of (envPath ?? '/usr/local/bin:/usr/bin:/bin').split(':')) {
    const file = join(cwd, dir || '.', name);
    if (isExecutableFile(file)) return file;
    if (!firstNotExecutable && fs.existsSync(file) && !isDirectory(file)) firstNotExecutable = file;
  }
  if (firstNotExecutable) throw cannotExecute(shown, 'Permission denied', 'EACCES', firstNotExecutable);
  throw new TracedumpError(`${shown}: command not found`, { code: 'ENOENT', exitStatus: EXIT_NOT_FOUND });
}
