-- Schema of the demo "orders" database.
CREATE TABLE IF NOT EXISTS orders (
  id   text PRIMARY KEY,
  sku  text NOT NULL,
  qty  int  NOT NULL CHECK (qty > 0)
);

-- The sending side of the demo transfer to MariaDB.
CREATE TABLE IF NOT EXISTS wallets (
  id       text PRIMARY KEY,
  balance  int NOT NULL CHECK (balance >= 0)
);
INSERT INTO wallets VALUES ('alice', 1000) ON CONFLICT (id) DO NOTHING;
