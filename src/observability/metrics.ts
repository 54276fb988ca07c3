/** Prometheus metrics (prom-client), one registry per hub instance so tests can run several. */
import client from 'prom-client';

export function createMetrics() {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const webhooks = new client.Counter({
    name: 'hub_webhooks_total',
    help: 'Webhook deliveries by provider and outcome',
    labelNames: ['provider', 'outcome'],
    registers: [registry],
  });
  const events = new client.Counter({
    name: 'hub_events_processed_total',
    help: 'Canonical events processed by kind',
    labelNames: ['provider', 'kind'],
    registers: [registry],
  });
  const deliveries = new client.Counter({
    name: 'hub_outbox_attempts_total',
    help: 'Outbox attempts by kind and outcome (done, retry, dead, deferred)',
    labelNames: ['kind', 'outcome'],
    registers: [registry],
  });
  const partnerUpdates = new client.Counter({
    name: 'hub_partner_updates_total',
    help: 'Agency updates by partner, channel and outcome',
    labelNames: ['partner', 'via', 'outcome'],
    registers: [registry],
  });
  const outboxPending = new client.Gauge({
    name: 'hub_outbox_pending',
    help: 'Outbox rows due or waiting, at the last reconcile',
    registers: [registry],
  });
  const httpLatency = new client.Histogram({
    name: 'hub_http_request_duration_seconds',
    help: 'HTTP request latency by route and status',
    labelNames: ['route', 'status'],
    buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const rateLimited = new client.Counter({
    name: 'hub_rate_limited_total',
    help: 'Requests refused with 429 by scope (address, webhook_merchant, webhook_unsigned, api_merchant, partner_push, failed_verification)',
    labelNames: ['scope'],
    registers: [registry],
  });
  const verificationFailures = new client.Counter({
    name: 'hub_verification_failures_total',
    help: 'Webhooks and agency pushes refused because they failed verification (not stored, not charged to the merchant or partner), by endpoint and PSP or partner',
    labelNames: ['endpoint', 'party'],
    registers: [registry],
  });
  return { registry, webhooks, events, deliveries, partnerUpdates, outboxPending, httpLatency, rateLimited, verificationFailures };
}
export type Metrics = ReturnType<typeof createMetrics>;
