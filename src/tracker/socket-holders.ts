// Which processes hold some sockets (by inode): a walk of /proc/PID/fd, stopped once every
// inode is found. Costs a readlink per open fd on the machine: only for rare questions (a
// port of the program that another process shares), never per packet.
import * as fs from 'node:fs';

export interface SocketHolder {
  pid: number;
  comm: string;
  inode: number;
}

export function holdersOf(inodes: readonly number[]): SocketHolder[] {
  const wanted = new Map(inodes.map((i) => [`socket:[${i}]`, i]));
  const out: SocketHolder[] = [];
  let pids: string[];
  try {
    pids = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return out;
  }
  for (const pid of pids) {
    if (wanted.size === 0) break;
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or a kernel thread
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const inode = wanted.get(link);
      if (inode === undefined) continue;
      wanted.delete(link);
      let comm = '';
      try {
        comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      } catch {
        // gone meanwhile
      }
      out.push({ pid: Number(pid), comm, inode });
    }
  }
  return out;
}
