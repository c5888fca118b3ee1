"""`python -m twinbill_twin.reseal`: re-seal every stored device secret under the current key.

Rotation (secretbox.py): move the current key into TWIN_DEVICE_SECRET_OLD_KEYS as `<id>:<key>`,
set a new TWIN_DEVICE_SECRET_KEY and TWIN_DEVICE_SECRET_KEY_ID, restart the twin replicas (they
seal new secrets with the new key and still open the old ones), then run this once with the same
settings; when it reports 0 left under other keys, drop the old key from the settings. Running
it again, or next to running twins, is safe (a row is rewritten only while it holds the value
read). Exit status 1 when a secret does not open with any configured key (nothing is lost: that
row is left as it was and named)."""

from __future__ import annotations

import asyncio
import sys

from twinbill_common.postgres import create_pool
from twinbill_common.settings import load_settings
from twinbill_twin.secretbox import SecretUnreadable, reseal_stored_secrets
from twinbill_twin.settings import TwinSettings


async def reseal(settings: TwinSettings) -> int:
    """Re-seal under the current key; how many rows were rewritten."""
    pool = await create_pool(settings.pg_dsn.get_secret_value(), schema=settings.schema_name, max_size=2)
    try:
        return await reseal_stored_secrets(pool, settings.device_secrets())
    finally:
        await pool.close()


def main() -> None:
    """Run once; print what was done."""
    settings = load_settings(TwinSettings)
    try:
        count = asyncio.run(reseal(settings))
    except SecretUnreadable as err:
        print(f"twinbill_twin.reseal: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"re-sealed {count} device secret(s) under key {settings.device_secret_key_id!r}")


if __name__ == "__main__":
    main()
