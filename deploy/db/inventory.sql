-- Schema and stock of the demo "inventory" database.
CREATE TABLE IF NOT EXISTS stock (
  sku  text PRIMARY KEY,
  qty  int  NOT NULL CHECK (qty >= 0)
);
INSERT INTO stock VALUES ('apple', 100), ('pear', 0) ON CONFLICT (sku) DO NOTHING;
