// The Prometheus endpoint: a tiny HTTP server answering GET /metrics with the text exposition of the
// current StatsSnapshot. Started by main.ts only when `metrics-listen` is set. It serves nothing else
// (404), answers only clients in `metrics-allow` (403 otherwise) and never blocks DNS or policy work:
// a scrape only reads counters.
import http from 'node:http';
import type { CidrSet } from '../util/cidr.js';
import { describeError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { PROMETHEUS_CONTENT_TYPE } from './prometheus-text.js';

/**
 * Open connections at once; more are closed as they come. Scrapers keep one connection each. Without
 * a cap, connections that never send a request each hold a file descriptor until the headers
 * timeout, and enough of them leave DNS and the policy service without any.
 */
export const METRICS_MAX_CONNECTIONS = 32;
/** How often Node checks the headers and request timeouts (its default, 30 s, keeps idle connections that long). */
const TIMEOUT_CHECK_MS = 1000;

export interface MetricsServerOptions {
  address: string;
  port: number;
  /** Clients allowed to scrape. */
  allow: CidrSet;
  /** Builds the exposition text (collectStats + renderPrometheus). */
  render: () => Promise<string>;
  logger: Logger;
}

/** Serves GET /metrics (and HEAD); everything else is 404 or 405. */
export class MetricsServer {
  private server: http.Server | null = null;
  private allow: CidrSet;
  private dropped = 0;
  /** Connections with a response not yet finished. */
  private readonly answering = new WeakSet<object>();

  constructor(private readonly opts: MetricsServerOptions) {
    this.allow = opts.allow;
  }

  /** SIGHUP reload of the client list. */
  setAllow(allow: CidrSet): void {
    this.allow = allow;
  }

  /** Binds; throws on a busy port or an address not on this host. */
  async listen(): Promise<{ address: string; port: number }> {
    const server = http.createServer({ connectionsCheckingInterval: TIMEOUT_CHECK_MS }, (req, res) => this.handle(req, res));
    server.maxConnections = METRICS_MAX_CONNECTIONS;
    server.on('drop', (data?: { remoteAddress?: string }) => {
      // The first refusal and then every 100th, so a connection flood cannot flood the log.
      if (this.dropped++ % 100 === 0) {
        this.opts.logger.warn({ client: data?.remoteAddress, max: METRICS_MAX_CONNECTIONS, refusedTotal: this.dropped }, 'metrics connection refused: too many connections');
      }
    });
    // Scrapers keep connections open; do not let an idle one hold the process at shutdown.
    server.keepAliveTimeout = 5000;
    server.headersTimeout = 10_000;
    server.requestTimeout = 10_000;
    await new Promise<void>((done, fail) => {
      server.once('error', fail);
      server.listen({ host: this.opts.address, port: this.opts.port, exclusive: true }, () => {
        server.off('error', fail);
        done();
      });
    });
    server.on('error', (err) => this.opts.logger.error({ err: describeError(err) }, 'metrics server error'));
    this.server = server;
    const a = server.address();
    const bound = a !== null && typeof a === 'object' ? { address: a.address, port: a.port } : { address: this.opts.address, port: this.opts.port };
    this.opts.logger.info(bound, 'metrics endpoint listening');
    return bound;
  }

  /** Stops listening and closes every connection, idle or not. */
  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    const closed = new Promise<void>((done) => server.close(() => done()));
    server.closeAllConnections();
    await closed;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    // HTTP pipelining (a request before the previous response is done; scrapers never do it): Node
    // parses a whole read of requests at once, and each would render and hold an exposition for a
    // client that may never read them. Close such a connection.
    const socket = req.socket;
    if (this.answering.has(socket)) {
      socket.destroy();
      return;
    }
    this.answering.add(socket);
    res.once('close', () => this.answering.delete(socket));
    const remote = (req.socket.remoteAddress ?? '').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
    if (!this.allow.has(remote)) {
      res.writeHead(403, { 'content-type': 'text/plain' }).end('forbidden\n');
      return;
    }
    const path = (req.url ?? '').split('?', 1)[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    this.opts.render().then(
      (text) => {
        res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE, 'content-length': Buffer.byteLength(text) });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: unknown) => {
        this.opts.logger.error({ err: describeError(err) }, 'metrics rendering failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable; see the log\n');
      },
    );
  }
}
