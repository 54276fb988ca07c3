-- Hub signing keys can be rotated (issue 13, item 4): a replaced key keeps being published in the
-- JWKS until retire_at, so tokens signed just before the rotation, and agencies that cached the key
-- set, still verify. NULL: the current key. private_pem may hold an AES-256-GCM sealed key
-- (`enc:v1:…`, src/auth/key-store.ts) when hub.keyEncryptionKey is set.
ALTER TABLE hub_keys ADD COLUMN retire_at timestamptz;
