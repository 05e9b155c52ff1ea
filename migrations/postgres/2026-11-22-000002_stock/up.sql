-- The built-in stock backend (PostgreSQL): levels on hand and holds against them.
-- The SQLite migration of the same name holds the same logical schema.
--
-- Available = on_hand_milli - the qty_milli of holds that are 'active' and not expired.
-- A hold is created in one transaction that first locks the SKU's stock_levels row
-- (SELECT … FOR UPDATE), so holds on one SKU are decided one at a time across processes.
-- Quantities are thousandths (omniman_core::money::Qty).

CREATE TABLE stock_levels (
    sku            VARCHAR(64)  PRIMARY KEY,
    -- Negative only when fulfilled holds no longer fit: made before `stock set` lowered the
    -- level, or fulfilled after they expired and their units were held again.
    on_hand_milli  BIGINT       NOT NULL,
    updated_at     TIMESTAMPTZ  NOT NULL DEFAULT now()
);

CREATE TABLE stock_holds (
    id             BIGSERIAL    PRIMARY KEY,
    hold_id        VARCHAR(32)  NOT NULL UNIQUE,
    sku            VARCHAR(64)  NOT NULL,
    qty_milli      BIGINT       NOT NULL CHECK (qty_milli > 0),
    reference      VARCHAR(128),
    status         VARCHAR(16)  NOT NULL DEFAULT 'active'
                   CHECK (status IN ('active', 'released', 'fulfilled')),
    expires_at     TIMESTAMPTZ,
    created_at     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ  NOT NULL DEFAULT now()
);
-- What a SKU has held (status = 'active').
CREATE INDEX stock_holds_sku_status_idx ON stock_holds (sku, status);
-- The holds of a session (released before each new stock check) or an order.
CREATE INDEX stock_holds_reference_idx ON stock_holds (reference);
