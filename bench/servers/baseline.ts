/**
 * The ceiling for an express ingress: a bare express 5 app with the hub's own body handling
 * (`express.raw` on the route, the same body limit) that answers 200 with a small JSON body, and
 * nothing else — no signature check, no database, no queue. Settings as the hub's app
 * (x-powered-by and etag off), as in fastify/benchmarks' express.cjs.
 *
 * Run by bench/run.ts as its own process: `node baseline.js` with PORT set.
 */
import express from 'express';

const app = express();
app.disable('x-powered-by');
app.disable('etag');
app.post('/v1/webhooks/:provider/:merchantId', express.raw({ type: () => true, limit: 256 * 1024 }), (req, res) => {
  const size = Buffer.isBuffer(req.body) ? req.body.length : 0;
  res.status(200).json({ received: true, bytes: size });
});
app.get('/healthz', (_req, res) => {
  res.json({ status: 'ok' });
});

const server = app.listen(Number(process.env.PORT ?? 0), '127.0.0.1');
server.keepAliveTimeout = 65_000;
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
