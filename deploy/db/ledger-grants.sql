-- docker-compose (deploy/local-cluster.sh grants the same): the image gives MARIADB_USER rights on its
-- database alone, and the agent's deadlock reports read information_schema.INNODB_TRX and
-- INNODB_LOCK_WAITS, which need PROCESS. XA RECOVER (in-doubt branches) needs it too on 10.11.
GRANT PROCESS ON *.* TO 'txcoord'@'%';
