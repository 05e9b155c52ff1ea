DROP TABLE IF EXISTS stock_holds;
DROP TABLE IF EXISTS stock_levels;
