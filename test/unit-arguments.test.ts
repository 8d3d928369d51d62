// Flag values are validated once for every command: the capture and `read` refuse the same
// values of the same flags with the same words (cli/arguments.ts).
import t from 'tap';
import { InvalidArgumentError } from 'commander';
import { MAX_PID, integer, pidList, seconds } from '../src/cli/arguments';
import { runCli } from './helpers/tracedump';

t.test('pid lists', async (t) => {
  t.same(pidList('1,42', undefined), [1, 42]);
  t.same(pidList('42', [1, 42]), [1, 42], 'repeated and kept once');
  t.same(pidList(String(MAX_PID), undefined), [MAX_PID], 'the largest pid Linux gives');
  for (const bad of ['0', '-1', 'x', '', '1.5', String(MAX_PID + 1)])
    t.throws(() => pidList(bad, undefined), InvalidArgumentError, `'${bad}' refused`);
});

t.test('numbers', async (t) => {
  t.equal(integer('count', 1)('3'), 3);
  t.throws(() => integer('count', 1)('0'), /count must be a whole number of at least 1/);
  t.throws(() => integer('file count', 1, 10)('11'), /file count must be a whole number from 1 to 10/);
  t.equal(seconds('linger')('0.5'), 0.5);
  t.throws(() => seconds('linger')('-1'), /linger must be a number of seconds/);
});

t.test('the capture and read refuse a pid the same way', async (t) => {
  const capture = await runCli(['-p', '0']);
  const read = await runCli(['read', '--pid', '0', 'x.pcapng']);
  const reason = (s: string) => /is invalid\. (.*)$/m.exec(s)?.[1];
  t.equal(capture.status, 125, `the capture exits 125, its usage status (${capture.stderr.trim()})`);
  t.equal(read.status, 2, `read exits 2 (${read.stderr.trim()})`);
  t.equal(reason(read.stderr), reason(capture.stderr), 'in the same words');
  t.equal(reason(read.stderr), "'0' is not a process id (1 to 4194304)");
});
