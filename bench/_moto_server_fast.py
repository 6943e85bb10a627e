"""``moto_server`` with one fix for benchmarks at fleet scale: ``TransactWriteItems`` backs up
only the items a transaction touches. moto 5.2.5 deep-copies the whole table, stream records
included, for every item of every transaction, which makes 1,000 commits of five items
quadratic (hours). The rollback is the same: on a cancelled transaction every touched item is
put back as it was (stream records of the rolled-back writes stay, which a benchmark without
conflicts never sees).

    python bench/_moto_server_fast.py -H 127.0.0.1 -p PORT
"""

from __future__ import annotations

import copy
import sys
import threading

import moto.dynamodb.models as models
from moto.dynamodb.models.table import Table

_local = threading.local()


class _NoTableCopies:
    """Stands in for the ``copy`` module inside moto's DynamoDB backend: inside a transaction a
    whole table is not copied (the wrapper below keeps the touched items instead)."""

    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(x, *args, **kwargs):
        if getattr(_local, "inside", False) and isinstance(x, Table):
            return x
        return copy.deepcopy(x, *args, **kwargs)


_original = models.DynamoDBBackend.transact_write_items


def transact_write_items(self, transact_items):
    backups = []
    for entry in transact_items:
        _op, body = next(iter(entry.items()))
        table = self.tables.get(body.get("TableName"))
        if table is None:
            continue
        key = body.get("Key") or {k: v for k, v in (body.get("Item") or {}).items()
                                  if k in (table.hash_key_attr, table.range_key_attr)}
        try:
            h, r = self.get_keys_value(table, key)
        except Exception:  # noqa: BLE001 - the original reports a bad key itself
            continue
        backups.append((table, h, r, copy.deepcopy(table.get_item(h, r))))
    _local.inside = True
    try:
        return _original(self, transact_items)
    except Exception:
        for table, h, r, old in reversed(backups):
            if r is not None:
                if old is None:
                    table.items[h].pop(r, None)
                else:
                    table.items[h][r] = old
            elif old is None:
                table.items.pop(h, None)
            else:
                table.items[h] = old
        raise
    finally:
        _local.inside = False


models.copy = _NoTableCopies()
models.DynamoDBBackend.transact_write_items = transact_write_items

if __name__ == "__main__":
    from moto.server import main

    sys.exit(main(sys.argv[1:]))
