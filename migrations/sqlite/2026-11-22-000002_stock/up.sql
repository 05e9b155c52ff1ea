-- The built-in stock backend (SQLite): levels on hand and holds against them.
-- Same logical schema as the PostgreSQL migration of the same name (see the notes at the top
-- of 2026-11-22-000001_init for how types map).
--
-- Available = on_hand_milli - the qty_milli of holds that are 'active' and not expired.
-- A hold is created in one BEGIN IMMEDIATE transaction, which holds the database's write lock:
-- holds are decided one at a time, also across processes.
-- Quantities are thousandths (omniman_core::money::Qty).

CREATE TABLE stock_levels (
    sku            TEXT    PRIMARY KEY NOT NULL CHECK (length(sku) <= 64),
    -- Negative only when fulfilled holds no longer fit: made before `stock set` lowered the
    -- level, or fulfilled after they expired and their units were held again.
    on_hand_milli  INTEGER NOT NULL,
    updated_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'))
) STRICT;

CREATE TABLE stock_holds (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    hold_id        TEXT    NOT NULL UNIQUE CHECK (length(hold_id) <= 32),
    sku            TEXT    NOT NULL CHECK (length(sku) <= 64),
    qty_milli      INTEGER NOT NULL CHECK (qty_milli > 0),
    reference      TEXT    CHECK (length(reference) <= 128),
    status         TEXT    NOT NULL DEFAULT 'active'
                   CHECK (status IN ('active', 'released', 'fulfilled')),
    expires_at     TEXT,
    created_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    updated_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'))
) STRICT;
-- What a SKU has held (status = 'active').
CREATE INDEX stock_holds_sku_status_idx ON stock_holds (sku, status);
-- The holds of a session (released before each new stock check) or an order.
CREATE INDEX stock_holds_reference_idx ON stock_holds (reference);
