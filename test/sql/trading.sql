-- Trading: every argument rule of the order functions (22023 naming the argument, before
-- anything leaves the database), the two keys of live trading (42501 naming the missing key;
-- checked before the sidecar is contacted, so with the sidecar socket pointed nowhere an
-- allowed call ends in the connection error), and trade tickets (a read ticket never trades).
SET pg_alpaca.sidecar_socket = '/nonexistent/pga-trading.sock';
SET pg_alpaca.request_timeout_ms = 1000;
SHOW pg_alpaca.allow_live_trading;
DROP ROLE IF EXISTS regress_trader;
DROP ROLE IF EXISTS regress_trade_sidecar;
CREATE ROLE regress_trader IN ROLE alpaca_app;
CREATE ROLE regress_trade_sidecar IN ROLE alpaca_sidecar;
-- Superuser-only: an application role cannot turn live trading on.
SET ROLE regress_trader;
SELECT pga_try($$SET pg_alpaca.allow_live_trading = on$$) AS app_sets_cluster_key;
SELECT pga_try($$SELECT alpaca._live_trading_allowed()$$) AS app_calls_internal;
SELECT pga_try($$SELECT alpaca._alpaca_send(gen_random_uuid(), 'submit_order', 't', NULL, '{}', '{}')$$) AS app_calls_send;

BEGIN;
SELECT alpaca_set_user('trader');
SELECT alpaca_create_account('trading') AS acct \gset
SELECT alpaca_store_credential(:'acct', 'PKTRADER000000000001', 'trader-secret-000000000000000000000001') AS paper \gset
SELECT alpaca_store_credential(:'acct', 'AKTRADER000000000002', 'trader-secret-000000000000000000000002', 'live') AS live \gset
COMMIT;

-- The opt-in column: false by default, readable by applications, never writable directly.
BEGIN;
SELECT alpaca_set_user('trader');
SELECT environment, live_trading FROM alpaca.credentials ORDER BY environment;
SELECT pga_try(format('UPDATE alpaca.credentials SET live_trading = true WHERE id = %L', :'live')) AS direct_update;
COMMIT;

-- Every argument rule (paper credential: no trading key needed).
BEGIN;
SELECT alpaca_set_user('trader');
SELECT rule, pga_try(format('SELECT * FROM alpaca_submit_order(%L, %s)', :'paper', args)) AS result
FROM (VALUES
    ('no qty, no notional',        $$'AAPL', 'buy'$$),
    ('qty and notional',           $$'AAPL', 'buy', qty => 1, notional => 100$$),
    ('qty zero',                   $$'AAPL', 'buy', qty => 0$$),
    ('qty negative',               $$'AAPL', 'buy', qty => -1$$),
    ('qty NaN',                    $$'AAPL', 'buy', qty => 'NaN'$$),
    ('qty too precise',            $$'AAPL', 'buy', qty => 0.0000000001$$),
    ('notional zero',              $$'AAPL', 'buy', notional => 0$$),
    ('notional limit',             $$'AAPL', 'buy', notional => 100, type => 'limit', limit_price => 10$$),
    ('notional gtc',               $$'AAPL', 'buy', notional => 100, time_in_force => 'gtc'$$),
    ('bad side',                   $$'AAPL', 'hold', qty => 1$$),
    ('no side',                    $$'AAPL', NULL, qty => 1$$),
    ('bad type',                   $$'AAPL', 'buy', qty => 1, type => 'moon'$$),
    ('bad time_in_force',          $$'AAPL', 'buy', qty => 1, time_in_force => 'forever'$$),
    ('limit without limit_price',  $$'AAPL', 'buy', qty => 1, type => 'limit'$$),
    ('market with limit_price',    $$'AAPL', 'buy', qty => 1, limit_price => 10$$),
    ('stop without stop_price',    $$'AAPL', 'buy', qty => 1, type => 'stop'$$),
    ('stop_limit without limit',   $$'AAPL', 'buy', qty => 1, type => 'stop_limit', stop_price => 10$$),
    ('stop_limit without stop',    $$'AAPL', 'buy', qty => 1, type => 'stop_limit', limit_price => 10$$),
    ('limit with stop_price',      $$'AAPL', 'buy', qty => 1, type => 'limit', limit_price => 10, stop_price => 9$$),
    ('limit_price zero',           $$'AAPL', 'buy', qty => 1, type => 'limit', limit_price => 0$$),
    ('stop_price negative',        $$'AAPL', 'buy', qty => 1, type => 'stop', stop_price => -5$$),
    ('trailing without trail',     $$'AAPL', 'sell', qty => 1, type => 'trailing_stop'$$),
    ('trailing with both',         $$'AAPL', 'sell', qty => 1, type => 'trailing_stop', trail_price => 1, trail_percent => 1$$),
    ('trail on a limit',           $$'AAPL', 'sell', qty => 1, type => 'limit', limit_price => 10, trail_percent => 1$$),
    ('trail_percent over 100',     $$'AAPL', 'sell', qty => 1, type => 'trailing_stop', trail_percent => 101$$),
    ('extended hours market',      $$'AAPL', 'buy', qty => 1, extended_hours => true$$),
    ('extended hours ioc',         $$'AAPL', 'buy', qty => 1, type => 'limit', limit_price => 10, time_in_force => 'ioc', extended_hours => true$$),
    ('fractional gtc',             $$'AAPL', 'buy', qty => 0.5, time_in_force => 'gtc'$$),
    ('fractional limit',           $$'AAPL', 'buy', qty => 0.5, type => 'limit', limit_price => 10$$),
    ('symbol empty',               $$'', 'buy', qty => 1$$),
    ('symbol with space',          $$'AA PL', 'buy', qty => 1$$),
    ('symbol with quote',          $$'AAPL''--', 'buy', qty => 1$$),
    ('symbol too long',            $$repeat('A', 33), 'buy', qty => 1$$),
    ('symbol dot dot',             $$'../v2/account', 'buy', qty => 1$$),
    ('symbol two slashes',         $$'BTC//USD', 'buy', qty => 0.1, time_in_force => 'gtc'$$),
    ('symbol NULL',                $$NULL, 'buy', qty => 1$$),
    ('client_order_id too long',   $$'AAPL', 'buy', qty => 1, client_order_id => repeat('c', 129)$$),
    ('client_order_id empty',      $$'AAPL', 'buy', qty => 1, client_order_id => ''$$),
    ('client_order_id charset',    $$'AAPL', 'buy', qty => 1, client_order_id => 'a&b=c'$$),
    ('client_order_id unicode',    $$'AAPL', 'buy', qty => 1, client_order_id => E'caf\u00e9'$$),
    ('option gtc is fine, ioc not',$$'AAPL240119C00190000', 'buy', qty => 1, time_in_force => 'ioc'$$),
    ('option fractional',          $$'AAPL240119C00190000', 'buy', qty => 1.5$$),
    ('option notional',            $$'AAPL240119C00190000', 'buy', notional => 100$$),
    ('option trailing',            $$'AAPL240119C00190000', 'sell', qty => 1, type => 'trailing_stop', trail_percent => 5$$),
    ('option bracket',             $$'AAPL240119C00190000', 'buy', qty => 1, order_class => 'bracket', take_profit_limit_price => 5, stop_loss_stop_price => 1$$),
    ('crypto day',                 $$'BTC/USD', 'buy', qty => 0.01$$),
    ('crypto stop',                $$'BTC/USD', 'buy', qty => 0.01, type => 'stop', stop_price => 10, time_in_force => 'gtc'$$),
    ('crypto bracket',             $$'BTCUSD', 'buy', qty => 0.01, time_in_force => 'gtc', order_class => 'bracket', take_profit_limit_price => 5, stop_loss_stop_price => 1$$),
    ('bad order_class',            $$'AAPL', 'buy', qty => 1, order_class => 'trio'$$),
    ('bracket without stop_loss',  $$'AAPL', 'buy', qty => 1, order_class => 'bracket', take_profit_limit_price => 200$$),
    ('oco market',                 $$'AAPL', 'sell', qty => 1, order_class => 'oco', take_profit_limit_price => 200, stop_loss_stop_price => 100$$),
    ('oto with neither',           $$'AAPL', 'buy', qty => 1, order_class => 'oto'$$),
    ('take profit on simple',      $$'AAPL', 'buy', qty => 1, take_profit_limit_price => 200$$),
    ('stop loss limit alone',      $$'AAPL', 'buy', qty => 1, order_class => 'oto', take_profit_limit_price => 200, stop_loss_limit_price => 90$$),
    ('bad position_intent',        $$'AAPL240119C00190000', 'buy', qty => 1, position_intent => 'buy_to_hold'$$),
    ('mleg with symbol',           $$'AAPL', NULL, qty => 1, order_class => 'mleg', legs => '[]'$$),
    ('mleg without legs',          $$NULL, NULL, qty => 1, order_class => 'mleg'$$),
    ('mleg one leg',               $$NULL, NULL, qty => 1, order_class => 'mleg', legs => '[{"symbol":"AAPL240119C00190000","ratio_qty":"1","side":"buy"}]'$$),
    ('mleg five legs',             $$NULL, NULL, qty => 1, order_class => 'mleg', legs => (SELECT jsonb_agg('{"symbol":"AAPL240119C00190000","ratio_qty":"1","side":"buy"}'::jsonb) FROM generate_series(1, 5))$$),
    ('mleg equity leg',            $$NULL, NULL, qty => 1, order_class => 'mleg', legs => '[{"symbol":"AAPL","ratio_qty":"1","side":"buy"},{"symbol":"AAPL240119P00180000","ratio_qty":"1","side":"sell"}]'$$),
    ('mleg bad ratio',             $$NULL, NULL, qty => 1, order_class => 'mleg', legs => '[{"symbol":"AAPL240119C00190000","ratio_qty":"0","side":"buy"},{"symbol":"AAPL240119P00180000","ratio_qty":"1","side":"sell"}]'$$),
    ('mleg leg extra key',         $$NULL, NULL, qty => 1, order_class => 'mleg', legs => '[{"symbol":"AAPL240119C00190000","ratio_qty":"1","side":"buy","x":1},{"symbol":"AAPL240119P00180000","ratio_qty":"1","side":"sell"}]'$$),
    ('legs without mleg',          $$'AAPL', 'buy', qty => 1, legs => '[]'$$)
) AS t(rule, args);

-- Replace, get, cancel and close check their arguments too.
SELECT rule, pga_try(format(sql, :'paper')) AS result
FROM (VALUES
    ('replace nothing',            $$SELECT * FROM alpaca_replace_order(%L, gen_random_uuid())$$),
    ('replace qty zero',           $$SELECT * FROM alpaca_replace_order(%L, gen_random_uuid(), qty => 0)$$),
    ('replace trail negative',     $$SELECT * FROM alpaca_replace_order(%L, gen_random_uuid(), trail => -1)$$),
    ('replace bad tif',            $$SELECT * FROM alpaca_replace_order(%L, gen_random_uuid(), time_in_force => 'x')$$),
    ('replace bad client id',      $$SELECT * FROM alpaca_replace_order(%L, gen_random_uuid(), qty => 1, client_order_id => 'a b')$$),
    ('replace NULL order',         $$SELECT * FROM alpaca_replace_order(%L, NULL, qty => 1)$$),
    ('get NULL order',             $$SELECT * FROM alpaca_get_order(%L, NULL)$$),
    ('get by bad client id',       $$SELECT * FROM alpaca_get_order_by_client_id(%L, repeat('x', 129))$$),
    ('get by NULL client id',      $$SELECT * FROM alpaca_get_order_by_client_id(%L, NULL)$$),
    ('cancel NULL order',          $$SELECT * FROM alpaca_cancel_order(%L, NULL)$$),
    ('close bad symbol',           $$SELECT * FROM alpaca_close_position(%L, '../v2/account')$$),
    ('close qty and percentage',   $$SELECT * FROM alpaca_close_position(%L, 'AAPL', qty => 1, percentage => 50)$$),
    ('close percentage 0',         $$SELECT * FROM alpaca_close_position(%L, 'AAPL', percentage => 0)$$),
    ('close percentage 101',       $$SELECT * FROM alpaca_close_position(%L, 'AAPL', percentage => 101)$$)
) AS t(rule, sql);

-- Valid orders pass every check and go to the sidecar (here: nowhere, 08001).
SELECT rule, pga_try(format('SELECT * FROM alpaca_submit_order(%L, %s)', :'paper', args)) AS result
FROM (VALUES
    ('market',                     $$'AAPL', 'buy', qty => 1$$),
    ('notional',                   $$'AAPL', 'buy', notional => 50.25$$),
    ('fractional',                 $$'VTI', 'buy', qty => 0.123456789$$),
    ('limit gtc extended',         $$'AAPL', 'buy', qty => 1, type => 'limit', limit_price => 150.5, time_in_force => 'gtc', extended_hours => true$$),
    ('stop_limit',                 $$'AAPL', 'sell', qty => 1, type => 'stop_limit', stop_price => 140, limit_price => 139$$),
    ('trailing',                   $$'AAPL', 'sell', qty => 1, type => 'trailing_stop', trail_percent => 2.5$$),
    ('bracket',                    $$'AAPL', 'buy', qty => 1, order_class => 'bracket', take_profit_limit_price => 250, stop_loss_stop_price => 150, stop_loss_limit_price => 149$$),
    ('oto',                        $$'AAPL', 'buy', qty => 1, order_class => 'oto', stop_loss_stop_price => 150$$),
    ('oco',                        $$'AAPL', 'sell', qty => 1, type => 'limit', limit_price => 250, order_class => 'oco', take_profit_limit_price => 250, stop_loss_stop_price => 150$$),
    ('option day',                 $$'AAPL240119C00190000', 'buy', qty => 1, type => 'limit', limit_price => 2.5$$),
    ('option gtc',                 $$'AAPL240119C00190000', 'buy', qty => 1, type => 'limit', limit_price => 2.5, time_in_force => 'gtc', position_intent => 'buy_to_open'$$),
    ('mleg',                       $$NULL, NULL, qty => 1, type => 'limit', limit_price => 1.28, order_class => 'mleg', legs => '[{"symbol":"AAPL240119C00190000","ratio_qty":"3","side":"buy","position_intent":"buy_to_open"},{"symbol":"AAPL240119P00180000","ratio_qty":"1","side":"sell"}]'$$),
    ('crypto gtc',                 $$'BTC/USD', 'buy', qty => 0.0001, time_in_force => 'gtc'$$),
    ('crypto notional ioc',        $$'ETH/USD', 'buy', notional => 20, time_in_force => 'ioc'$$),
    ('client_order_id 128',        $$'AAPL', 'buy', qty => 1, client_order_id => repeat('c', 128)$$),
    ('class share symbol',         $$'BRK.B', 'buy', qty => 1$$)
) AS t(rule, args);

COMMIT;
RESET ROLE;
-- The JSON body Alpaca gets (numbers as decimal strings; a generated client_order_id).
SELECT alpaca._order_body('AAPL', 'buy', 2.00, NULL, 'limit', 'gtc', 150.10, NULL, NULL, NULL,
                          false, 'my-id', 'bracket', 200, 140, 139.5, NULL, NULL) AS body;
SELECT alpaca._order_body(NULL, NULL, 2, NULL, 'limit', 'day', 1.28, NULL, NULL, NULL, false,
                          'm1', 'mleg', NULL, NULL, NULL, NULL,
                          '[{"symbol":"AAPL240119C00190000","ratio_qty":"3","side":"buy"},{"symbol":"AAPL240119P00180000","ratio_qty":"1","side":"sell","position_intent":"sell_to_open"}]') AS mleg_body;
SELECT alpaca._order_body('AAPL', 'buy', 1, NULL, 'market', 'day', NULL, NULL, NULL, NULL,
                          false, NULL, NULL, NULL, NULL, NULL, NULL, NULL)->>'client_order_id' ~ '^pga-[0-9a-f]{32}$' AS generated_id;
SELECT alpaca._replace_body(NULL, 10.50, NULL, NULL, 'gtc', 'r-1') AS replace_body;

-- The live opt-in matrix: (cluster key, owner key) x (submit, replace, cancel, close). Only
-- both keys get as far as the sidecar; paper trades with neither. Reading is never affected.
CREATE FUNCTION pg_temp.trade_calls(cred uuid) RETURNS TABLE(call text, result text)
LANGUAGE sql AS $f$
    SELECT c, replace(pga_try(format(s, cred)), cred::text, '<cred>')
    FROM (VALUES
        ('submit',  $$SELECT * FROM alpaca_submit_order(%L, 'SPY', 'buy', qty => 1)$$),
        ('replace', $$SELECT * FROM alpaca_replace_order(%L, '11111111-1111-1111-1111-111111111111', qty => 2)$$),
        ('cancel',  $$SELECT * FROM alpaca_cancel_order(%L, '11111111-1111-1111-1111-111111111111')$$),
        ('cancel all', $$SELECT * FROM alpaca_cancel_all_orders(%L)$$),
        ('close',   $$SELECT * FROM alpaca_close_position(%L, 'SPY')$$),
        ('read',    $$SELECT * FROM alpaca_get_order(%L, '11111111-1111-1111-1111-111111111111')$$)
    ) AS v(c, s);
$f$;
GRANT EXECUTE ON FUNCTION pg_temp.trade_calls(uuid) TO regress_trader;

SET pg_alpaca.allow_live_trading = off;
SET ROLE regress_trader;
BEGIN;
SELECT alpaca_set_user('trader');
SELECT 'cluster off, owner off' AS keys, * FROM pg_temp.trade_calls(:'live');
SELECT 'paper, no keys' AS keys, * FROM pg_temp.trade_calls(:'paper');
SELECT alpaca_update_credential(:'live', live_trading => true);
SELECT 'cluster off, owner on' AS keys, * FROM pg_temp.trade_calls(:'live');
COMMIT;
RESET ROLE;
SET pg_alpaca.allow_live_trading = on;
SET ROLE regress_trader;
BEGIN;
SELECT alpaca_set_user('trader');
SELECT 'cluster on, owner on' AS keys, * FROM pg_temp.trade_calls(:'live');
SELECT alpaca_update_credential(:'live', live_trading => false);
SELECT 'cluster on, owner off' AS keys, * FROM pg_temp.trade_calls(:'live');
-- The owner's key is audited as an action of its own; a no-op change is not.
SELECT alpaca_update_credential(:'live', live_trading => false);
SELECT action FROM alpaca.audit_log WHERE credential_id = :'live' AND action LIKE 'live%' ORDER BY id;
COMMIT;
-- Another user cannot turn the owner's key.
BEGIN;
SELECT alpaca_set_user('mallory');
SELECT replace(pga_try(format('SELECT alpaca_update_credential(%L, live_trading => true)', :'live')), :'live', '<cred>') AS foreign_opt_in;
COMMIT;

-- Tickets: a trading call's ticket has purpose trade; a ticket minted to read cannot be
-- redeemed for trading, and a trade ticket of a live credential without both keys is refused
-- where the keys would leave.
BEGIN;
SELECT alpaca_set_user('trader');
SELECT alpaca_issue_ticket(:'paper', 'orders') AS t_read \gset
SELECT alpaca_issue_ticket(:'paper', 'trade') AS t_trade \gset
SELECT alpaca_issue_ticket(:'live', 'trade') AS t_live \gset
COMMIT;
SET ROLE regress_trade_sidecar;
CALL alpaca.redeem_ticket(:'t_read', 'trade', NULL, NULL, NULL, NULL);
CALL alpaca.redeem_ticket(:'t_live', 'trade', NULL, NULL, NULL, NULL);
CALL alpaca.redeem_ticket(:'t_trade', 'trade', NULL, NULL, NULL, NULL) \gset r_
SELECT :'r_credential_id' = :'paper' AS trade_ticket_redeemed, :'r_environment' AS environment;
-- The sidecar records the trade once per redeemed ticket; a read ticket records nothing.
SELECT alpaca._audit_trade(:'t_trade', 'submit_order', 'regress-coid-1', 'http 200');
SELECT pga_try(format('SELECT alpaca._audit_trade(%L, %L, %L, %L)', :'t_trade', 'submit_order', 'again', 'http 200')) AS second_record;
SELECT pga_try(format('SELECT alpaca._audit_trade(%L, %L, %L, %L)', :'t_read', 'submit_order', 'x', 'http 200')) AS read_ticket_record;
RESET ROLE;
SET ROLE regress_trader;
SELECT pga_try(format('SELECT alpaca._audit_trade(%L, %L, %L, %L)', :'t_trade', 'submit_order', 'x', 'ok')) AS app_records;
BEGIN;
SELECT alpaca_set_user('trader');
SELECT action, purpose, outcome, client_order_id, db_role FROM alpaca.audit_log
WHERE client_order_id IS NOT NULL ORDER BY id;
COMMIT;
RESET ROLE;
RESET pg_alpaca.allow_live_trading;
RESET pg_alpaca.sidecar_socket;
DROP FUNCTION pg_temp.trade_calls(uuid);
DROP ROLE regress_trader, regress_trade_sidecar;
