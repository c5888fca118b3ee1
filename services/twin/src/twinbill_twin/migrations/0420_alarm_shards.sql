-- Which twin replica evaluates which alarm shard (twin.alarms.{n}): a lease per shard, renewed by
-- its holder, and the replicas alive, so each holds its share and a dead one's shards are taken
-- over when its leases expire. The queues' single active consumer keeps a shard to one replica
-- even while two believe they hold it; the leases only spread the shards.
-- depends: 0403_command_outcomes

CREATE TABLE alarm_shard_members (
    member   text PRIMARY KEY,
    seen_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE alarm_shard_leases (
    shard       integer PRIMARY KEY CHECK (shard >= 0),
    member      text,
    expires_at  timestamptz NOT NULL DEFAULT '-infinity'
);
