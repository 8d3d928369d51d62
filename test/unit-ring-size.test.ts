// The default capture ring: a 64th of the memory in whole 4 MiB blocks, 64 MiB to 1 GiB.
import t from 'tap';
import { defaultRingKiB } from '../src/capture/ring-size';

const GiB = 2 ** 30;

t.equal(defaultRingKiB(2 * GiB), 64 * 1024, '2 GiB: the 64 MiB floor');
t.equal(defaultRingKiB(8 * GiB), 128 * 1024, '8 GiB: 128 MiB');
t.equal(defaultRingKiB(25_276_182_528), 376 * 1024, '24 GB (these machines): 376 MiB, whole 4 MiB blocks');
t.equal(defaultRingKiB(1024 * GiB), 1024 * 1024, '1 TiB: the 1 GiB ceiling');
t.ok(defaultRingKiB() >= 64 * 1024 && defaultRingKiB() <= 1024 * 1024, `this machine: ${defaultRingKiB()} KiB`);
