#!/usr/bin/env node
'use strict';
// Example bot in Node.js, built from the contracts alone: proto/alerts/v1/service.proto is
// loaded at run time with @grpc/proto-loader (field names as in the .proto: keepCase).
//
//   node bot.js --server 127.0.0.1:50051 --symbol binance:BTCUSDT \
//       --condition "price > 65000" --mode EVERY_TIME [--rule-id ID] [--count N]
//
// Creates the rule, opens StreamAlerts for it and prints `READY` once the stream has
// caught up, then one line per alert: `ALERT <id> <symbol> <event time ISO> <message>`.
// Exits 0 after --count alerts (0: never). A stream ended with UNAVAILABLE or
// RESOURCE_EXHAUSTED (or silent for too long) is reopened with `resume_after` = the last
// alert id, after an exponential backoff with full jitter, so no alert is missed or doubled.

const crypto = require('node:crypto');
const path = require('node:path');
const { parseArgs } = require('node:util');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const { describeError, formatError } = require('./status');

const PROTO_ROOT = path.resolve(__dirname, '..', '..', 'proto');
const INCLUDE_DIRS = [PROTO_ROOT, path.join(PROTO_ROOT, 'include')];
const CALL_TIMEOUT_MS = 10000;
const HEARTBEAT_S = 5;
const BACKOFF = { initialMs: 100, maxMs: 5000, attempts: 5 };
const RETRY_CODES = new Set([grpc.status.UNAVAILABLE, grpc.status.RESOURCE_EXHAUSTED]);

function usage(message) {
  console.error(`error: ${message}\nusage: node bot.js --server HOST:PORT --symbol S `
    + '--condition C [--mode M] [--rule-id ID] [--cooldown SECONDS] [--count N]');
  process.exit(2);
}

function options() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        server: { type: 'string', default: '127.0.0.1:50051' },
        symbol: { type: 'string' },
        condition: { type: 'string' },
        mode: { type: 'string', default: 'ON_TRUE' },
        'rule-id': { type: 'string' },
        cooldown: { type: 'string' },
        count: { type: 'string', default: '0' },
      },
    }));
  } catch (err) {
    usage(err.message);
  }
  if (!values.symbol || !values.condition) usage('--symbol and --condition are required');
  const count = Number(values.count);
  if (!Number.isInteger(count) || count < 0) usage('--count must be a whole number >= 0');
  const cooldown = values.cooldown === undefined ? undefined : Number(values.cooldown);
  if (cooldown !== undefined && !(cooldown >= 0)) usage('--cooldown must be seconds >= 0');
  const mode = values.mode.toUpperCase();
  return { ...values, count, cooldown,
    mode: mode.startsWith('TRIGGER_MODE_') ? mode : `TRIGGER_MODE_${mode}` };
}

function loadService() {
  const definition = protoLoader.loadSync('alerts/v1/service.proto', {
    keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
    includeDirs: INCLUDE_DIRS,
  });
  return grpc.loadPackageDefinition(definition).alerts.v1.AlertService;
}

function duration(seconds) {
  const whole = Math.floor(seconds);
  return { seconds: whole, nanos: Math.round((seconds - whole) * 1e9) };
}

function isoTime(ts) {
  if (!ts) return '-';
  return new Date(Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6)).toISOString();
}

function backoffMs(attempt, retryDelayMs) {
  if (retryDelayMs !== null && retryDelayMs !== undefined) return retryDelayMs;
  return Math.random() * Math.min(BACKOFF.maxMs, BACKOFF.initialMs * 2 ** attempt);
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

function fail(err) {
  console.error(`error: ${formatError(describeError(err, INCLUDE_DIRS))}`);
  process.exit(1);
}

// CreateRule, retried on UNAVAILABLE: the request_id makes a repeat return the same rule.
async function createRule(client, args) {
  const rule = { symbol: args.symbol, condition_text: args.condition, trigger_mode: args.mode };
  if (args.cooldown !== undefined) rule.cooldown = duration(args.cooldown);
  const request = { rule, rule_id: args['rule-id'] || '', request_id: crypto.randomUUID() };
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await new Promise((resolve, reject) => {
        client.CreateRule(request, { deadline: Date.now() + CALL_TIMEOUT_MS },
          (err, reply) => (err ? reject(err) : resolve(reply)));
      });
    } catch (err) {
      const info = describeError(err, INCLUDE_DIRS);
      if (!RETRY_CODES.has(err.code) || attempt + 1 >= BACKOFF.attempts) throw err;
      await sleep(backoffMs(attempt, info.retryDelayMs));
    }
  }
}

// Follows StreamAlerts for one rule; resolves after `count` alerts (never when count is 0).
function followAlerts(client, ruleName, count) {
  return new Promise((resolve, reject) => {
    let cursor = null; // last alert id seen (a decimal string: uint64)
    let printed = 0;
    let ready = false;
    let failures = 0;
    let done = false;

    const open = () => {
      const request = { filter: { rules: [ruleName] }, heartbeat_interval: duration(HEARTBEAT_S) };
      if (cursor !== null) request.resume_after = cursor;
      const call = client.StreamAlerts(request);
      let watchdog = null;
      const kick = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => call.cancel(), (2 * HEARTBEAT_S + 10) * 1000);
      };
      kick();
      let staleCancel = true; // a cancel we did not ask for by finishing is the watchdog's
      call.on('data', (msg) => {
        kick();
        switch (msg.payload) {
          case 'ack':
            failures = 0;
            if (cursor === null) cursor = msg.ack.last_committed_id;
            break;
          case 'caught_up':
            if (BigInt(msg.caught_up.last_id) > BigInt(cursor)) cursor = msg.caught_up.last_id;
            if (!ready) {
              ready = true;
              console.log('READY');
            }
            break;
          case 'alert': {
            const alert = msg.alert;
            if (BigInt(alert.id) <= BigInt(cursor)) break; // never print an id twice
            cursor = alert.id;
            console.log(`ALERT ${alert.id} ${alert.symbol} ${isoTime(alert.event_time)} `
              + `${alert.message}`);
            printed += 1;
            if (count > 0 && printed >= count) {
              done = true;
              staleCancel = false;
              clearTimeout(watchdog);
              call.cancel();
              resolve();
            }
            break;
          }
          default: // heartbeat: nothing was missed up to its id
            if (msg.heartbeat && BigInt(msg.heartbeat.last_committed_id) > BigInt(cursor)) {
              cursor = msg.heartbeat.last_committed_id;
            }
        }
      });
      const retry = (err) => { // err: a non-OK status (code, details, metadata) or null
        clearTimeout(watchdog);
        if (done) return;
        const info = err ? describeError(err, INCLUDE_DIRS) : { retryDelayMs: null };
        const stale = err && err.code === grpc.status.CANCELLED && staleCancel;
        if (err && !RETRY_CODES.has(err.code) && !stale) {
          reject(err);
          return;
        }
        const wait = backoffMs(failures, info.retryDelayMs);
        failures += 1;
        console.error(`reconnecting in ${Math.round(wait)} ms after `
          + `${err ? formatError(info) : 'the stream ended'}`);
        setTimeout(open, wait);
      };
      call.on('error', () => {}); // handled with the final status below
      call.on('status', (status) => retry(status.code === grpc.status.OK ? null : status));
    };
    open();
  });
}

async function main() {
  const args = options();
  const AlertService = loadService();
  const client = new AlertService(args.server, grpc.credentials.createInsecure(), {
    'grpc.initial_reconnect_backoff_ms': BACKOFF.initialMs,
    'grpc.max_reconnect_backoff_ms': BACKOFF.maxMs,
  });
  process.on('SIGINT', () => { client.close(); process.exit(130); });
  const rule = await createRule(client, args);
  console.log(`RULE ${rule.name} ${rule.symbol} ${rule.condition_text}`);
  await followAlerts(client, rule.name, args.count);
  client.close();
}

main().catch(fail);
