// An address and port as text: a.b.c.d:port, or [v6]:port.

export function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
