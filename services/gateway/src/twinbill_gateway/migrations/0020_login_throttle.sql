-- Failed sign-ins per account (lower-cased email) and per client address, counted in a window;
-- reaching the limit locks the account or address until `locked_until` (twinbill_gateway.signin).
-- Shared by every gateway replica, so a lockout holds whichever replica a client reaches.
-- depends: 0003_revoked_sessions

CREATE TABLE login_failures (
    scope        text NOT NULL CHECK (scope IN ('account', 'address')),
    subject      text NOT NULL,
    failures     integer NOT NULL,
    window_start timestamptz NOT NULL,
    locked_until timestamptz,
    PRIMARY KEY (scope, subject)
);
