-- SPDX-License-Identifier: Apache-2.0
-- wrk script: the HTTP ceiling of the dispatcher's benchmark. POSTs what eventingd's dispatcher
-- sends a sink for each event of tests/bench/dispatch_bench.py (binary mode: the stored ce-*
-- headers, Content-Type, a 512-byte JSON body, a unique ce-id), so nginx's answer rate with the
-- same connections is the most any HTTP client on this machine could deliver.
local threads = {}
local counter = 0
local thread_id = 0
local body = '{"data":"' .. string.rep("x", 512 - 11) .. '"}'

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

function request()
  counter = counter + 1
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["ce-specversion"] = "1.0",
    ["ce-id"] = string.format("%d-%d", thread_id, counter),
    ["ce-source"] = "bench",
    ["ce-type"] = "order.created.v1",
    ["ce-originaltype"] = "order.created.v1",
  }, body)
end

function done(summary, latency, requests)
  io.write(string.format("wrk_result requests=%d duration_s=%.3f rate=%.0f p50_ms=%.3f p99_ms=%.3f non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
