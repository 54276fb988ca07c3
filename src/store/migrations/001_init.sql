-- collection-hub schema, one dialect for PGlite and PostgreSQL.
-- The database is the system of record; the queue only carries outbox ids (design.md).

-- Every webhook as received, committed before the hub answers 2xx.
CREATE TABLE inbound_events (
  id                bigserial PRIMARY KEY,
  merchant_id       text NOT NULL,
  provider          text NOT NULL,
  provider_event_id text NOT NULL,
  event_type        text NOT NULL,
  occurred_at       timestamptz,
  received_at       timestamptz NOT NULL DEFAULT now(),
  payload           jsonb NOT NULL,
  -- received | processed | ignored | failed
  status            text NOT NULL DEFAULT 'received',
  kind              text,
  error             text,
  processed_at      timestamptz,
  deliveries        integer NOT NULL DEFAULT 1,
  UNIQUE (merchant_id, provider, provider_event_id)
);

CREATE TABLE customers (
  id               text PRIMARY KEY,
  merchant_id      text NOT NULL,
  provider         text NOT NULL,
  provider_ref     text NOT NULL,
  name             text,
  email            text,
  phone            text,
  address          jsonb,
  country          text,
  locale           text,
  type             text NOT NULL DEFAULT 'consumer',
  mandate_status   text,
  subscription_status text,
  last_failure_code   text,
  last_failure_reason text,
  last_failure_at     timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  UNIQUE (merchant_id, provider, provider_ref)
);

CREATE TABLE invoices (
  id               text PRIMARY KEY,
  merchant_id      text NOT NULL,
  customer_id      text NOT NULL REFERENCES customers(id),
  provider         text NOT NULL,
  provider_ref     text NOT NULL,
  number           text,
  currency         text NOT NULL,
  amount_due       bigint NOT NULL,
  amount_paid      bigint NOT NULL DEFAULT 0,
  amount_collected bigint NOT NULL DEFAULT 0,
  issued_at        timestamptz,
  due_at           timestamptz,
  subscription_ref text,
  description      text,
  -- open | recovered | voided | pending_handover | submitted | in_collection | arrangement | ...
  status           text NOT NULL DEFAULT 'open',
  resolution       text,
  resolved_by      text,
  failure_code     text,
  failure_reason   text,
  failure_message  text,
  failure_retryable boolean,
  failure_final    boolean NOT NULL DEFAULT false,
  failure_count    integer NOT NULL DEFAULT 0,
  first_failed_at  timestamptz,
  last_failed_at   timestamptz,
  handover_due_at  timestamptz,
  payment_method   text,
  arrangement      jsonb,
  case_id          text,
  -- the newest PSP event applied (ordering by occurredAt, contract §3)
  last_event_at    timestamptz,
  -- the newest partner update applied (occurredAt, then seq: contract §4)
  last_update_at   timestamptz,
  last_update_seq  bigint,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  UNIQUE (merchant_id, provider, provider_ref)
);
CREATE INDEX invoices_customer ON invoices (customer_id);
CREATE INDEX invoices_handover ON invoices (merchant_id, status, handover_due_at);

-- PSP payment ids (charge, payment intent…) → invoice, to place disputes and refunds.
CREATE TABLE invoice_payment_refs (
  merchant_id  text NOT NULL,
  provider     text NOT NULL,
  payment_ref  text NOT NULL,
  invoice_id   text NOT NULL REFERENCES invoices(id),
  PRIMARY KEY (merchant_id, provider, payment_ref)
);

CREATE TABLE cases (
  id               text PRIMARY KEY,
  merchant_id      text NOT NULL,
  customer_id      text NOT NULL REFERENCES customers(id),
  partner_id       text NOT NULL,
  partner_ref      text,
  status           text NOT NULL,
  resolution       text,
  currency         text NOT NULL,
  opened_at        timestamptz NOT NULL DEFAULT now(),
  submitted_at     timestamptz,
  closed_at        timestamptz,
  last_claim_at    timestamptz NOT NULL DEFAULT now(),
  last_update_at   timestamptz,
  last_update_seq  bigint,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cases_customer ON cases (customer_id);
CREATE INDEX cases_merchant ON cases (merchant_id, status);
CREATE UNIQUE INDEX cases_partner_ref ON cases (partner_id, partner_ref) WHERE partner_ref IS NOT NULL;

CREATE TABLE claims (
  id               text PRIMARY KEY,
  case_id          text NOT NULL REFERENCES cases(id),
  invoice_id       text NOT NULL REFERENCES invoices(id),
  merchant_id      text NOT NULL,
  principal        bigint NOT NULL,
  currency         text NOT NULL,
  status           text NOT NULL,
  resolution       text,
  amount_collected bigint NOT NULL DEFAULT 0,
  arrangement      jsonb,
  -- set when the agency has the claim (in the case submission or added later)
  sent_at          timestamptz,
  last_update_at   timestamptz,
  last_update_seq  bigint,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);
-- An invoice is in at most one live claim: nothing collected twice.
CREATE UNIQUE INDEX claims_one_live_per_invoice ON claims (invoice_id) WHERE status NOT IN ('withdrawn', 'closed');
CREATE INDEX claims_case ON claims (case_id);

-- Every status an invoice, claim, case or customer went through, with the source: the timelines.
CREATE TABLE status_history (
  id           bigserial PRIMARY KEY,
  merchant_id  text NOT NULL,
  entity       text NOT NULL,
  entity_id    text NOT NULL,
  status       text NOT NULL,
  reason       text,
  source       text NOT NULL,
  detail       jsonb,
  occurred_at  timestamptz NOT NULL,
  recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX status_history_entity ON status_history (entity, entity_id, occurred_at);

-- Work the hub owes: process an event, call a partner, apply an update. Written in the same
-- transaction as the state change that caused it; the queue carries only these ids.
CREATE TABLE outbox (
  id               bigserial PRIMARY KEY,
  merchant_id      text,
  kind             text NOT NULL,
  -- which queue: 'hub' for internal stages, 'partner.<id>' for calls to one partner
  lane             text NOT NULL,
  payload          jsonb NOT NULL,
  idempotency_key  text NOT NULL UNIQUE,
  -- pending | in_flight | done | dead | cancelled
  status           text NOT NULL DEFAULT 'pending',
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  locked_until     timestamptz,
  last_error       text,
  last_status      integer,
  last_response    jsonb,
  customer_id      text,
  invoice_id       text,
  case_id          text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  done_at          timestamptz
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);

-- Agency updates as received (push or pull), applied exactly once by id.
CREATE TABLE partner_updates (
  id           bigserial PRIMARY KEY,
  partner_id   text NOT NULL,
  update_id    text NOT NULL,
  via          text NOT NULL,
  payload      jsonb NOT NULL,
  -- received | applied | stale | failed
  status       text NOT NULL DEFAULT 'received',
  error        text,
  received_at  timestamptz NOT NULL DEFAULT now(),
  applied_at   timestamptz,
  UNIQUE (partner_id, update_id)
);

CREATE TABLE partner_cursors (
  partner_id   text PRIMARY KEY,
  cursor       text,
  pulled_at    timestamptz,
  updated_at   timestamptz NOT NULL DEFAULT now()
);

-- The sync log: every inbound and outbound exchange with its outcome.
CREATE TABLE exchanges (
  id               bigserial PRIMARY KEY,
  merchant_id      text,
  direction        text NOT NULL,
  party            text NOT NULL,
  operation        text NOT NULL,
  outcome          text NOT NULL,
  http_status      integer,
  latency_ms       integer,
  customer_id      text,
  invoice_id       text,
  case_id          text,
  outbox_id        bigint,
  inbound_event_id bigint,
  summary          text,
  request          jsonb,
  response         jsonb,
  created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX exchanges_merchant ON exchanges (merchant_id, id DESC);
CREATE INDEX exchanges_invoice ON exchanges (invoice_id);
CREATE INDEX exchanges_customer ON exchanges (customer_id);

-- The hub's own signing keys for RS256/ES256 partner calls, shared by all processes.
CREATE TABLE hub_keys (
  kid          text PRIMARY KEY,
  alg          text NOT NULL,
  private_pem  text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now()
);
