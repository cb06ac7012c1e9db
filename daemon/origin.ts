/**
 * The browser-origin rule of a daemon without a token. Browsers send the page's origin with every websocket
 * upgrade, and a web page must not drive a local daemon. Some non-browser clients send an Origin too: Python's
 * websocket-client sends `http://<host>:<port>` of the URL it connects to. That origin — the daemon's own
 * address — is allowed, because no page is ever served there (the daemon answers plain HTTP with 426), so no
 * script can run with it; every other origin is refused with a 403 that says how to connect.
 */

/** Names a loopback daemon is reached by. */
const LOOPBACK_NAMES = ['127.0.0.1', 'localhost', '[::1]'];

function ownHosts(host: string): string[] {
  const bracketed = host.includes(':') ? `[${host}]` : host;
  const loopback = LOOPBACK_NAMES.includes(bracketed) || host === '::1';
  return loopback ? LOOPBACK_NAMES : [bracketed];
}

/** True when `origin` is the daemon's own address: http(s), one of its host names, its port. */
export function originAllowed(origin: string, host: string, port: number): boolean {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  const urlPort = url.port === '' ? (url.protocol === 'http:' ? 80 : 443) : Number(url.port);
  return urlPort === port && ownHosts(host).includes(url.hostname.toLowerCase()) && url.pathname === '/';
}

/** The body of the 403: what was refused and how to connect instead. */
export function originRefusal(origin: string, host: string, port: number): string {
  const own = `http://${ownHosts(host)[0]}:${port}`;
  return (
    `vidprior daemon: refused a websocket from origin ${JSON.stringify(origin.slice(0, 200))}. A web page may not ` +
    `drive a daemon started without a token. To connect: use a client that sends no Origin header, or sends the ` +
    `daemon's own address (${own}); or start the daemon with --token and send the token in hello.token.\n`
  );
}
