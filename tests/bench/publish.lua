-- SPDX-License-Identifier: Apache-2.0
-- wrk script: POST /publish in CloudEvents binary mode, 512-byte JSON body, a unique ce-id per
-- request (thread number + counter), so JetStream's duplicate window never folds two requests.
local threads = {}
local counter = 0
local thread_id = 0
local body = '{"data":"' .. string.rep("x", 512 - 11) .. '"}'

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

-- args: [path] [batch size]; a batch size > 0 sends application/cloudevents-batch+json arrays
-- of that many structured events (512-byte data each) instead of one binary-mode event.
function init(args)
  path = args[1] or "/publish"
  batch = tonumber(args[2] or "0")
end

local function batch_body()
  local parts = {}
  for i = 1, batch do
    counter = counter + 1
    parts[i] = string.format(
      '{"specversion":"1.0","type":"order.created.v1","source":"bench","id":"%d-%d",' ..
      '"datacontenttype":"application/json","data":%s}', thread_id, counter, body)
  end
  return "[" .. table.concat(parts, ",") .. "]"
end

function request()
  if batch > 0 then
    return wrk.format("POST", path, {["Content-Type"] = "application/cloudevents-batch+json"},
                      batch_body())
  end
  counter = counter + 1
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/json",
    ["ce-specversion"] = "1.0",
    ["ce-type"] = "order.created.v1",
    ["ce-source"] = "bench",
    ["ce-id"] = string.format("%d-%d", thread_id, counter),
  }, body)
end

function done(summary, latency, requests)
  local non2xx = summary.errors.status
  io.write(string.format("wrk_result requests=%d duration_s=%.3f rate=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, non2xx,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
