-- Partner push tokens are single-use (issue 13, item 4): the id (jti) of every verified push token
-- is kept until the token expires, and a second push with the same token is refused as a replay.
CREATE TABLE partner_push_tokens (
  partner_id  text NOT NULL,
  jti         text NOT NULL,
  expires_at  timestamptz NOT NULL,
  PRIMARY KEY (partner_id, jti)
);
CREATE INDEX partner_push_tokens_expiry ON partner_push_tokens (expires_at);
