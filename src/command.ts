// Finds the program to run the way a shell does (PATH search) so that a missing or
// non-executable command fails with a shell's message and status before anything starts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND, TracedumpError } from './errors';

function isExecutableFile(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function cannotExecute(name: string, reason: string, code: string, file: string): TracedumpError {
  return new TracedumpError(`${name}: ${reason}`, { code, path: file, exitStatus: EXIT_CANNOT_EXECUTE });
}

/** Resolves argv[0] to the file execve() will run. */
export function resolveCommand(name: string, envPath: string | undefined, cwd: string): string {
  if (name === '') throw new TracedumpError('empty command name', { exitStatus: EXIT_NOT_FOUND });
  if (name.includes('/')) {
    const file = path.resolve(cwd, name);
    if (!fs.existsSync(file))
      throw new TracedumpError(`${name}: No such file or directory`, {
        code: 'ENOENT',
        path: file,
        exitStatus: EXIT_NOT_FOUND,
      });
    if (fs.statSync(file).isDirectory()) throw cannotExecute(name, 'Is a directory', 'EISDIR', file);
    if (!isExecutableFile(file)) throw cannotExecute(name, 'Permission denied', 'EACCES', file);
    return file;
  }
  let firstNotExecutable: string | undefined;
  for (const dir of (envPath ?? '/usr/local/bin:/usr/bin:/bin').split(':')) {
    const file = path.resolve(cwd, dir || '.', name);
    if (isExecutableFile(file)) return file;
    if (!firstNotExecutable && fs.existsSync(file) && !fs.statSync(file).isDirectory()) firstNotExecutable = file;
  }
  if (firstNotExecutable) throw cannotExecute(name, 'Permission denied', 'EACCES', firstNotExecutable);
  throw new TracedumpError(`${name}: command not found`, { code: 'ENOENT', exitStatus: EXIT_NOT_FOUND });
}
