-- At most one enabled billing task per project and device type: two would bill the same meters
-- twice (issue #11). Tasks carry no water-meter kind (seed 000), so a water task covers both kinds.
-- Existing duplicates keep the oldest enabled task and are disabled (next_fire_at cleared).
-- depends: 0002_replica_heartbeats

UPDATE tasks t SET enabled = false, next_fire_at = NULL
WHERE t.enabled AND EXISTS (
    SELECT 1 FROM tasks o
    WHERE o.enabled AND o.project_id = t.project_id AND o.device_type = t.device_type
      AND (o.create_time, o.seq) < (t.create_time, t.seq));

CREATE UNIQUE INDEX tasks_one_enabled ON tasks (project_id, device_type) WHERE enabled;
