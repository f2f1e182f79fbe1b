'use strict';
// Decodes the google.rpc.Status a failed call carries in its `grpc-status-details-bin`
// trailer: ErrorInfo (reason), BadRequest (field violations) and RetryInfo (delay).
// The protos come from the repository's proto/include folder, as for the service.

const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protobuf = require('protobufjs');

let root = null;

function loadRoot(includeDirs) {
  if (root === null) {
    root = new protobuf.Root();
    root.resolvePath = (_origin, target) => {
      for (const dir of includeDirs) {
        const candidate = path.join(dir, target);
        if (fs.existsSync(candidate)) return candidate;
      }
      return target; // google/protobuf/*: bundled with protobufjs
    };
    root.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'],
      { keepCase: true });
  }
  return root;
}

// -> { code, codeName, message, reason, violations: [{field, description}], retryDelayMs }
function describeError(err, includeDirs) {
  const codeName = Object.keys(grpc.status).find((name) => grpc.status[name] === err.code)
    || String(err.code);
  const out = { code: err.code, codeName, message: err.details || err.message,
    reason: '', violations: [], retryDelayMs: null };
  const raw = err.metadata && err.metadata.get('grpc-status-details-bin')[0];
  if (!raw) return out;
  try {
    const types = loadRoot(includeDirs);
    const status = types.lookupType('google.rpc.Status').decode(raw);
    out.message = status.message || out.message;
    for (const any of status.details) {
      const typeName = any.type_url.slice(any.type_url.lastIndexOf('/') + 1);
      const detail = types.lookupType(typeName).decode(any.value);
      if (typeName === 'google.rpc.ErrorInfo') out.reason = detail.reason;
      if (typeName === 'google.rpc.BadRequest') {
        for (const v of detail.field_violations) {
          out.violations.push({ field: v.field, description: v.description });
        }
      }
      if (typeName === 'google.rpc.RetryInfo' && detail.retry_delay) {
        out.retryDelayMs = Number(detail.retry_delay.seconds || 0) * 1000
          + Math.floor((detail.retry_delay.nanos || 0) / 1e6);
      }
    }
  } catch (decodeError) {
    out.message += ` (status details unreadable: ${decodeError.message})`;
  }
  return out;
}

function formatError(info) {
  let text = `${info.codeName}${info.reason ? ` [${info.reason}]` : ''}: ${info.message}`;
  for (const v of info.violations) text += `\n  ${v.field}: ${v.description}`;
  return text;
}

module.exports = { describeError, formatError };
