-- The pure parsers alpaca_parse_account / _positions / _orders: Alpaca's JSON -> typed rows.
-- Inputs are the stand-in's fixtures (test/standin/fixtures, inlined: the account verbatim,
-- arrays one element a line) plus hand-made edge cases. Runs after install (pga_try).
SET datestyle = ISO;
SET timezone = 'UTC';
\pset null '(null)'

-- The declared result types: numeric for money and quantities, timestamptz, date, jsonb.
SELECT p.proname, p.provolatile, p.proisstrict, p.proparallel, pg_get_function_result(p.oid) AS result
FROM pg_proc p WHERE p.proname IN ('alpaca_parse_account', 'alpaca_parse_positions', 'alpaca_parse_orders')
ORDER BY 1;

CREATE TEMP TABLE fixture (name text PRIMARY KEY, body text NOT NULL);
INSERT INTO fixture VALUES
('alice_account', $json${
  "id": "9a3b6d8e-1f2c-4b7a-8e5d-0c4f1a2b3c4d",
  "admin_configurations": {},
  "user_configurations": null,
  "account_number": "PA3ALC7Q2M1X",
  "status": "ACTIVE",
  "crypto_status": "ACTIVE",
  "options_approved_level": 3,
  "options_trading_level": 3,
  "currency": "USD",
  "buying_power": "34303.66",
  "regt_buying_power": "34303.66",
  "effective_buying_power": "34303.66",
  "non_marginable_buying_power": "18250.44",
  "options_buying_power": "17151.83",
  "bod_dtbp": 0,
  "cash": "18250.44",
  "accrued_fees": "0",
  "portfolio_value": "19408.22",
  "multiplier": "2",
  "shorting_enabled": true,
  "equity": "19408.22",
  "last_equity": "19274.30456261",
  "long_market_value": "2835.28",
  "short_market_value": "-1677.5",
  "position_market_value": "4512.78",
  "initial_margin": "2256.39",
  "maintenance_margin": "1353.83",
  "last_maintenance_margin": "1326.76",
  "sma": "18825.97",
  "balance_asof": "2026-07-14",
  "crypto_tier": 1,
  "intraday_adjustments": "0",
  "pending_reg_taf_fees": "0",
  "pending_transfer_in": "0",
  "trading_blocked": false,
  "transfers_blocked": false,
  "account_blocked": false,
  "created_at": "2023-05-04T13:20:11.482912Z",
  "trade_suspended_by_user": false
}$json$),
('alice_positions', $json$[
{"asset_id":"b0b6dd9d-8b9b-48a9-ba46-b9d54906e415","symbol":"AAPL","exchange":"NASDAQ","asset_class":"us_equity","asset_marginable":true,"qty":"10","avg_entry_price":"172.35","side":"long","market_value":"1898.4","cost_basis":"1723.5","unrealized_pl":"174.9","unrealized_plpc":"0.10147954743255","unrealized_intraday_pl":"9.3","unrealized_intraday_plpc":"0.0049229791964428","current_price":"189.84","lastday_price":"188.91","change_today":"0.0049229791964428","qty_available":"10"},
{"asset_id":"8ccae427-5dd0-45b3-b5fe-7ba5e422c766","symbol":"TSLA","exchange":"NASDAQ","asset_class":"us_equity","asset_marginable":true,"qty":"-5","avg_entry_price":"241.1","side":"short","market_value":"-1242.5","cost_basis":"-1205.5","unrealized_pl":"-37","unrealized_plpc":"-0.030692658647864","unrealized_intraday_pl":"19","unrealized_intraday_plpc":"0.0150614347998415","current_price":"248.5","lastday_price":"252.3","change_today":"-0.0150614347998415","qty_available":"-5"},
{"asset_id":"f5057fee-4c3e-4459-82dd-21250b729601","symbol":"VTI","exchange":"ARCA","asset_class":"us_equity","asset_marginable":true,"qty":"0.123456789","avg_entry_price":"221.47","side":"long","market_value":"29.15","cost_basis":"27.34","unrealized_pl":"1.81","unrealized_plpc":"0.066148914074141","unrealized_intraday_pl":"0.09","unrealized_intraday_plpc":"0.0030586236193713","current_price":"236.12","lastday_price":"235.4","change_today":"0.0030586236193713","qty_available":"0.123456789"},
{"asset_id":"f41fcb28-e1ec-4229-9aa5-148c01a8c3f5","symbol":"AAPL240119C00190000","exchange":"","asset_class":"us_option","asset_marginable":true,"qty":"2","avg_entry_price":"5.15","side":"long","market_value":"640","cost_basis":"1030","unrealized_pl":"-390","unrealized_plpc":"-0.3786407766990291","unrealized_intraday_pl":"30","unrealized_intraday_plpc":"0.0491803278688525","current_price":"3.2","lastday_price":"3.05","change_today":"0.0491803278688525","qty_available":"2"},
{"asset_id":"b7b3ff7b-623d-48df-8cd5-8cc6f137bdc5","symbol":"AAPL240119P00180000","exchange":"","asset_class":"us_option","asset_marginable":true,"qty":"1","avg_entry_price":"2.4","side":"long","market_value":"185","cost_basis":"240","unrealized_pl":"-55","unrealized_plpc":"-0.2291666666666667","unrealized_intraday_pl":"-16","unrealized_intraday_plpc":"-0.0796019900497512","current_price":"1.85","lastday_price":"2.01","change_today":"-0.0796019900497512","qty_available":"1"},
{"asset_id":"e52fec14-2d75-4a6a-8584-0f4ce50ee168","symbol":"SPY250321P00450000","exchange":"","asset_class":"us_option","asset_marginable":true,"qty":"-1","avg_entry_price":"6.8","side":"short","market_value":"-435","cost_basis":"-680","unrealized_pl":"245","unrealized_plpc":"0.3602941176470588","unrealized_intraday_pl":"25","unrealized_intraday_plpc":"0.0543478260869565","current_price":"4.35","lastday_price":"4.6","change_today":"-0.0543478260869565","qty_available":"-1"},
{"asset_id":"276e2673-764b-4ab6-a611-caf665ca6340","symbol":"BTCUSD","exchange":"CRYPTO","asset_class":"crypto","asset_marginable":false,"qty":"0.0012345678","avg_entry_price":"43250.5","side":"long","market_value":"82.731289512","cost_basis":"53.395674634","unrealized_pl":"29.335614878","unrealized_plpc":"0.5494005849643357","unrealized_intraday_pl":"0.65707402","unrealized_intraday_plpc":"0.0080058519749964","current_price":"67012.35","lastday_price":"66480.12","change_today":"0.0080058519749964","qty_available":"0.0012345678"}
]$json$),
('alice_orders', $json$[
{"id":"4744f3e0-43c2-43ee-8945-46ce1f76663f","client_order_id":"43c901ee-d01e-43be-a35f-461f83923dd1","created_at":"2026-07-14T14:02:11.512000123Z","updated_at":"2026-07-14T14:02:12.041000123Z","submitted_at":"2026-07-14T14:02:11.560531123Z","filled_at":null,"expired_at":null,"canceled_at":null,"failed_at":null,"replaced_at":null,"replaced_by":null,"replaces":null,"asset_id":"55bab91c-d20b-42cf-98aa-a1f6d2b6c1ba","symbol":"MSFT","asset_class":"us_equity","notional":null,"qty":"5","filled_qty":"0","filled_avg_price":null,"order_class":"","order_type":"limit","type":"limit","side":"buy","time_in_force":"gtc","limit_price":"405.5","stop_price":null,"status":"new","extended_hours":false,"legs":null,"trail_percent":null,"trail_price":null,"hwm":null,"subtag":null,"source":null,"expires_at":"2026-10-12T21:00:00.000000123Z"},
{"id":"89f8f6dc-9f93-46be-9a7e-ff0d44d09f3d","client_order_id":"a557ce75-03c8-496e-be77-367b54dc7651","created_at":"2026-07-14T13:45:03.101000123Z","updated_at":"2026-07-14T13:45:03.333000123Z","submitted_at":"2026-07-14T13:45:03.189460123Z","filled_at":"2026-07-14T13:45:03.333000123Z","expired_at":null,"canceled_at":null,"failed_at":null,"replaced_at":null,"replaced_by":null,"replaces":null,"asset_id":"b192e0d9-3114-4644-8f9e-acd327aae4a6","symbol":"BTC/USD","asset_class":"crypto","notional":null,"qty":"0.0005","filled_qty":"0.0002","filled_avg_price":"59950.1","order_class":"","order_type":"limit","type":"limit","side":"buy","time_in_force":"gtc","limit_price":"60000","stop_price":null,"status":"partially_filled","extended_hours":false,"legs":null,"trail_percent":null,"trail_price":null,"hwm":null,"subtag":null,"source":null,"expires_at":"2026-10-12T21:00:00.000000123Z"},
{"id":"fc188d19-0180-45e1-945c-907bc1189866","client_order_id":"7e790030-5492-4444-b948-c15968ceb6fb","created_at":"2026-07-13T15:30:00.250000123Z","updated_at":"2026-07-13T15:30:01.097000123Z","submitted_at":"2026-07-13T15:30:00.329153123Z","filled_at":null,"expired_at":null,"canceled_at":null,"failed_at":null,"replaced_at":null,"replaced_by":null,"replaces":null,"asset_id":"","symbol":"","asset_class":"","notional":null,"qty":"1","filled_qty":"0","filled_avg_price":null,"order_class":"mleg","order_type":"limit","type":"limit","side":"","time_in_force":"day","limit_price":"1.25","stop_price":null,"status":"new","extended_hours":false,"legs":[{"id":"c8395aad-5fac-4dba-b813-4e77a4c9027d","client_order_id":"8c0031d8-dc08-4c34-9372-f53ff9524fef","created_at":"2026-07-13T15:30:00.250000123Z","updated_at":"2026-07-13T15:30:00.444000123Z","submitted_at":"2026-07-13T15:30:00.294744123Z","filled_at":null,"expired_at":null,"canceled_at":null,"failed_at":null,"replaced_at":null,"replaced_by":null,"replaces":null,"asset_id":"eeee7355-6f02-4483-9508-e050abda62a8","symbol":"AAPL240119C00190000","asset_class":"us_option","notional":null,"qty":"1","filled_qty":"0","filled_avg_price":null,"order_class":"mleg","order_type":"","type":"","side":"buy","position_intent":"buy_to_open","time_in_force":"day","limit_price":null,"stop_price":null,"status":"new","extended_hours":false,"legs":null,"trail_percent":null,"trail_price":null,"hwm":null,"subtag":null,"source":null,"expires_at":"2026-07-13T21:00:00.000000123Z","ratio_qty":"1"},{"id":"c24d025b-749f-4882-8e29-d80fb9f16842","client_order_id":"fa50dad1-f12a-41f0-9a18-19980e199f78","created_at":"2026-07-13T15:30:00.250000123Z","updated_at":"2026-07-13T15:30:00.846000123Z","submitted_at":"2026-07-13T15:30:00.302059123Z","filled_at":null,"expired_at":null,"canceled_at":null,"failed_at":null,"replaced_at":null,"replaced_by":null,"replaces":null,"asset_id":"047e2168-6e50-4ddc-ace8-8f9bcedc842f","symbol":"AAPL240119C00200000","asset_class":"us_option","notional":null,"qty":"1","filled_qty":"0","filled_avg_price":null,"order_class":"mleg","order_type":"","type":"","side":"sell","position_intent":"sell_to_open","time_in_force":"day","limit_price":null,"stop_price":null,"status":"new","extended_hours":false,"legs":null,"trail_percent":null,"trail_price":null,"hwm":null,"subtag":null,"source":null,"expires_at":"2026-07-13T21:00:00.000000123Z","ratio_qty":"1"}],"trail_percent":null,"trail_price":null,"hwm":null,"subtag":null,"source":null,"expires_at":"2026-07-13T21:00:00.000000123Z"},
{"id":"f0a3117a-2a8f-44e9-a148-2dc5e06b6ca7","client_order_id":"21323f32-5747-41df-afee-23750b62aff1","created_at":"2026-07-10T16:01:07.000000123Z","updated_at":"2026-07-10T16:01:07.823000123Z","submitted_at":"2026-07-10T16:01:07.004386123Z","filled_at":null,"expired_at":null,"canceled_at":null,"failed_at":null,"replaced_at":null,"replaced_by":null,"replaces":null,"asset_id":"54ef6e27-2222-4d3c-ab6b-0eed339364f8","symbol":"VTI","asset_class":"us_equity","notional":null,"qty":"0.1","filled_qty":"0","filled_avg_price":null,"order_class":"","order_type":"trailing_stop","type":"trailing_stop","side":"sell","time_in_force":"gtc","limit_price":null,"stop_price":null,"status":"new","extended_hours":false,"legs":null,"trail_percent":"5","trail_price":null,"hwm":"236.12","subtag":null,"source":null,"expires_at":"2026-10-08T21:00:00.000000123Z"},
{"id":"81dd4c8d-afe7-4170-a833-c45b08cfd026","client_order_id":"bb27675e-dc69-4097-976f-4676980d5af7","created_at":"2026-07-09T14:31:22.070000123Z","updated_at":"2026-07-09T14:31:22.559000123Z","submitted_at":"2026-07-09T14:31:22.126113123Z","filled_at":"2026-07-09T14:31:22.559000123Z","expired_at":null,"canceled_at":null,"failed_at":null,"replaced_at":null,"replaced_by":null,"replaces":null,"asset_id":"55081262-bc68-4bdd-b7a6-35ea7bea9505","symbol":"NVDA","asset_class":"us_equity","notional":null,"qty":"3","filled_qty":"3","filled_avg_price":"117.98","order_class":"bracket","order_type":"limit","type":"limit","side":"buy","time_in_force":"gtc","limit_price":"118","stop_price":null,"status":"filled","extended_hours":false,"legs":[{"id":"63f96bd0-4079-4c0d-b39b-14e9362406a0","client_order_id":"e8a2c121-2cca-4fae-bea4-4bc0dd02ae8d","created_at":"2026-07-09T14:31:22.070000123Z","updated_at":"2026-07-09T14:31:22.163000123Z","submitted_at":"2026-07-09T14:31:22.152170123Z","filled_at":null,"expired_at":null,"canceled_at":null,"failed_at":null,"replaced_at":null,"replaced_by":null,"replaces":null,"asset_id":"97d3c89b-151d-4f66-9361-73ae83cb9775","symbol":"NVDA","asset_class":"us_equity","notional":null,"qty":"3","filled_qty":"0","filled_avg_price":null,"order_class":"bracket","order_type":"limit","type":"limit","side":"sell","time_in_force":"gtc","limit_price":"135","stop_price":null,"status":"new","extended_hours":false,"legs":null,"trail_percent":null,"trail_price":null,"hwm":null,"subtag":null,"source":null,"expires_at":"2026-10-07T21:00:00.000000123Z"},{"id":"de42a8db-fc90-45c5-92be-05178a86387f","client_order_id":"569f62a7-18fb-4b36-a336-45b4e945af39","created_at":"2026-07-09T14:31:22.070000123Z","updated_at":"2026-07-09T14:31:22.488000123Z","submitted_at":"2026-07-09T14:31:22.107080123Z","filled_at":null,"expired_at":null,"canceled_at":null,"failed_at":null,"replaced_at":null,"replaced_by":null,"replaces":null,"asset_id":"fda1e09a-1bcb-4b4f-bc50-0d2b8201010f","symbol":"NVDA","asset_class":"us_equity","notional":null,"qty":"3","filled_qty":"0","filled_avg_price":null,"order_class":"bracket","order_type":"stop","type":"stop","side":"sell","time_in_force":"gtc","limit_price":null,"stop_price":"105","status":"held","extended_hours":false,"legs":null,"trail_percent":null,"trail_price":null,"hwm":null,"subtag":null,"source":null,"expires_at":"2026-10-07T21:00:00.000000123Z"}],"trail_percent":null,"trail_price":null,"hwm":null,"subtag":null,"source":null,"expires_at":"2026-10-07T21:00:00.000000123Z"},
{"id":"7ce4baba-915b-43b9-9a61-1bbf78ad8549","client_order_id":"1b880cda-eb37-4483-8efc-09f5808dcdcd","created_at":"2026-07-08T17:12:40.000000123Z","updated_at":"2026-07-08T17:12:40.206000123Z","submitted_at":"2026-07-08T17:12:40.040133123Z","filled_at":null,"expired_at":null,"canceled_at":"2026-07-08T17:12:40.206000123Z","failed_at":null,"replaced_at":null,"replaced_by":null,"replaces":null,"asset_id":"c0b9f94a-329c-44bb-8dea-bb15ecedc7d8","symbol":"TSLA","asset_class":"us_equity","notional":null,"qty":"2","filled_qty":"0","filled_avg_price":null,"order_class":"","order_type":"stop_limit","type":"stop_limit","side":"sell","time_in_force":"day","limit_price":"230","stop_price":"232.5","status":"canceled","extended_hours":false,"legs":null,"trail_percent":null,"trail_price":null,"hwm":null,"subtag":null,"source":null,"expires_at":"2026-07-08T21:00:00.000000123Z"},
{"id":"56bb3d51-d9b3-42fc-a639-9a079270bcdf","client_order_id":"6c4c2759-b23e-43c6-afcc-435eda14e933","created_at":"2026-07-07T13:35:01.000000123Z","updated_at":"2026-07-07T13:35:01.357000123Z","submitted_at":"2026-07-07T13:35:01.028401123Z","filled_at":"2026-07-07T13:35:01.357000123Z","expired_at":null,"canceled_at":null,"failed_at":null,"replaced_at":null,"replaced_by":null,"replaces":null,"asset_id":"60c030e1-cb3a-4849-a667-317b33340229","symbol":"VTI","asset_class":"us_equity","notional":"25","qty":null,"filled_qty":"0.109863891","filled_avg_price":"227.55","order_class":"","order_type":"market","type":"market","side":"buy","time_in_force":"day","limit_price":null,"stop_price":null,"status":"filled","extended_hours":false,"legs":null,"trail_percent":null,"trail_price":null,"hwm":null,"subtag":null,"source":null,"expires_at":"2026-07-07T21:00:00.000000123Z"},
{"id":"5018c5a3-91f3-46af-94ff-2f9d15565fb4","client_order_id":"78af5fc2-d1fc-40ed-9303-634bb73bc49e","created_at":"2024-01-03T15:00:05.000000123Z","updated_at":"2024-01-03T15:00:05.531000123Z","submitted_at":"2024-01-03T15:00:05.030205123Z","filled_at":"2024-01-03T15:00:05.531000123Z","expired_at":null,"canceled_at":null,"failed_at":null,"replaced_at":null,"replaced_by":null,"replaces":null,"asset_id":"dece10ce-83b1-48a2-b7b0-8fe04ce7320c","symbol":"AAPL240119C00190000","asset_class":"us_option","notional":null,"qty":"2","filled_qty":"2","filled_avg_price":"5.15","order_class":"simple","order_type":"limit","type":"limit","side":"buy","position_intent":"buy_to_open","time_in_force":"day","limit_price":"5.2","stop_price":null,"status":"filled","extended_hours":false,"legs":null,"trail_percent":null,"trail_price":null,"hwm":null,"subtag":null,"source":null,"expires_at":"2024-01-03T21:00:00.000000123Z"},
{"id":"05ca66e4-49cd-4f1c-bd5c-f9f438a2aed1","client_order_id":"568a0b40-c622-4e36-8cbc-0789cfe9facc","created_at":"2023-11-20T14:45:09.000000123Z","updated_at":"2023-11-20T14:45:09.828000123Z","submitted_at":"2023-11-20T14:45:09.055290123Z","filled_at":"2023-11-20T14:45:09.828000123Z","expired_at":null,"canceled_at":null,"failed_at":null,"replaced_at":null,"replaced_by":null,"replaces":null,"asset_id":"7a3e82ac-64d6-4078-838d-481268345b63","symbol":"AAPL","asset_class":"us_equity","notional":null,"qty":"10","filled_qty":"10","filled_avg_price":"172.35","order_class":"","order_type":"market","type":"market","side":"buy","time_in_force":"day","limit_price":null,"stop_price":null,"status":"filled","extended_hours":false,"legs":null,"trail_percent":null,"trail_price":null,"hwm":null,"subtag":null,"source":null,"expires_at":"2023-11-20T21:00:00.000000123Z"}
]$json$),
('live_positions', $json$[
{"asset_id":"6beda5ed-5df4-42a1-b9b8-0364221dca9b","symbol":"SPY","exchange":"ARCA","asset_class":"us_equity","asset_marginable":true,"qty":"2","avg_entry_price":"588.14","side":"long","market_value":"1207.8","cost_basis":"1176.28","unrealized_pl":"31.52","unrealized_plpc":"0.0267963410072432","unrealized_intraday_pl":"5.36","unrealized_intraday_plpc":"0.0044576028741559","current_price":"603.9","lastday_price":"601.22","change_today":"0.0044576028741559","qty_available":"2"}
]$json$);

--------------------------------------------------------------------------------------------
-- Account
--------------------------------------------------------------------------------------------
-- Alice's account in Alpaca's 2026 shape: unknown fields (admin_configurations, crypto_tier,
-- bod_dtbp, ...) ignored; pattern_day_trader, daytrade_count, daytrading_buying_power absent -> NULL.
\x on
SELECT * FROM alpaca_parse_account((SELECT body FROM fixture WHERE name = 'alice_account'));
\x off
-- Exact decimals, not floats: the values compare equal to numeric literals digit for digit.
SELECT last_equity = 19274.30456261 AS last_equity_exact, short_market_value = -1677.5 AS short_exact,
       scale(last_equity) AS last_equity_scale, created_at = '2023-05-04 13:20:11.482912+00' AS created_exact
FROM alpaca_parse_account((SELECT body FROM fixture WHERE name = 'alice_account'));

-- The older shape (pattern_day_trader, daytrade_count, daytrading_buying_power present), numbers
-- beyond double precision, JSON numbers taken by their source text, an unknown status passed through.
SELECT status, cash, cash = 123456789012345678901234567890.123456789012345678901 AS cash_exact,
       buying_power, daytrading_buying_power, pattern_day_trader, daytrade_count,
       options_approved_level, multiplier, created_at
FROM alpaca_parse_account($j${"id":"9a3b6d8e-1f2c-4b7a-8e5d-0c4f1a2b3c4d","account_number":"PA1","status":"SOME_FUTURE_STATUS",
  "cash":"123456789012345678901234567890.123456789012345678901","buying_power":1.5e3,
  "daytrading_buying_power":"0","pattern_day_trader":false,"daytrade_count":"2",
  "options_approved_level":0,"multiplier":"4","created_at":"2020-01-02T03:04:05.678-05:00",
  "some_new_object":{"nested":[1,2,{"deep":true}]}}$j$);

-- Only id, account_number and status are required; everything else may be absent or null.
SELECT id, account_number, status, crypto_status, currency, cash, equity, shorting_enabled, created_at
FROM alpaca_parse_account('{"id":"9a3b6d8e-1f2c-4b7a-8e5d-0c4f1a2b3c4d","account_number":"PA1","status":"ACTIVE","cash":null,"currency":null,"created_at":null}');
-- Missing, null, empty or wrongly typed required fields: XX000 naming the field.
SELECT pga_try($$SELECT * FROM alpaca_parse_account('{"account_number":"PA1","status":"ACTIVE"}')$$) AS no_id,
       pga_try($$SELECT * FROM alpaca_parse_account('{"id":"9a3b6d8e-1f2c-4b7a-8e5d-0c4f1a2b3c4d","status":"ACTIVE"}')$$) AS no_account_number;
SELECT pga_try($$SELECT * FROM alpaca_parse_account('{"id":"9a3b6d8e-1f2c-4b7a-8e5d-0c4f1a2b3c4d","account_number":"PA1"}')$$) AS no_status,
       pga_try($$SELECT * FROM alpaca_parse_account('{"id":"9a3b6d8e-1f2c-4b7a-8e5d-0c4f1a2b3c4d","account_number":"PA1","status":null}')$$) AS null_status;
SELECT pga_try($$SELECT * FROM alpaca_parse_account('{"id":"9a3b6d8e-1f2c-4b7a-8e5d-0c4f1a2b3c4d","account_number":"","status":"ACTIVE"}')$$) AS empty_account_number,
       pga_try($$SELECT * FROM alpaca_parse_account('{"id":42,"account_number":"PA1","status":"ACTIVE"}')$$) AS numeric_id;
SELECT pga_try($$SELECT * FROM alpaca_parse_account('{"id":"not-a-uuid","account_number":"PA1","status":"ACTIVE"}')$$) AS id_not_uuid;
-- Wrong types and impossible values in optional fields are errors too, never silently NULL.
\set acct '"id":"9a3b6d8e-1f2c-4b7a-8e5d-0c4f1a2b3c4d","account_number":"PA1","status":"ACTIVE"'
SELECT field, pga_try(format('SELECT * FROM alpaca_parse_account(%L)', '{' || :'acct' || ',' || field || '}')) AS result
FROM (VALUES ('"cash":true'), ('"cash":"12.5abc"'), ('"cash":"NaN"'), ('"cash":"Infinity"'), ('"cash":"1,000.00"'),
             ('"cash":" 1"'), ('"cash":{}'), ('"cash":"1e1001"'), ('"daytrade_count":2.5'),
             ('"daytrade_count":"two"'), ('"daytrade_count":2147483648'), ('"shorting_enabled":"true"'),
             ('"shorting_enabled":1'), ('"currency":5'), ('"created_at":"now"'), ('"created_at":"infinity"'),
             ('"created_at":"2024-01-02 03:04:05"'), ('"created_at":"January 8, 1999 04:05:06 PST"'),
             ('"created_at":"2024-02-30T00:00:00Z"'), ('"created_at":"2024-01-02T25:00:00Z"'),
             ('"created_at":1704164645')) AS t(field);
-- Boundary values that are fine: int4 limits, an empty decimal string (Alpaca's "no value").
SELECT daytrade_count, options_trading_level, cash FROM alpaca_parse_account(
    '{' || :'acct' || ',"daytrade_count":2147483647,"options_trading_level":"-2147483648","cash":""}');
-- An RFC 3339 offset is honoured and the result does not depend on the session's TimeZone.
SET timezone = 'Asia/Tokyo';
SELECT created_at, extract(epoch FROM created_at) AS epoch
FROM alpaca_parse_account('{' || :'acct' || ',"created_at":"2020-01-02T03:04:05.678-05:00"}');
SET timezone = 'UTC';
SELECT created_at, extract(epoch FROM created_at) AS epoch
FROM alpaca_parse_account('{' || :'acct' || ',"created_at":"2020-01-02T03:04:05.678-05:00"}');

--------------------------------------------------------------------------------------------
-- Positions
--------------------------------------------------------------------------------------------
-- Equities long and short (negative qty), fractional, options with the OCC symbol parsed,
-- a short option, crypto (BTCUSD); every figure as exact numeric.
SELECT * FROM alpaca_parse_positions((SELECT body FROM fixture WHERE name = 'alice_positions'));
SELECT * FROM alpaca_parse_positions((SELECT body FROM fixture WHERE name = 'live_positions'));
-- Types of the option columns, and exact sums (no float drift: 0.0012345678 + 0.123456789).
SELECT pg_typeof(qty) AS qty_type, pg_typeof(expiration) AS expiration_type, pg_typeof(strike) AS strike_type,
       sum(qty) AS total_qty, sum(market_value) AS total_market_value, sum(unrealized_pl) AS total_pl
FROM alpaca_parse_positions((SELECT body FROM fixture WHERE name = 'alice_positions'))
GROUP BY 1, 2, 3;
-- The earlier system's "options by ticker": one GROUP BY.
SELECT underlying, count(*) AS positions, sum(qty) AS contracts, sum(market_value) AS market_value,
       sum(unrealized_pl) AS unrealized_pl, min(expiration) AS first_expiration,
       string_agg(option_type || ' ' || strike, ', ' ORDER BY strike) AS legs
FROM alpaca_parse_positions((SELECT body FROM fixture WHERE name = 'alice_positions'))
WHERE underlying IS NOT NULL GROUP BY underlying ORDER BY underlying;
-- Shorts are negative quantity and side short, longs positive.
SELECT side, count(*), bool_and(CASE side WHEN 'short' THEN qty < 0 ELSE qty > 0 END) AS sign_matches_side
FROM alpaca_parse_positions((SELECT body FROM fixture WHERE name = 'alice_positions'))
GROUP BY side ORDER BY side;

-- OCC parsing only for us_option, and only of a valid symbol: a 6-character root, sub-dollar and
-- fractional strikes, the last valid year; an impossible date or a malformed symbol -> NULLs,
-- not an error (the row still comes back); an OCC-looking equity symbol is left alone.
SELECT symbol, asset_class, underlying, expiration, option_type, strike FROM alpaca_parse_positions($j$[
 {"symbol":"BRKB991231P00000500","asset_class":"us_option"},
 {"symbol":"SPXW24011 9C04752500","asset_class":"us_option"},
 {"symbol":"SPXW240119C04752500","asset_class":"us_option"},
 {"symbol":"GOOGL1240621C00175000","asset_class":"us_option"},
 {"symbol":"AAPL240230C00190000","asset_class":"us_option"},
 {"symbol":"AAPL240119X00190000","asset_class":"us_option"},
 {"symbol":"AAPL240119C0019000","asset_class":"us_option"},
 {"symbol":"AAPL240119C00190000","asset_class":"us_equity"},
 {"symbol":"AAPL240119C00190000"},
 {"symbol":"ETH/USD","asset_class":"crypto","qty":"1.000000000000000001"},
 {"symbol":"XYZ","asset_class":"some_future_class","side":"sideways","qty":"-0"}
]$j$);

-- Unknown fields ignored, absent and null optionals NULL, an empty array is no rows.
SELECT symbol, asset_class, side, qty, avg_entry_price, market_value, current_price
FROM alpaca_parse_positions('[{"symbol":"AAPL","qty":"1","side":null,"weird":[{"a":1}],"market_value":null,"asset_marginable":true}]');
SELECT count(*) AS empty_array FROM alpaca_parse_positions('[]');
SELECT count(*) AS null_input FROM alpaca_parse_positions(NULL);

-- Malformed documents: XX000, with the parser's position, never the document itself.
SELECT doc, pga_try(format('SELECT * FROM alpaca_parse_positions(%L)', doc)) AS result
FROM (VALUES (''), ('['), ('[{"symbol":"AAPL",}]'), ('[] []'), ('{}'), ('null'), ('"AAPL"'), ('[1]'),
             ('[{"qty":"1"}]'), ('[{"symbol":null}]'), ('[{"symbol":"AAPL","qty":"1","qty_available":true}]'),
             ('[{"symbol":"A\u0000B"}]'), ('[{"symbol":"\ud800"}]'), ('[{"symbol":"\udc00"}]'), ('[{"symbol":"AAPL","qty":01}]'),
             ('[{"symbol":"AAPL","qty":NaN}]'), ('[{"symbol":"AAPL"}] trailing')) AS t(doc);
SELECT pga_try(format('SELECT * FROM alpaca_parse_positions(%L)', repeat('[', 65) || repeat(']', 65))) AS too_deep,
       pga_try(format('SELECT * FROM alpaca_parse_positions(%L)', repeat('[', 100000))) AS very_deep;
-- A large, valid document parses (1000 positions, exact total).
SELECT count(*), sum(qty), sum(market_value) FROM alpaca_parse_positions(
    (SELECT '[' || string_agg(format('{"symbol":"S%s","qty":"%s.000001","market_value":"%s"}', i, i, i * 10), ',') || ']'
     FROM generate_series(1, 1000) i));

--------------------------------------------------------------------------------------------
-- Orders
--------------------------------------------------------------------------------------------
-- Alice's orders (nested=true): timestamps with nanoseconds round to microseconds, the mleg parent
-- keeps Alpaca's "" for symbol/side/asset_class, the notional order has qty NULL.
SELECT id, client_order_id, symbol, asset_class, side, type, time_in_force, qty, filled_qty,
       filled_avg_price, limit_price, stop_price, status, order_class
FROM alpaca_parse_orders((SELECT body FROM fixture WHERE name = 'alice_orders'));
SELECT id, submitted_at, filled_at, canceled_at, jsonb_typeof(legs) AS legs_type, jsonb_array_length(legs) AS legs
FROM alpaca_parse_orders((SELECT body FROM fixture WHERE name = 'alice_orders'));
-- Legs as jsonb, Alpaca's fields as sent (decimal strings stay strings).
SELECT o.symbol AS parent, o.order_class, l.ord AS leg, l.leg->>'symbol' AS symbol, l.leg->>'side' AS side,
       l.leg->>'position_intent' AS intent, l.leg->>'type' AS type, (l.leg->>'stop_price')::numeric AS stop_price,
       (l.leg->>'limit_price')::numeric AS limit_price, l.leg->>'status' AS status
FROM alpaca_parse_orders((SELECT body FROM fixture WHERE name = 'alice_orders')) o,
     jsonb_array_elements(o.legs) WITH ORDINALITY AS l(leg, ord)
ORDER BY o.submitted_at, l.ord;
-- Open vs closed as Alpaca classifies them, and an exact total of filled quantity.
SELECT status IN ('filled', 'canceled', 'expired', 'replaced', 'rejected') AS closed, count(*),
       sum(filled_qty) AS filled_qty
FROM alpaca_parse_orders((SELECT body FROM fixture WHERE name = 'alice_orders')) GROUP BY 1 ORDER BY 1;

-- Edge cases: "order_type" when "type" is absent; unknown status/type/class pass through; legs []
-- and null; JSON numbers inside legs keep their exact spelling; unknown fields ignored.
SELECT id, type, status, order_class, qty, limit_price, submitted_at, legs
FROM alpaca_parse_orders($j$[
 {"id":"00000000-0000-4000-8000-000000000001","order_type":"stop","status":"some_new_status","order_class":"oto","qty":"1"},
 {"id":"00000000-0000-4000-8000-000000000002","type":"limit","order_type":"market","legs":[],"submitted_at":"2024-06-30T23:59:59.9999995Z"},
 {"id":"00000000-0000-4000-8000-000000000003","type":"future_type","legs":null,"limit_price":12.50,"future_field":{"x":1}},
 {"id":"00000000-0000-4000-8000-000000000004","legs":[{"qty":1.50000000000000000001,"big":123456789012345678901234567890,"n":[1,{"y":null}],"s":"é"}]}
]$j$);
SELECT doc, pga_try(format('SELECT * FROM alpaca_parse_orders(%L)', doc)) AS result
FROM (VALUES ('{}'), ('[{"symbol":"AAPL"}]'), ('[{"id":"x"}]'), ('[{"id":"00000000-0000-4000-8000-000000000001","legs":{}}]'),
             ('[{"id":"00000000-0000-4000-8000-000000000001","legs":"[]"}]'),
             ('[{"id":"00000000-0000-4000-8000-000000000001","qty":"1/2"}]'),
             ('[{"id":"00000000-0000-4000-8000-000000000001","filled_at":"yesterday"}]'),
             ('[{"id":"00000000-0000-4000-8000-000000000001","status":false}]'),
             ('[{"id":"00000000-0000-4000-8000-000000000001"},{"id":"00000000-0000-4000-8000-000000000002","side":1}]')) AS t(doc);
-- The error itself: element and field in the message, PostgreSQL's reason as detail.
SELECT * FROM alpaca_parse_orders('[{"id":"00000000-0000-4000-8000-000000000001"},{"id":"00000000-0000-4000-8000-00000000000g"}]');
SELECT * FROM alpaca_parse_orders('[{"id":"00000000-0000-4000-8000-000000000001","filled_at":"2024-13-01T00:00:00Z"}]');
SELECT * FROM alpaca_parse_positions('[{"symbol":"AAPL"},]');

--------------------------------------------------------------------------------------------
-- Values built without the types' input functions are those the input functions make.
--------------------------------------------------------------------------------------------
-- numeric from the digits: value, text, scale, binary form (numeric_send) and stored size
-- (short or long header) equal numeric_in's for decimals of every shape Alpaca sends and more:
-- signs, zeros with scales, leading/trailing zeros, groups of 4 digits at every offset,
-- scales beyond 63 (the long header), 64-digit parts; and what is left to numeric_in:
-- exponents, longer parts, weights beyond the short header's range (+-64 groups).
CREATE TEMP TABLE dec_cases AS
SELECT row_number() OVER () AS i, d FROM (
    SELECT unnest(ARRAY['0', '-0', '0.0', '-0.000', '00', '007', '1', '-1', '9999', '10000', '-10000',
        '12345678', '123456789', '0.1', '0.0001', '0.00001', '0.00010', '1.5', '-1.50', '152.5',
        '100.0', '123.45', '0.000000001234', '-0.0000000000000000000000001', '1e5', '1E-7', '2.5e+10',
        '-0e0', '1e1000', '1e-1000', '123456789012345678901234567890.123456789012345678901',
        '67012.35', '0.0012345678', '-0.0150614347998415', repeat('9', 252) || '.5',
        repeat('1', 256), '1' || repeat('0', 259), '0.' || repeat('0', 255) || '1',
        '0.' || repeat('0', 259) || '1', '1.' || repeat('3', 63), '1.' || repeat('3', 64),
        '-' || repeat('7', 1000) || '.' || repeat('7', 1000), repeat('8', 1001),
        repeat('1', 64) || '.' || repeat('2', 64), '-' || repeat('3', 65) || '.' || repeat('4', 65)]) AS d
    UNION ALL  -- every integer and fraction length up to 13 digits, both signs
    SELECT CASE WHEN k % 2 = 0 THEN '-' ELSE '' END || left('9876543210987', a) ||
           CASE WHEN f > 0 THEN '.' || left('0102030405067', f) ELSE '' END
    FROM generate_series(1, 13) a, generate_series(0, 13) f, generate_series(0, 1) k
) t;
-- (stored uncompressed and with their 4-byte headers, so sizes compare header for header)
CREATE TEMP TABLE dec_parsed (i bigint, ours numeric, theirs numeric);
ALTER TABLE dec_parsed ALTER ours SET STORAGE PLAIN, ALTER theirs SET STORAGE PLAIN;
INSERT INTO dec_parsed
SELECT c.i, p.qty, c.d::numeric
FROM dec_cases c, alpaca_parse_positions(format('[{"symbol":"S","qty":"%s"}]', c.d)) p;
SELECT count(*) AS decimals,
       count(*) FILTER (WHERE ours = theirs AND ours::text = theirs::text AND scale(ours) = scale(theirs)
                          AND numeric_send(ours) = numeric_send(theirs)) AS identical_value,
       count(*) FILTER (WHERE pg_column_size(ours) = pg_column_size(theirs)) AS identical_size
FROM dec_parsed;
SELECT left(c.d, 40) AS d, length(c.d), pg_column_size(ours) AS ours_size, pg_column_size(theirs) AS theirs_size
FROM dec_parsed p JOIN dec_cases c USING (i)
WHERE NOT (ours::text = theirs::text AND numeric_send(ours) = numeric_send(theirs)
           AND pg_column_size(ours) = pg_column_size(theirs));
-- The OCC strike goes the same way.
SELECT strike, numeric_send(strike) = numeric_send('0.5'::numeric) AS identical
FROM alpaca_parse_positions('[{"symbol":"BRKB991231P00000500","asset_class":"us_option"}]');

-- timestamptz from RFC 3339 fields: equal to timestamptz_in for fractions of 0 to 9 digits
-- (rounding at the microsecond, .5 boundaries, carries into the next second, day, year),
-- offsets east and west up to 15:59, leap days, and what is left to timestamptz_in (24:00:00,
-- a leap second, years before 1000).
CREATE TEMP TABLE ts_cases AS
SELECT row_number() OVER () AS i, t FROM (
    SELECT unnest(ARRAY['2024-06-30T23:59:59.9999995Z', '2024-06-30T23:59:59.9999994Z',
        '2024-12-31T23:59:59.99999951+00:00', '1999-12-31T23:59:59.999999999-00:30',
        '2024-02-29T12:00:00Z', '2023-03-01T00:00:00+15:59', '2023-03-01T00:00:00-15:59',
        '2026-07-14T14:02:11.512000123Z', '2026-07-14T14:02:11.5z', '2026-07-14t14:02:11Z',
        '2026-07-14 14:02:11+05:30', '2024-01-02T24:00:00Z', '2016-12-31T23:59:60Z',
        '0999-01-01T00:00:00Z', '1000-01-01T00:00:00.000001Z', '9999-12-31T23:59:59.999999Z',
        '2020-01-02T03:04:05.678-05:00', '2021-03-16T18:38:01.0000005Z',
        '2021-03-16T18:38:01.0000015Z', '2021-03-16T18:38:01.0000025Z']) AS t
    UNION ALL
    SELECT format('20%s-%s-%sT%s:%s:%s%s%s', lpad((k % 100)::text, 2, '0'), lpad((k % 12 + 1)::text, 2, '0'),
                  lpad((k % 28 + 1)::text, 2, '0'), lpad((k % 24)::text, 2, '0'), lpad((k * 7 % 60)::text, 2, '0'),
                  lpad((k * 13 % 60)::text, 2, '0'),
                  CASE WHEN k % 10 = 0 THEN '' ELSE '.' || left(lpad((k * 7919 % 1000000000)::text, 9, '5'), k % 10) END,
                  CASE k % 3 WHEN 0 THEN 'Z' WHEN 1 THEN '+0' || (k % 10) || ':' || lpad((k % 60)::text, 2, '0')
                             ELSE '-1' || (k % 6) || ':30' END)
    FROM generate_series(1, 2000) k
) t;
SELECT count(*) AS timestamps,
       count(*) FILTER (WHERE o.submitted_at = c.t::timestamptz) AS identical
FROM ts_cases c, alpaca_parse_orders(format('[{"id":"00000000-0000-4000-8000-000000000001","submitted_at":"%s"}]', c.t)) o;
SELECT c.t, o.submitted_at, c.t::timestamptz AS theirs
FROM ts_cases c, alpaca_parse_orders(format('[{"id":"00000000-0000-4000-8000-000000000001","submitted_at":"%s"}]', c.t)) o
WHERE o.submitted_at IS DISTINCT FROM c.t::timestamptz;
SELECT submitted_at FROM alpaca_parse_orders('[{"id":"00000000-0000-4000-8000-000000000001","submitted_at":"2024-06-30T23:59:59.9999995Z"},
  {"id":"00000000-0000-4000-8000-000000000002","submitted_at":"2024-01-02T24:00:00Z"},
  {"id":"00000000-0000-4000-8000-000000000003","submitted_at":"2016-12-31T23:59:60+01:00"}]');
SELECT pga_try($$SELECT * FROM alpaca_parse_orders('[{"id":"00000000-0000-4000-8000-000000000001","filled_at":"2024-01-02T24:00:01Z"}]')$$) AS hour_24_past,
       pga_try($$SELECT * FROM alpaca_parse_orders('[{"id":"00000000-0000-4000-8000-000000000001","filled_at":"2023-02-29T00:00:00Z"}]')$$) AS not_leap,
       pga_try($$SELECT * FROM alpaca_parse_orders('[{"id":"00000000-0000-4000-8000-000000000001","filled_at":"2023-01-01T00:00:00+16:00"}]')$$) AS offset_16;
-- uuid from its hex, either case; the other spellings uuid_in takes still go through it.
SELECT o.id, o.id = c.u::uuid AS identical
FROM (VALUES ('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'), ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
             ('{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}'), ('a0eebc999c0b4ef8bb6d6bb9bd380a11'),
             ('a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11')) c(u),
     alpaca_parse_orders(format('[{"id":"%s"}]', c.u)) o;
SELECT pga_try($$SELECT * FROM alpaca_parse_orders('[{"id":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g"}]')$$) AS bad_hex,
       pga_try($$SELECT * FROM alpaca_parse_orders('[{"id":"a0eebc99+9c0b-4ef8-bb6d-6bb9bd380a11"}]')$$) AS bad_dash;

--------------------------------------------------------------------------------------------
-- Each row shape is declared once: the C++ column lists match the composite types by name and
-- type, checked at first use and again whenever the type changes.
--------------------------------------------------------------------------------------------
SELECT p.oid::regprocedure AS parser, pg_get_function_result(p.oid) AS result, p.prosrc AS symbol,
       (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
        FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped) AS type_columns
FROM pg_proc p JOIN pg_type t ON t.oid = p.prorettype
WHERE p.proname IN ('alpaca_parse_account', 'alpaca_parse_positions', 'alpaca_parse_orders',
                    '_parse_account', '_parse_positions', '_parse_orders')
ORDER BY p.proname;
-- Every parser, public and internal, produces a row of its type.
SELECT (SELECT count(*) FROM alpaca._parse_positions('[{"symbol":"A"}]')) AS internal_positions,
       (SELECT count(*) FROM alpaca._parse_orders('[{"id":"00000000-0000-4000-8000-000000000001"}]')) AS internal_orders,
       (SELECT count(*) FROM alpaca._parse_account('{"id":"9a3b6d8e-1f2c-4b7a-8e5d-0c4f1a2b3c4d","account_number":"1","status":"A"}')) AS internal_account;
-- An attribute the C++ does not fill, one of another type, one renamed, one missing: each is
-- an internal error naming the column, listing what the C++ fills. After ROLLBACK the same
-- backend works again (the check follows the type's changes both ways).
BEGIN;
ALTER TYPE alpaca.position_row ADD ATTRIBUTE swap_rate numeric;
SELECT * FROM alpaca_parse_positions('[{"symbol":"A"}]');
ROLLBACK;
SELECT count(*) AS after_rollback FROM alpaca_parse_positions('[{"symbol":"A"}]');
BEGIN;
ALTER TYPE alpaca.order_row ALTER ATTRIBUTE qty TYPE text;
SELECT * FROM alpaca_parse_orders('[]');
ROLLBACK;
BEGIN;
ALTER TYPE alpaca.account_row RENAME ATTRIBUTE sma TO special_memorandum_account;
SELECT * FROM alpaca_parse_account('{"id":"9a3b6d8e-1f2c-4b7a-8e5d-0c4f1a2b3c4d","account_number":"1","status":"A"}');
ROLLBACK;
BEGIN;
ALTER TYPE alpaca.position_row DROP ATTRIBUTE strike;
SELECT * FROM alpaca_parse_positions('[]');
ROLLBACK;
-- A dropped attribute the C++ does not know about is skipped (NULL), not a mismatch.
BEGIN;
ALTER TYPE alpaca.position_row ADD ATTRIBUTE gone int;
ALTER TYPE alpaca.position_row DROP ATTRIBUTE gone;
SELECT symbol, qty FROM alpaca_parse_positions('[{"symbol":"A","qty":"2"}]');
ROLLBACK;
-- A function declared with its own column list (not the composite type) is checked too.
CREATE FUNCTION pg_temp.bad_parse(body text) RETURNS TABLE(symbol text, qty text)
    AS '$libdir/pg_alpaca', 'pga_parse_positions' LANGUAGE C STRICT;
SELECT * FROM pg_temp.bad_parse('[]');
SELECT count(*) AS after_bad_function FROM alpaca_parse_positions('[{"symbol":"A"}]');

-- The parsers are public (replay recorded answers): a role with no grant at all may call them.
CREATE ROLE regress_rows_nobody;
SET ROLE regress_rows_nobody;
SELECT (SELECT count(*) FROM alpaca_parse_positions('[{"symbol":"AAPL","qty":"1"}]')) AS positions,
       (SELECT count(*) FROM alpaca_parse_orders('[]')) AS orders,
       (SELECT status FROM alpaca_parse_account('{"id":"9a3b6d8e-1f2c-4b7a-8e5d-0c4f1a2b3c4d","account_number":"1","status":"ACTIVE"}')) AS account;
RESET ROLE;
DROP ROLE regress_rows_nobody;
RESET datestyle;
RESET timezone;
