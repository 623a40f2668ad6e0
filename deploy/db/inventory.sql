-- Schema and stock of the demo "inventory" database.
CREATE TABLE IF NOT EXISTS stock (
  sku  text PRIMARY KEY,
  qty  int  NOT NULL CHECK (qty >= 0)
);
-- Applied again by every `local-cluster.sh up`, whose demo orders 2 apples and 1 pear: the stock
-- is set back to what the demo expects (100 apples at least, no pear), so repeated `up`s never
-- run it dry.
INSERT INTO stock VALUES ('apple', 100), ('pear', 0)
  ON CONFLICT (sku) DO UPDATE SET qty = CASE WHEN stock.sku = 'pear' THEN 0
                                             ELSE GREATEST(stock.qty, excluded.qty) END;

-- The role the agent runs client statements as (txagent --run-as-role txcoord_client): the
-- application's tables, including ones created later (txbench's acct), and nothing else. The
-- agent revokes it from its own tables (txcoord_*) when it starts.
DO $$ BEGIN CREATE ROLE txcoord_client NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO txcoord_client;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO txcoord_client;
