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
-- Applied again by every `local-cluster.sh up`, whose demo moves 30 from alice: her balance is
-- topped back up to 1000, so repeated `up`s never leave her short.
INSERT INTO wallets VALUES ('alice', 1000)
  ON CONFLICT (id) DO UPDATE SET balance = GREATEST(wallets.balance, excluded.balance);

-- The role the agent runs client statements as (txagent --run-as-role txcoord_client): the
-- application's tables, including ones created later (txbench's acct), and nothing else. The
-- agent revokes it from its own tables (txcoord_*) when it starts.
DO $$ BEGIN CREATE ROLE txcoord_client NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO txcoord_client;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO txcoord_client;
