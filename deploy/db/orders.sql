-- Schema of the demo "orders" database.
CREATE TABLE IF NOT EXISTS orders (
  id   text PRIMARY KEY,
  sku  text NOT NULL,
  qty  int  NOT NULL CHECK (qty > 0)
);
