-- A schema-2 journal written by procs/execution/journal.py at d9239da (before the reads
-- table): 2 intents, 2 fills, 2 meta (audit key bytes(range(32))). test_audit.py loads it
-- with executescript and opens it (the 2 -> 3 migration).
BEGIN TRANSACTION;
CREATE TABLE audit(id INTEGER PRIMARY KEY, ts_ns INTEGER NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
INSERT INTO "audit" VALUES(1,1796533146253567121,'meta','["schema_version","2"]','0000000000000000000000000000000000000000000000000000000000000000','41125dc493345d2d3a11763eb05020243cd7f02ebee1094bedde39a10665a8f7');
INSERT INTO "audit" VALUES(2,1700000000000000001,'intents','["br-1-1","BTCUSDT","BUY","LIMIT","GTC","0.01","60000",0,"BOTH","",11,21,31,41,1001,1700000000000000001]','41125dc493345d2d3a11763eb05020243cd7f02ebee1094bedde39a10665a8f7','83583bbe15582f6545f8c7a1e948af4155e05e5c8c24d91c9c0f8ffddc0d0fd1');
INSERT INTO "audit" VALUES(3,1700000000000000011,'fills','["f1","br-1-1","X1","BTCUSDT","BUY","BOTH","0.01","60000","0.01",1,1700000000000000011]','83583bbe15582f6545f8c7a1e948af4155e05e5c8c24d91c9c0f8ffddc0d0fd1','a1f1fd65b4ef88377c59b75378c48ef551497ca46d7ecc092f929d927231628a');
INSERT INTO "audit" VALUES(4,1700000000000000002,'intents','["br-1-2","BTCUSDT","BUY","LIMIT","GTC","0.01","60000",0,"BOTH","",12,22,32,42,1002,1700000000000000002]','a1f1fd65b4ef88377c59b75378c48ef551497ca46d7ecc092f929d927231628a','872ca50c777401a277e1ac189f7ca686accd0f803bce9d9b3015bd99d9fcec9e');
INSERT INTO "audit" VALUES(5,1700000000000000012,'fills','["f2","br-1-2","X2","BTCUSDT","BUY","BOTH","0.01","60000","0.01",1,1700000000000000012]','872ca50c777401a277e1ac189f7ca686accd0f803bce9d9b3015bd99d9fcec9e','c9ffacebcc9c17606a2d68048cda6a3770f75c48cd2b93a3d0e76128f47102a7');
INSERT INTO "audit" VALUES(6,1796533146330777025,'meta','["balance_base","100000"]','c9ffacebcc9c17606a2d68048cda6a3770f75c48cd2b93a3d0e76128f47102a7','84a7fba578d2c3ec2b2f3a977b3ba787c16cad363b518c36c0b71a51e9b0822a');
CREATE TABLE breaker_events(id INTEGER PRIMARY KEY, old TEXT, new TEXT, trigger TEXT, detail TEXT, ts_ns INTEGER, audit_id INTEGER NOT NULL UNIQUE);
CREATE TABLE fills(id INTEGER PRIMARY KEY, fill_id TEXT UNIQUE, client_id TEXT, order_id TEXT, symbol TEXT, side TEXT, position_side TEXT, qty TEXT, price TEXT, fee TEXT, maker INTEGER, ts_ns INTEGER, audit_id INTEGER NOT NULL UNIQUE);
INSERT INTO "fills" VALUES(1,'f1','br-1-1','X1','BTCUSDT','BUY','BOTH','0.01','60000','0.01',1,1700000000000000011,3);
INSERT INTO "fills" VALUES(2,'f2','br-1-2','X2','BTCUSDT','BUY','BOTH','0.01','60000','0.01',1,1700000000000000012,5);
CREATE TABLE funding(id INTEGER PRIMARY KEY, event_id TEXT UNIQUE, symbol TEXT, position_side TEXT, amount TEXT, ts_ns INTEGER, audit_id INTEGER NOT NULL UNIQUE);
CREATE TABLE intents(id INTEGER PRIMARY KEY, client_id TEXT UNIQUE, symbol TEXT, side TEXT, order_type TEXT, tif TEXT, qty TEXT, price TEXT, reduce_only INTEGER, position_side TEXT, tag TEXT, ts_event_ns INTEGER, ts_recv_ns INTEGER, ts_feat_ns INTEGER, ts_sig_ns INTEGER, ts_order_ns INTEGER, ts_ns INTEGER, audit_id INTEGER NOT NULL UNIQUE);
INSERT INTO "intents" VALUES(1,'br-1-1','BTCUSDT','BUY','LIMIT','GTC','0.01','60000',0,'BOTH','',11,21,31,41,1001,1700000000000000001,2);
INSERT INTO "intents" VALUES(2,'br-1-2','BTCUSDT','BUY','LIMIT','GTC','0.01','60000',0,'BOTH','',12,22,32,42,1002,1700000000000000002,4);
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO "meta" VALUES('schema_version','2');
INSERT INTO "meta" VALUES('balance_base','100000');
CREATE TABLE order_events(id INTEGER PRIMARY KEY, client_id TEXT, old TEXT, new TEXT, order_id TEXT, filled_qty TEXT, avg_price TEXT, fee TEXT, mtime_ms INTEGER, ts_sent_ns INTEGER, ts_cancel_ns INTEGER, cause TEXT, reason TEXT, ts_ns INTEGER, audit_id INTEGER NOT NULL UNIQUE);
CREATE TABLE positions(id INTEGER PRIMARY KEY, symbol TEXT, position_side TEXT, qty TEXT, cost TEXT, realised TEXT, fees TEXT, funding TEXT, ts_ns INTEGER, audit_id INTEGER NOT NULL UNIQUE);
CREATE TABLE risk_events(id INTEGER PRIMARY KEY, client_id TEXT, symbol TEXT, reason TEXT, detail TEXT, ts_ns INTEGER, audit_id INTEGER NOT NULL UNIQUE);
CREATE INDEX order_events_cid ON order_events(client_id, id);
COMMIT;
