-- B8: one order placed through the sidecar (a limit order far below the market: it stays open
-- and holds almost no buying power). Each call gets a fresh client_order_id from the extension.
-- Run with -D cred=<uuid>; the application user is a session setting (PGOPTIONS).
SELECT id FROM alpaca_submit_order(:cred, 'AAPL', 'buy', qty => 1, type => 'limit',
                                   limit_price => 0.01);
