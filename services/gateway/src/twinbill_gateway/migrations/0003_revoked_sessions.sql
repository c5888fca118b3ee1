-- Signed-out sign-in sessions: every token carrying a revoked `sid` is refused until it would
-- have expired anyway (rows past `expires_at` are purged on the next sign-out).
-- depends: 0002_bemserver_groups

CREATE TABLE revoked_sessions (
    session_id text PRIMARY KEY,
    user_id    integer NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz NOT NULL DEFAULT now()
);
