// The environment tracedump was started with. bin/tracedump moves the variables that would
// configure tracedump's own Node (NODE_*, UV_*, OPENSSL_CONF...) aside as TRACEDUMP_CALLER_<name>,
// so that they cannot reach a process running as root; the traced command gets them back here,
// exactly as given.
const PREFIX = 'TRACEDUMP_CALLER_';

function restore(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) if (!k.startsWith(PREFIX)) out[k] = v;
  for (const [k, v] of Object.entries(env)) if (k.startsWith(PREFIX) && k.length > PREFIX.length) out[k.slice(PREFIX.length)] = v;
  return out;
}

let caller: NodeJS.ProcessEnv | undefined;

/** The caller's environment, as the command must see it; tracedump's own process.env keeps them aside. */
export function callerEnv(): NodeJS.ProcessEnv {
  caller ??= restore(process.env);
  return caller;
}
