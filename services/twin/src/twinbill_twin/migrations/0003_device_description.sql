-- A device's description, shown as its instance's `desp` (seed 002).
-- depends: 0002_site_hierarchy

ALTER TABLE devices ADD COLUMN description text NOT NULL DEFAULT '';
