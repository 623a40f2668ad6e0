-- Schema of the demo "ledger" MariaDB database (the receiving side of the demo transfer).
CREATE TABLE IF NOT EXISTS wallets (
  id       varchar(32) PRIMARY KEY,
  balance  int NOT NULL CHECK (balance >= 0)
) ENGINE=InnoDB;
INSERT IGNORE INTO wallets VALUES ('bob', 0);
